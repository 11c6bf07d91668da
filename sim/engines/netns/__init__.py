"""The netns engine: a scenario replayed on real Linux network namespaces (needs root).

Modules: plan.py (graph → typed operations, pure), apply.py (iproute2), lab.py (ownership
and cleanup), preflight.py (root, tools, kernel features), agents/ (workload and namespace
agents), workloads.py, counters.py and translate.py (the kernel's counters in the DES's
schema), engine.py (``run_netns``), calibrate.py (``simnet calibrate``).

Kept import-light: the agents import this package inside every namespace.
"""
