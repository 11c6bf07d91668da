"""``python -m simnet.engines.netns.agents ROLE``: run one agent (see the package docstring)."""

from __future__ import annotations

import importlib
import sys

from . import ROLES


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in ROLES:
        print(f"usage: python -m simnet.engines.netns.agents {{{','.join(ROLES)}}}", file=sys.stderr)
        return 2
    mod, cls = ROLES[argv[0]].split(":")
    agent = getattr(importlib.import_module(f"{__package__}.{mod}"), cls)()
    return agent.main()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
