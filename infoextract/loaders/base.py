"""The loader registry and the helpers every loader shares.

A loader turns one public file format into :class:`~infoextract.records.Record` objects. Loaders
are plain functions ``fn(path, *, option=default, ...) -> list[Record]`` registered under a format
name with :func:`register`; :func:`load_corpus` looks the name up, checks the options against the
function's keyword-only parameters and calls it. Adding a format is one module and one decorator.

Bad input raises :class:`FormatError`, which names the file, the item (a JSON path such as
``data[3].paragraphs[0].qas[2]``, or a line number), what is wrong and how to fix it. Loaders
collect every bad item of a file before raising, so a user fixes a file in one pass.
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from infoextract.records import Record

__all__ = ["LOADERS", "FormatError", "register", "load_corpus", "loader_options"]

Loader = Callable[..., list[Record]]

# format name -> loader function
LOADERS: dict[str, Loader] = {}

_MAX_PROBLEMS_SHOWN = 20
_JSON_NAMES = {dict: "an object", list: "an array", str: "a string", int: "an integer", float: "a number"}


def register(name: str) -> Callable[[Loader], Loader]:
    """Register a loader under a format name (a decorator).

    Raises:
        ValueError: when ``name`` is already taken by another function.
    """

    def decorator(fn: Loader) -> Loader:
        if name in LOADERS and LOADERS[name] is not fn:
            raise ValueError(f"loader name {name!r} is already registered by {LOADERS[name].__module__}; pick another name")
        LOADERS[name] = fn
        return fn

    return decorator


class FormatError(ValueError):
    """A file does not match the format its loader expects.

    Attributes:
        path: the file.
        problems: ``(item, message)`` pairs; ``item`` locates the bad part (a JSON path or
            ``"line N"``), or is ``""`` for a problem with the whole file.
        fix: one sentence saying what the file should look like.
    """

    def __init__(self, path: str | os.PathLike, problems: list[tuple[str, str]], fix: str):
        self.path = str(path)
        self.problems = problems
        self.fix = fix
        shown = "\n".join(
            f"  {self.path}{':' + item if item else ''}: {msg}" for item, msg in problems[:_MAX_PROBLEMS_SHOWN]
        )
        more = len(problems) - _MAX_PROBLEMS_SHOWN
        tail = f"\n  ... and {more} more" if more > 0 else ""
        super().__init__(f"{len(problems)} problem(s) reading {self.path}:\n{shown}{tail}\n{fix}")


def loader_options(name: str) -> dict[str, Any]:
    """The options a format accepts, with their defaults (the loader's keyword-only parameters)."""
    fn = _lookup(name)
    return {
        p.name: p.default
        for p in inspect.signature(fn).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }


def load_corpus(format: str, path: str | os.PathLike, **options: Any) -> list[Record]:
    """Load a file in a public format as records.

    Args:
        format: a registered format name (see ``LOADERS``), e.g. ``"squad"`` or ``"squality"``.
        path: the input file.
        **options: format-specific options (see :func:`loader_options`); ``None`` values are ignored
            so a command line can pass every option it knows.

    Raises:
        KeyError: unknown format (the message lists the known ones).
        TypeError: an option the format does not take (the message lists the ones it takes).
        FileNotFoundError: ``path`` is not a file.
        FormatError: the file does not match the format.
    """
    fn = _lookup(format)
    accepted = loader_options(format)
    given = {k: v for k, v in options.items() if v is not None}
    unknown = sorted(set(given) - set(accepted))
    if unknown:
        takes = ", ".join(sorted(accepted)) or "no options"
        raise TypeError(f"format {format!r} does not take option(s) {', '.join(unknown)}; it takes: {takes}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"input file not found for format {format!r}: {path}")
    return fn(path, **given)


def _lookup(name: str) -> Loader:
    if name not in LOADERS:
        known = ", ".join(sorted(LOADERS))
        raise KeyError(f"unknown corpus format {name!r}; known formats: {known}")
    return LOADERS[name]


# ---------------------------------------------------------------------------------------------
# helpers shared by the format modules


def read_text(path: Path) -> str:
    """Read a whole file as UTF-8 (a leading byte-order mark is dropped), or raise FormatError."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise FormatError(
            path,
            [(f"line {line}", f"not valid UTF-8 (byte {err.start}: {data[err.start:err.start + 1]!r})")],
            "Re-encode the file as UTF-8, e.g. `iconv -f latin1 -t utf-8 IN > OUT`.",
        ) from None


def read_json(path: Path, *, fix: str) -> Any:
    """Parse a whole file as one JSON document, or raise FormatError mentioning JSONL when it is one."""
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        hint = " (the file looks like JSONL: one JSON object a line)" if err.msg == "Extra data" else ""
        raise FormatError(path, [(f"line {err.lineno}", f"invalid JSON: {err.msg} at column {err.colno}{hint}")], fix) from None


def read_jsonl(path: Path, *, fix: str) -> list[tuple[int, Any]]:
    """Parse a JSONL file into ``(line_number, object)`` pairs (blank lines skipped); every bad
    line is reported in one FormatError."""
    text = read_text(path)
    rows: list[tuple[int, Any]] = []
    problems: list[tuple[str, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append((number, json.loads(line)))
        except json.JSONDecodeError as err:
            problems.append((f"line {number}", f"invalid JSON: {err.msg} at column {err.colno}"))
    if problems:
        if len(problems) == 1 and not rows and problems[0][0] == "line 1":
            problems[0] = ("line 1", problems[0][1] + " (a pretty-printed JSON document is not JSONL)")
        raise FormatError(path, problems, fix)
    return rows


class Problems:
    """Collects ``(item, message)`` problems while a loader walks a file; :meth:`raise_if_any`
    raises one FormatError listing them all."""

    def __init__(self, path: Path, fix: str):
        self.path = path
        self.fix = fix
        self.items: list[tuple[str, str]] = []

    def add(self, item: str, message: str) -> None:
        self.items.append((item, message))

    def require(self, obj: Any, item: str, key: str, types: type | tuple[type, ...], what: str) -> Any:
        """Return ``obj[key]`` when it exists with one of ``types``, else record a problem and return None."""
        if not isinstance(obj, dict):
            self.add(item, f"expected a JSON object, got {type(obj).__name__}")
            return None
        if key not in obj:
            self.add(item, f"missing key {key!r} ({what})")
            return None
        value = obj[key]
        if not isinstance(value, types) or isinstance(value, bool):
            names = " or ".join(_JSON_NAMES.get(t, t.__name__) for t in (types if isinstance(types, tuple) else (types,)))
            self.add(item, f"key {key!r} must be {names}, got {_JSON_NAMES.get(type(value), type(value).__name__)}")
            return None
        return value

    def raise_if_any(self) -> None:
        if self.items:
            raise FormatError(self.path, self.items, self.fix)
