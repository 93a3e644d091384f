"""SQuAD v1.1 JSON: every human answer span becomes a record.

Format (Rajpurkar et al., 2016): ``{"version": "1.1", "data": [{"title", "paragraphs": [{"context",
"qas": [{"id", "question", "answers": [{"text", "answer_start"}]}]}]}]}``.

Each answer span is one ``author="human"`` record with ``prompt_id`` = the question id,
``prompt`` = the question and ``source`` = the paragraph; ``meta`` keeps ``answer_start``, the
``title`` and the span's position among the question's answers (``answer_index``).

Duplicate spans are **kept** by default: SQuAD's answers come from different crowdworkers, so two
identical spans are two people agreeing, which is exactly the frequency a fact distribution should
see. ``dedupe=True`` keeps the first of each distinct span text instead.
"""

from __future__ import annotations

from pathlib import Path

from infoextract.loaders.base import Problems, read_json, register
from infoextract.records import Record

__all__ = ["load_squad"]

FIX = (
    "A SQuAD v1.1 file is one JSON object {'version': '1.1', 'data': [{'title', 'paragraphs': "
    "[{'context', 'qas': [{'id', 'question', 'answers': [{'text', 'answer_start'}]}]}]}]} "
    "(for the MGTBench CSV use format 'mgtbench'; for other JSON use 'multiref')."
)


@register("squad")
def load_squad(path: Path, *, dedupe: bool = False) -> list[Record]:
    """Load a SQuAD v1.1 JSON file; one human record per answer span.

    Args:
        path: e.g. ``dev-v1.1.json``.
        dedupe: keep only the first of identical spans of a question (default: keep all, since each
            span is a separate annotator).
    """
    doc = read_json(path, fix=FIX)
    problems = Problems(path, FIX)
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        got = f"an object with keys {sorted(doc)[:6]}" if isinstance(doc, dict) else type(doc).__name__
        problems.add("", f"expected a top-level object with a 'data' list, got {got}")
        problems.raise_if_any()
    records: list[Record] = []
    for a, article in enumerate(doc["data"]):
        where = f"data[{a}]"
        paragraphs = problems.require(article, where, "paragraphs", list, "the article's paragraphs")
        title = article.get("title") if isinstance(article, dict) else None
        for p, paragraph in enumerate(paragraphs or []):
            where_p = f"{where}.paragraphs[{p}]"
            context = problems.require(paragraph, where_p, "context", str, "the paragraph text")
            qas = problems.require(paragraph, where_p, "qas", list, "the questions")
            for q, qa in enumerate(qas or []):
                records.extend(_question_records(qa, f"{where_p}.qas[{q}]", context, title, dedupe, problems))
    problems.raise_if_any()
    return records


def _question_records(
    qa: object, where: str, context: str | None, title: str | None, dedupe: bool, problems: Problems
) -> list[Record]:
    qid = problems.require(qa, where, "id", (str, int), "the question id")
    question = problems.require(qa, where, "question", str, "the question text")
    answers = problems.require(qa, where, "answers", list, "the human answer spans")
    if qid is None or question is None or answers is None:
        return []
    out: list[Record] = []
    seen: set[str] = set()
    for i, answer in enumerate(answers):
        text = problems.require(answer, f"{where}.answers[{i}]", "text", str, "the answer span")
        if text is None or (dedupe and text in seen):
            continue
        seen.add(text)
        meta = {"answer_start": answer.get("answer_start"), "answer_index": i}
        if title is not None:
            meta["title"] = title
        out.append(Record(prompt_id=str(qid), text=text, author="human", prompt=question, source=context, meta=meta))
    return out
