"""Corpus records and JSONL input/output.

A corpus is JSONL, one :class:`Record` a line. The reader validates every line and reports every
bad one (file, line number, what is wrong and how to fix it) in one :class:`CorpusError`, so a
user fixes a file in one pass instead of one error at a time.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Record", "CorpusError", "read_records", "iter_records", "write_records", "group_by_prompt"]

# field name -> accepted JSON types; prompt_id may be an int in files written by other tools
_REQUIRED = {"prompt_id": (str, int), "text": (str,)}
_OPTIONAL = {"author": (str,), "prompt": (str,), "source": (str,), "meta": (dict,)}
_MAX_ERRORS_SHOWN = 20


@dataclass(frozen=True)
class Record:
    """One text of a corpus: an answer (by a human or a model) to one prompt.

    Attributes:
        prompt_id: identifies the prompt; texts with the same id answer the same prompt.
        text: the answer.
        author: who wrote it: ``"human"``, ``"model"`` or a system name.
        prompt: the question or instruction, when known.
        source: the document the text is about (a SQuAD paragraph, a story), when known.
        meta: anything else (ratings, worker ids); must be JSON-serialisable.
    """

    prompt_id: str
    text: str
    author: str = "human"
    prompt: str | None = None
    source: str | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object written for this record (``None`` fields and empty meta left out)."""
        return {k: v for k, v in asdict(self).items() if v is not None and v != {}}


class CorpusError(ValueError):
    """A corpus file has bad lines. ``problems`` holds ``(line_number, message)`` pairs."""

    def __init__(self, path: str | os.PathLike, problems: list[tuple[int, str]]):
        self.path = str(path)
        self.problems = problems
        shown = "\n".join(f"  {self.path}:{line}: {msg}" for line, msg in problems[:_MAX_ERRORS_SHOWN])
        more = len(problems) - _MAX_ERRORS_SHOWN
        tail = f"\n  ... and {more} more" if more > 0 else ""
        super().__init__(
            f"{len(problems)} bad line(s) in corpus {self.path}:\n{shown}{tail}\n"
            "Each line must be a JSON object with a string 'prompt_id' and a string 'text' "
            "(optional: 'author', 'prompt', 'source' strings and a 'meta' object)."
        )


def _parse_line(raw: bytes) -> tuple[Record | None, str | None]:
    """Parse one JSONL line into a Record, or return the reason it is bad."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        return None, f"not valid UTF-8 (byte {err.start}: {raw[err.start:err.start + 1]!r}); re-encode the file as UTF-8"
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as err:
        return None, f"invalid JSON ({err.msg} at column {err.colno})"
    if not isinstance(obj, dict):
        return None, f"expected a JSON object, got {type(obj).__name__}"
    for name, types in _REQUIRED.items():
        if name not in obj:
            return None, f"missing required field '{name}'"
        if not isinstance(obj[name], types) or isinstance(obj[name], bool):
            return None, f"field '{name}' must be a string, got {type(obj[name]).__name__}"
    for name, types in _OPTIONAL.items():
        if obj.get(name) is not None and not isinstance(obj[name], types):
            want = "an object" if name == "meta" else "a string"
            return None, f"field '{name}' must be {want}, got {type(obj[name]).__name__}"
    extra = {k: v for k, v in obj.items() if k not in _REQUIRED and k not in _OPTIONAL}
    meta = dict(obj.get("meta") or {})
    meta.update(extra)  # unknown top-level fields are kept, not lost
    return Record(
        prompt_id=str(obj["prompt_id"]),
        text=obj["text"],
        author=obj.get("author") or "human",
        prompt=obj.get("prompt"),
        source=obj.get("source"),
        meta=meta,
    ), None


def iter_records(path: str | os.PathLike, *, on_error: str = "raise") -> Iterator[Record]:
    """Yield the records of a JSONL corpus.

    Args:
        path: the corpus file.
        on_error: ``"raise"`` collects every bad line and raises one :class:`CorpusError` at the end
            (after yielding the good ones); ``"skip"`` drops bad lines silently.

    Blank lines are skipped.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"corpus file not found: {path}")
    problems: list[tuple[int, str]] = []
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            record, problem = _parse_line(raw)
            if problem is not None:
                problems.append((number, problem))
            else:
                yield record
    if problems and on_error == "raise":
        raise CorpusError(path, problems)


def read_records(path: str | os.PathLike, *, on_error: str = "raise") -> list[Record]:
    """Read a whole JSONL corpus; see :func:`iter_records`. An error leaves nothing half-read."""
    return list(iter_records(path, on_error=on_error))


def write_records(records: Iterable[Record], path: str | os.PathLike) -> int:
    """Write records as JSONL (UTF-8), atomically: a crash never leaves a half-written corpus.

    Returns the number of records written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    count = 0
    with tmp.open("w", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record.to_dict(), ensure_ascii=False) + "\n")
            count += 1
    os.replace(tmp, path)
    return count


def group_by_prompt(records: Iterable[Record]) -> dict[str, list[Record]]:
    """Group records by ``prompt_id``, keeping first-seen order of prompts and of records."""
    groups: dict[str, list[Record]] = {}
    for record in records:
        groups.setdefault(record.prompt_id, []).append(record)
    return groups
