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
                raise ScenarioError(f"keys must be plain strings, got {_describe(key)}", path, file,
                                    k_node.start_mark.line + 1)
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


def _unclosed_flow(text: str) -> yaml.Token | None:
    """The innermost ``[`` or ``{`` that is still open where the text ends (or stops scanning)."""
    stack: list[yaml.Token] = []
    try:
        for tok in yaml.scan(text, Loader=yaml.SafeLoader):
            if isinstance(tok, (yaml.FlowSequenceStartToken, yaml.FlowMappingStartToken)):
                stack.append(tok)
            elif isinstance(tok, (yaml.FlowSequenceEndToken, yaml.FlowMappingEndToken)) and stack:
                stack.pop()
    except yaml.YAMLError:
        pass
    return stack[-1] if stack else None


def _yaml_error(e: yaml.MarkedYAMLError, text: str, file: str) -> ScenarioError:
    """One line for a YAML syntax error, on a line of the file, in words a user can act on."""
    n_lines = max(1, len(text.splitlines()))
    problem = (e.problem or str(e)).strip()
    context = (e.context or "").strip()
    pmark = e.problem_mark or e.context_mark
    line = pmark.line + 1 if pmark else 1
    at_end = pmark is not None and not text[pmark.index:].strip()
    msg = problem
    if at_end:
        tok = _unclosed_flow(text)
        if tok is not None:
            bracket = "[" if isinstance(tok, yaml.FlowSequenceStartToken) else "{"
            closer = "]" if bracket == "[" else "}"
            return ScenarioError(f"YAML syntax error: '{bracket}' is never closed (expected '{closer}')", (), file,
                                 tok.start_mark.line + 1)
        if e.context_mark is not None and text[e.context_mark.index:].strip():
            line = e.context_mark.line + 1
            if "quoted scalar" in context:
                return ScenarioError("YAML syntax error: a quoted string is never closed", (), file, line)
        else:
            line = min(line, n_lines)
        msg = f"{problem.replace('<stream end>', 'the end of the file')}"
        return ScenarioError(f"YAML syntax error: {msg}{f' ({context})' if context else ''}", (), file, line)
    if "'\\t'" in problem:
        return ScenarioError("YAML syntax error: a tab character; YAML indents with spaces only", (), file, line)
    if problem.startswith("expected <block end>, but found"):
        found = problem.rsplit("found", 1)[1].strip()
        if found in ("']'", "'}'"):
            return ScenarioError(f"YAML syntax error: {found} closes nothing", (), file, line)
        return ScenarioError("YAML syntax error: bad indentation (this line does not line up with the keys "
                             "or items before it)", (), file, line)
    if problem == "mapping values are not allowed here":
        return ScenarioError("YAML syntax error: unexpected ':' (bad indentation, or a value with ': ' in it "
                             "that needs quotes)", (), file, line)
    if problem == "but found another document":
        return ScenarioError("YAML syntax error: a scenario file holds one document (remove the '---')", (), file,
                             line)
    if context and e.context_mark is not None and e.context_mark.line + 1 != line:
        context = f"{context} started on line {e.context_mark.line + 1}"
    return ScenarioError(f"YAML syntax error: {msg}{f' ({context})' if context else ''}", (), file, line)


def _parse_yaml(text: str, file: str) -> tuple[Any, dict[PathT, int]]:
    loader = _Loader(text)
    lines: dict[PathT, int] = {}
    try:
        node = loader.get_single_node()
        if node is None:
            return None, lines
        return _construct(loader, node, (), lines, file), lines
    except yaml.MarkedYAMLError as e:
        raise _yaml_error(e, text, file) from None
    except yaml.YAMLError as e:
        raise ScenarioError(f"YAML error: {str(e).splitlines()[0]}", (), file, 1) from None
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


def _clean_loc(loc: tuple[Any, ...], data: Any) -> tuple[PathT, str | None]:
    """Drop pydantic's union-member and type tags from an error location.

    Returns the key path and, when the error comes from a member of a union that does not
    fit the value written (the ``list[str]`` member of ``list[str] | dict[...]`` given a
    mapping), what that member expected (``"a list"``), else None.
    """
    out: list[Any] = []
    cur = data
    wrong_branch: str | None = None
    for p in loc:
        if isinstance(cur, dict) and p in cur:
            out.append(p)
            cur = cur[p]
        elif isinstance(cur, list) and isinstance(p, int) and 0 <= p < len(cur):
            out.append(p)
            cur = cur[p]
        elif isinstance(p, str) and p.startswith(("list[", "dict[")):
            kind = "a list" if p.startswith("list[") else "a mapping"
            if not isinstance(cur, list if kind == "a list" else dict) and wrong_branch is None:
                wrong_branch = kind
        elif isinstance(cur, dict) and isinstance(p, str) and p not in WORKLOAD_APPS and p != "[key]" and \
                not p.startswith(("function-", "nullable[")):
            out.append(p)           # a key that is missing or unknown here
            cur = None
        # else: a tag such as 'udp', '[key]' (the key itself is bad), 'function-after[...]': skip
    return tuple(out), wrong_branch


def _describe(v: Any) -> str:
    """A YAML value as the user wrote it, for messages."""
    if isinstance(v, dict):
        return "a mapping"
    if isinstance(v, list):
        return "a list"
    if v is None:
        return "nothing (null)"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return repr(v)
    return str(v)


_KIND = {list: "a list", str: "a string", int: "a number", float: "a number", bool: "true or false"}

_EXPECTED = {
    "int_parsing": "an integer", "int_type": "an integer", "int_from_float": "a whole number",
    "float_parsing": "a number", "float_type": "a number",
    "bool_parsing": "true or false", "bool_type": "true or false",
    "string_type": "a string",
    "dict_type": "a mapping", "model_type": "a mapping", "model_attributes_type": "a mapping",
    "list_type": "a list",
}


def _message(err: dict[str, Any], path: PathT, data: Any) -> str:
    typ = err["type"]
    msg: str = err["msg"]
    ctx = err.get("ctx") or {}
    got = _describe(err.get("input"))
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
    if typ == "union_tag_not_found":
        return f"required key is missing (apps: {', '.join(WORKLOAD_APPS)})"
    if typ == "union_tag_invalid":
        tag = ctx.get("tag", err.get("input"))
        close = difflib.get_close_matches(str(tag), WORKLOAD_APPS, n=1, cutoff=0.6)
        hint = f"did you mean '{close[0]}'? " if close else ""
        return f"unknown app {tag!r} ({hint}known: {', '.join(WORKLOAD_APPS)})"
    if typ == "string_type" and isinstance(err.get("input"), (int, float)) and not isinstance(err.get("input"), bool):
        return f"expected a string, got the number {got} (quote it: \"{got}\")"
    if typ in _EXPECTED:
        return f"expected {_EXPECTED[typ]}, got {got}"
    if typ == "greater_than_equal":
        why = " (IPv4 needs at least 68)" if path and path[-1] == "mtu" else ""
        return f"must be at least {ctx.get('ge')}{why}, got {got}"
    if typ == "greater_than":
        return f"must be greater than {ctx.get('gt')}, got {got}"
    if typ == "less_than_equal":
        return f"must be at most {ctx.get('le')}, got {got}"
    if typ == "less_than":
        return f"must be less than {ctx.get('lt')}, got {got}"
    if typ == "string_pattern_mismatch":
        return (f"bad name {got}: use letters, digits, '_', '.' and '-', starting with a letter or digit"
                if str(ctx.get("pattern", "")).startswith("^[a-zA-Z0-9][") else
                f"bad value {got} (must match {ctx.get('pattern')})")
    if typ == "string_too_long":
        return f"too long: at most {ctx.get('max_length')} characters, got {got}"
    if typ in ("too_short", "too_long"):
        lo, hi = ctx.get("min_length"), ctx.get("max_length")
        n = ctx.get("actual_length")
        want = f"exactly {lo}" if typ == "too_short" and path and path[-1] == "endpoints" else (
            f"at least {lo}" if typ == "too_short" else f"at most {hi}")
        return f"expected {want} items, got {n}"
    if msg.startswith("Value error, "):
        return msg[len("Value error, "):]
    if msg.startswith("Input should be "):
        return f"expected {msg[len('Input should be '):]}, got {got}"
    return msg


def _pick_error(errors: list[dict[str, Any]], data: Any, source: "SourceMap") -> tuple[str, PathT]:
    """The one error to report: the first in the file, not an artefact of another one.

    Errors from union members that do not fit the value are dropped (unless every member
    failed that way: then "expected a list or a mapping"); a missing key next to an unknown
    key is most likely that key misspelt, so the unknown key is reported.
    """
    cands: list[tuple[PathT, str, dict[str, Any] | None]] = []
    wrong: dict[PathT, list[str]] = {}
    wrong_input: dict[PathT, Any] = {}
    for err in errors:
        path, wrong_branch = _clean_loc(tuple(err["loc"]), data)
        if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
            path = path + ("app",)
        if wrong_branch is not None:
            wrong.setdefault(path, [])
            if wrong_branch not in wrong[path]:
                wrong[path].append(wrong_branch)
            wrong_input[path] = err.get("input")
            continue
        cands.append((path, err["type"], err))
    for path, kinds in wrong.items():
        if not any(c[0][:len(path)] == path for c in cands):
            cands.append((path, "wrong_type", None))
    unknown_parents = {c[0][:-1] for c in cands if c[1] == "extra_forbidden"}
    kept = [c for c in cands if not (c[1] == "missing" and c[0][:-1] in unknown_parents)] or cands
    path, _typ, err = min(enumerate(kept), key=lambda ic: (source.line_of(ic[1][0]), ic[0]))[1]
    if err is None:
        return f"expected {' or '.join(wrong[path])}, got {_describe(wrong_input[path])}", path
    return _message(err, path, data), path


def loads(text: str, file: str = "<scenario>") -> Scenario:
    """Parse and validate scenario text; raises :class:`ScenarioError`."""
    data, lines = _parse_yaml(text, file)
    if data is None:
        raise ScenarioError("empty scenario (expected a mapping with at least 'name')", (), file, 1)
    if not isinstance(data, dict):
        raise ScenarioError(f"a scenario is a mapping of keys (name:, hosts:, containers:, ...), got "
                            f"{_KIND.get(type(data), 'a ' + type(data).__name__)}",
                            (), file, 1)
    source = SourceMap(file, lines)
    try:
        sc = Scenario.model_validate(data)
    except ValidationError as e:
        msg, path = _pick_error(e.errors(include_url=False), data, source)
        raise ScenarioError(msg, path).located(source) from None
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
