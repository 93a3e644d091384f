"""MGTBench-style CSV (He et al., 2023): SQuAD questions with human spans and a ChatGPT answer.

Columns: ``id,title,context,question,answers,Question,chatgpt_answer``. ``answers`` is a Python
dict literal ``{'text': [...], 'answer_start': [...]}`` (the Hugging Face ``squad`` layout); it is
parsed with :func:`ast.literal_eval`, which accepts literals only and never runs code.

Each human span becomes an ``author="human"`` record and the ChatGPT answer an ``author="chatgpt"``
record, all with ``prompt_id`` = the SQuAD question id (so they join with :mod:`.squad` records),
the question as ``prompt`` and the paragraph as ``source``. ``Question`` (the full instruction sent
to ChatGPT, passage included) is not kept. Duplicate spans are kept unless ``dedupe=True``, as in
the ``squad`` loader.
"""

from __future__ import annotations

import ast
import csv
import io
from pathlib import Path

from infoextract.loaders.base import Problems, read_text, register
from infoextract.records import Record

__all__ = ["load_mgtbench"]

COLUMNS = ("id", "context", "question", "answers", "chatgpt_answer")
FIX = (
    "An MGTBench CSV has the header id,title,context,question,answers,Question,chatgpt_answer, where "
    "'answers' is a Python dict string like \"{'text': ['1521'], 'answer_start': [89]}\"."
)


@register("mgtbench")
def load_mgtbench(path: Path, *, dedupe: bool = False, model_author: str = "chatgpt") -> list[Record]:
    """Load an MGTBench-style CSV; human spans and the model answer as records.

    Args:
        path: e.g. ``SQuAD1_chatgpt.csv``.
        dedupe: keep only the first of identical human spans of a question.
        model_author: the ``author`` of the model answers.
    """
    problems = Problems(path, FIX)
    # csv needs the text with its own newline handling; read_text already reports non-UTF-8 bytes
    reader = csv.DictReader(io.StringIO(read_text(path), newline=""))
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        problems.add("line 1", f"header lacks column(s) {', '.join(missing)}; found {reader.fieldnames}")
        problems.raise_if_any()
    records: list[Record] = []
    rows: list[tuple[int, dict]] = []
    try:
        # reader.line_num is the physical line where a row ends (quoted fields may hold newlines)
        rows.extend((reader.line_num, row) for row in reader)
    except csv.Error as err:  # e.g. an unclosed quote swallowing the rest of the file
        problems.add(f"line {reader.line_num + 1}", f"not valid CSV: {err}")  # the row after the last good one
        problems.raise_if_any()
    for line, row in rows:
        where = f"line {line} (id {row.get('id')!r})"
        spans = _parse_answers(row.get("answers"), where, problems)
        if spans is None:
            continue
        common = {"prompt": row["question"], "source": row["context"]}
        title = {"title": row["title"]} if row.get("title") else {}
        seen: set[str] = set()
        for i, (text, start) in enumerate(spans):
            if dedupe and text in seen:
                continue
            seen.add(text)
            meta = {"answer_start": start, "answer_index": i, **title}
            records.append(Record(row["id"], text, author="human", meta=meta, **common))
        answer = row.get("chatgpt_answer")
        if answer is None:
            problems.add(where, "the row has fewer fields than the header")
            continue
        records.append(Record(row["id"], answer, author=model_author, meta=dict(title), **common))
    problems.raise_if_any()
    return records


def _parse_answers(raw: str | None, where: str, problems: Problems) -> list[tuple[str, int | None]] | None:
    """``"{'text': [...], 'answer_start': [...]}"`` -> [(span, start)], or None after recording a problem."""
    if raw is None:
        problems.add(where, "the row has fewer fields than the header")
        return None
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        problems.add(where, f"column 'answers' is not a Python dict literal: {raw[:60]!r}")
        return None
    texts = value.get("text") if isinstance(value, dict) else None
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        problems.add(where, f"column 'answers' needs a 'text' list of strings, got {raw[:60]!r}")
        return None
    starts = value.get("answer_start")
    if not isinstance(starts, list) or len(starts) != len(texts):
        starts = [None] * len(texts)  # offsets are informative only; their absence loses no answer
    return list(zip(texts, starts))
