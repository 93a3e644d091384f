"""Generic multi-reference JSON or JSONL, the way most summarisation evaluation sets are shared.

One item per prompt::

    {"prompt_id": "doc-7", "source": "...", "prompt": "Summarise the article.",   # prompt optional
     "references": ["...", {"text": "...", "author": "annotator-2", ...}],
     "systems": {"bart": "...", "pegasus": ["sample 1", "sample 2"], "t5": {"text": "...", "score": 0.4}}}

The file is either a JSON array of items (or a single item) or JSONL, one item a line.
``references`` become records with ``author="human"`` (or the reference's own ``author``) and
``meta["reference_index"]``; each system output becomes a record whose ``author`` is the system
name (a list gives several samples, ``meta["sample_index"]``). A reference or system given as an
object keeps its other keys (ratings, ids) in ``meta``; other item keys go to every record's
``meta``. An item needs at least one reference or system output.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from infoextract.loaders.base import FormatError, Problems, read_jsonl, read_text, register
from infoextract.records import Record

__all__ = ["load_multiref"]

FIX = (
    "A multi-reference file is a JSON array (or JSONL) of objects {'prompt_id', 'source'?, 'prompt'?, "
    "'references': [text or {'text', ...}], 'systems': {name: text, list of texts, or {'text', ...}}}."
)
_ITEM_KEYS = ("prompt_id", "source", "prompt", "references", "systems")


@register("multiref")
def load_multiref(path: Path) -> list[Record]:
    """Load a multi-reference JSON/JSONL file; references as human records, outputs per system."""
    problems = Problems(path, FIX)
    text = read_text(path)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        if err.msg != "Extra data":  # broken JSON; "Extra data" after the first object means JSONL
            raise FormatError(path, [(f"line {err.lineno}", f"invalid JSON: {err.msg} at column {err.colno}")], FIX) from None
        items = [(f"line {n}", obj) for n, obj in read_jsonl(path, fix=FIX)]
    else:
        # a JSON array of items, or a single (maybe pretty-printed) item
        items = [(f"[{i}]", obj) for i, obj in enumerate(doc)] if isinstance(doc, list) else [("item", doc)]
    records: list[Record] = []
    for where, item in items:
        records.extend(_item_records(item, where, problems))
    problems.raise_if_any()
    return records


def _item_records(item: Any, where: str, problems: Problems) -> list[Record]:
    pid = problems.require(item, where, "prompt_id", (str, int), "identifies the prompt")
    if pid is None:
        return []
    for key in ("source", "prompt"):
        if item.get(key) is not None and not isinstance(item[key], str):
            problems.add(where, f"key {key!r} must be a string, got {type(item[key]).__name__}")
            return []
    references = item.get("references") or []
    systems = item.get("systems") or {}
    if not isinstance(references, list) or not isinstance(systems, dict):
        problems.add(where, "'references' must be a list and 'systems' an object of name -> output")
        return []
    if not references and not systems:
        problems.add(where, "no 'references' and no 'systems': the item has no text")
        return []
    shared = {k: v for k, v in item.items() if k not in _ITEM_KEYS}
    common = {"prompt": item.get("prompt"), "source": item.get("source")}
    out: list[Record] = []
    for i, ref in enumerate(references):
        text, extra = _text_and_meta(ref, f"{where}.references[{i}]", problems)
        if text is not None:
            author = str(extra.pop("author", "human"))
            meta = {**shared, **extra, "reference_index": i}
            out.append(Record(str(pid), text, author=author, meta=meta, **common))
    for name, output in systems.items():
        samples = output if isinstance(output, list) else [output]
        for j, sample in enumerate(samples):
            text, extra = _text_and_meta(sample, f"{where}.systems[{json.dumps(name)}]", problems)
            if text is not None:
                meta = {**shared, **extra}
                if isinstance(output, list):
                    meta["sample_index"] = j
                out.append(Record(str(pid), text, author=str(name), meta=meta, **common))
    return out


def _text_and_meta(value: Any, where: str, problems: Problems) -> tuple[str | None, dict[str, Any]]:
    """A text given as a string or as ``{"text": ..., other keys}``."""
    if isinstance(value, str):
        return value, {}
    if not isinstance(value, dict):
        problems.add(where, f"expected a string or an object with 'text', got {type(value).__name__}")
        return None, {}
    text = problems.require(value, where, "text", str, "the text of this reference or output")
    if text is None:
        return None, {}
    return text, {k: v for k, v in value.items() if k != "text"}
