"""Scenario files: the format (spec), loading with line numbers (loader) and checks."""

from .loader import ScenarioError, SourceMap, load, loads, source_of
from .spec import Scenario

__all__ = ["Scenario", "ScenarioError", "SourceMap", "load", "loads", "source_of"]
