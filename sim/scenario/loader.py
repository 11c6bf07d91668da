"""Loading a scenario file: YAML with line numbers, then validation, with one-line errors.

Every problem a user can make in a scenario file is reported as one line,
``file:line: key.path: message``, by a :class:`ScenarioError`; the CLI prints it and exits
with code 2. The YAML is composed node by node so that every key and list item keeps its line,
and duplicate keys (which PyYAML would silently overwrite) are errors.
"""

from __future__ import annotations

import difflib
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from .spec import RENAMED_KEYS, WORKLOAD_APPS, Scenario

__all__ = ["ScenarioError", "SourceMap", "load", "loads", "fmt_path"]

PathT = tuple[Any, ...]


def fmt_path(path: PathT) -> str:
    out = ""
    for p in path:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += ("." if out else "") + str(p)
    return out


class ScenarioError(Exception):
    """A problem in a scenario, located by file, line and key path."""

    def __init__(self, message: str, path: PathT = (), file: str | None = None, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = tuple(path)
        self.file = file
        self.line = line

    def located(self, source: "SourceMap | None") -> "ScenarioError":
        """This error with file and line filled in from ``source``."""
        if source is None or (self.file and self.line):
            return self
        return ScenarioError(self.message, self.path, source.file, source.line_of(self.path))

    def __str__(self) -> str:
        loc = f"{self.file or '<scenario>'}:{self.line or 1}: "
        where = f"{fmt_path(self.path)}: " if self.path else ""
        return f"{loc}{where}{self.message}"


class SourceMap:
    """Where each key path of a scenario was written."""

    def __init__(self, file: str, lines: dict[PathT, int]) -> None:
        self.file = file
        self.lines = lines

    def line_of(self, path: PathT) -> int:
        p = tuple(path)
        while p:
            if p in self.lines:
                return self.lines[p]
            p = p[:-1]
        return self.lines.get((), 1)


class _Loader(yaml.SafeLoader):
    pass


def _construct(loader: _Loader, node: yaml.Node, path: PathT, lines: dict[PathT, int], file: str) -> Any:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        out: dict[Any, Any] = {}
        for k_node, v_node in node.value:
            key = loader.construct_object(k_node, deep=True)
            if not isinstance(key, (str, int, float, bool)) or key is None:
                raise ScenarioError("keys must be plain strings", path, file, k_node.start_mark.line + 1)
            if isinstance(key, (int, float, bool)):
                key = str(key).lower() if isinstance(key, bool) else str(key)
            if key in out:
                first = lines.get(path + (key,))
                raise ScenarioError(f"duplicate key {key!r} (first on line {first})", path + (key,), file,
                                    k_node.start_mark.line + 1)
            lines[path + (key,)] = k_node.start_mark.line + 1
            out[key] = _construct(loader, v_node, path + (key,), lines, file)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(loader, v, path + (i,), lines, file) for i, v in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def _parse_yaml(text: str, file: str) -> tuple[Any, dict[PathT, int]]:
    loader = _Loader(text)
    lines: dict[PathT, int] = {}
    try:
        node = loader.get_single_node()
        if node is None:
            return None, lines
        return _construct(loader, node, (), lines, file), lines
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else 1
        problem = (e.problem or str(e)).strip()
        ctx = f" ({e.context.strip()})" if e.context else ""
        raise ScenarioError(f"YAML syntax error: {problem}{ctx}", (), file, line) from None
    except yaml.YAMLError as e:
        raise ScenarioError(f"YAML error: {e}", (), file, 1) from None
    finally:
        loader.dispose()


def _model_at(path: PathT, data: Any) -> type[BaseModel] | None:
    """The pydantic model that validates the mapping at ``path`` (for key suggestions)."""
    tp: Any = Scenario
    cur = data
    for p in path:
        tp = _unwrap(tp, cur)
        if tp is None:
            return None
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = next((f for n, f in tp.model_fields.items() if (f.alias or n) == p or n == p), None)
            if field is None:
                return None
            tp = field.annotation
        else:
            origin = typing.get_origin(tp)
            args = typing.get_args(tp)
            if origin is dict:
                tp = args[1]
            elif origin is list:
                tp = args[0]
            else:
                return None
        cur = cur.get(p) if isinstance(cur, dict) else (cur[p] if isinstance(cur, list) and isinstance(p, int)
                                                          and p < len(cur) else None)
    tp = _unwrap(tp, cur)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _unwrap(tp: Any, cur: Any) -> Any:
    for _ in range(8):
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
            continue
        if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            pick = None
            for a in args:
                a0 = _unwrap(a, cur)
                if isinstance(a0, type) and issubclass(a0, BaseModel) and isinstance(cur, dict):
                    app = a0.model_fields.get("app")
                    if app is None or typing.get_args(app.annotation) == (cur.get("app"),):
                        pick = a0
                        break
                elif typing.get_origin(a0) is dict and isinstance(cur, dict):
                    pick = a0
                elif typing.get_origin(a0) is list and isinstance(cur, list):
                    pick = a0
            if pick is None:
                return args[0] if len(args) == 1 else None
            tp = pick
            continue
        return tp
    return tp


def _allowed_keys(model: type[BaseModel]) -> list[str]:
    return [f.alias or n for n, f in model.model_fields.items()]


def _clean_loc(loc: tuple[Any, ...], data: Any) -> PathT:
    """Drop pydantic's union-member and type tags from an error location."""
    out: list[Any] = []
    cur = data
    for p in loc:
        if isinstance(cur, dict) and p in cur:
            out.append(p)
            cur = cur[p]
        elif isinstance(cur, list) and isinstance(p, int) and 0 <= p < len(cur):
            out.append(p)
            cur = cur[p]
        elif isinstance(cur, dict) and isinstance(p, str) and p not in WORKLOAD_APPS and not p.startswith(
                ("list[", "dict[", "function-")):
            out.append(p)           # a key that is missing or unknown here
            cur = None
        # else: a tag such as 'udp', 'list[str]', 'function-after[...]': skip
    return tuple(out)


def _message(err: dict[str, Any], path: PathT, data: Any) -> str:
    typ = err["type"]
    msg: str = err["msg"]
    if typ == "extra_forbidden":
        key = path[-1] if path else ""
        if key in RENAMED_KEYS:
            return f"unknown key (renamed: use {RENAMED_KEYS[key]})"
        model = _model_at(path[:-1], data)
        if model is not None:
            close = difflib.get_close_matches(str(key), _allowed_keys(model), n=1, cutoff=0.6)
            if close:
                return f"unknown key (did you mean '{close[0]}'?)"
            return f"unknown key (expected one of: {', '.join(_allowed_keys(model))})"
        return "unknown key"
    if typ == "missing":
        return "required key is missing"
    if typ == "union_tag_invalid" or typ == "union_tag_not_found":
        return f"unknown app (known: {', '.join(WORKLOAD_APPS)})"
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    if typ == "literal_error":
        got = err.get("input")
        return f"{msg}, got {got!r}"
    return msg


def loads(text: str, file: str = "<scenario>") -> Scenario:
    """Parse and validate scenario text; raises :class:`ScenarioError`."""
    data, lines = _parse_yaml(text, file)
    if data is None:
        raise ScenarioError("empty scenario (expected a mapping with at least 'name')", (), file, 1)
    if not isinstance(data, dict):
        raise ScenarioError(f"a scenario is a mapping of keys, got {type(data).__name__}", (), file, 1)
    source = SourceMap(file, lines)
    try:
        sc = Scenario.model_validate(data)
    except ValidationError as e:
        err = e.errors(include_url=False)[0]
        path = _clean_loc(tuple(err["loc"]), data)
        raise ScenarioError(_message(err, path, data), path).located(source) from None
    sc._source = source
    from .check import check  # noqa: PLC0415  (check imports models; keep import cheap for schema)

    try:
        check(sc)
    except ScenarioError as e:
        raise e.located(source) from None
    return sc


def load(path: str | Path) -> Scenario:
    """Read, parse and validate a scenario file; raises :class:`ScenarioError`."""
    p = Path(path)
    file = str(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError("no such file", (), file, 1) from None
    except IsADirectoryError:
        raise ScenarioError("is a directory, not a scenario file", (), file, 1) from None
    except UnicodeDecodeError as e:
        raise ScenarioError(f"not UTF-8 text ({e.reason})", (), file, 1) from None
    except OSError as e:
        raise ScenarioError(f"cannot read: {e.strerror}", (), file, 1) from None
    return loads(text, file)


def source_of(sc: Scenario) -> SourceMap | None:
    """Where ``sc`` was read from (None for scenarios built in Python)."""
    return sc._source
