"""SQuALITY (Wang et al., 2022): long-story question answering with four human responses.

Two files of the public release are read:

``squality`` — ``data/v1-3/txt/{train,dev,test}.jsonl``, one story a line: ``{"metadata":
{"passage_id", ...}, "document": story, "questions": [{"question_text", "question_number",
"responses": [{"worker_id", "uid", "response_text"}]}]}``. Each response becomes a human record
with ``prompt_id`` ``"<passage_id>/<question_number>"``, the question as ``prompt`` and the story as
``source``; ``meta`` keeps ``worker_id``, ``uid``, ``passage_id`` and ``question_number``.

``squality-eval`` — ``data/human-eval/all-responses.jsonl``: ``{"passage-id", "questions": {"0"..
"4": {"bart" | "bart-dpr" | "human": {"response", "reviews": [...], "overall": {...}}}}}``. Each
response becomes a record whose ``author`` is the system (``"bart"``, ``"bart-dpr"``, ``"human"``)
and whose ``meta`` carries the ratings: ``overall`` (the mean correctness/selection/overall ratings
and rankings) and ``reviews`` (each reviewer's ratings, ranks and comments). The question key ``"k"``
is question number ``k + 1`` (checked on the public files: the "human" response under key ``"k"`` is
one of the four references of question ``k + 1``), so prompt ids join with the ``squality`` records.
With ``stories=`` (the matching ``squality`` file), each record also gets the question text and the
story, and a human response gets ``meta["reference_uid"]``: the uid of the reference it equals, so
it can be left out of the references it is scored against.
"""

from __future__ import annotations

from pathlib import Path

from infoextract.loaders.base import FormatError, Problems, read_jsonl, register
from infoextract.records import Record

__all__ = ["load_squality", "load_squality_eval"]

FIX = (
    "A SQuALITY story file (e.g. v1-3_txt_test.jsonl) has one JSON object a line: {'metadata': "
    "{'passage_id'}, 'document', 'questions': [{'question_text', 'question_number', 'responses': "
    "[{'worker_id', 'uid', 'response_text'}]}]} (for human-eval files use format 'squality-eval')."
)
EVAL_FIX = (
    "A SQuALITY human-eval file (all-responses.jsonl) has one JSON object a line: {'passage-id', "
    "'questions': {'0': {'bart': {'response', 'reviews', 'overall'}, ...}}} (for story files such "
    "as v1-3_txt_test.jsonl use format 'squality')."
)


def prompt_id(passage_id: str | int, question_number: int | str) -> str:
    """The prompt id of one SQuALITY question: ``"<passage_id>/<question_number>"``."""
    return f"{passage_id}/{question_number}"


@register("squality")
def load_squality(path: Path) -> list[Record]:
    """Load a SQuALITY story file; one human record per response."""
    problems = Problems(path, FIX)
    records: list[Record] = []
    for line, row in read_jsonl(path, fix=FIX):
        where = f"line {line}"
        metadata = problems.require(row, where, "metadata", dict, "the story's metadata")
        story = problems.require(row, where, "document", str, "the story text")
        questions = problems.require(row, where, "questions", list, "the questions")
        if metadata is None:
            continue
        passage_id = problems.require(metadata, f"{where} metadata", "passage_id", (str, int), "the story id")
        if passage_id is None or questions is None:
            continue
        for q, question in enumerate(questions):
            where_q = f"{where} questions[{q}]"
            text = problems.require(question, where_q, "question_text", str, "the question")
            number = problems.require(question, where_q, "question_number", (int, str), "1-based question number")
            responses = problems.require(question, where_q, "responses", list, "the human responses")
            if text is None or number is None or responses is None:
                continue
            for r, response in enumerate(responses):
                answer = problems.require(response, f"{where_q}.responses[{r}]", "response_text", str, "the answer")
                if answer is None:
                    continue
                meta = {
                    "passage_id": str(passage_id),
                    "question_number": number,
                    "worker_id": response.get("worker_id"),
                    "uid": response.get("uid"),
                }
                records.append(
                    Record(prompt_id(passage_id, number), answer, author="human", prompt=text, source=story, meta=meta)
                )
    problems.raise_if_any()
    return records


@register("squality-eval")
def load_squality_eval(path: Path, *, stories: str | Path | None = None) -> list[Record]:
    """Load a SQuALITY human-eval file; one record per system response, ratings in ``meta``.

    Args:
        path: e.g. ``all-responses.jsonl``.
        stories: the SQuALITY story file of the same split (e.g. ``v1-3_txt_test.jsonl``); adds the
            question and story to each record and ``reference_uid`` to human responses.
    """
    questions = _index_stories(Path(stories)) if stories is not None else None
    problems = Problems(path, EVAL_FIX)
    records: list[Record] = []
    for line, row in read_jsonl(path, fix=EVAL_FIX):
        where = f"line {line}"
        passage_id = problems.require(row, where, "passage-id", (str, int), "the story id")
        by_key = problems.require(row, where, "questions", dict, "the rated responses per question")
        if passage_id is None or by_key is None:
            continue
        for key, systems in by_key.items():
            where_q = f"{where} questions[{key!r}]"
            if not str(key).isdigit():
                problems.add(where_q, f"question key must be '0'..'4', got {key!r}")
                continue
            number = int(key) + 1  # "0" is question_number 1 (see module docstring)
            pid = prompt_id(passage_id, number)
            prompt, story, refs = None, None, {}
            if questions is not None:
                if pid not in questions:
                    problems.add(where_q, f"prompt {pid} is not in the stories file {stories}; pass the story file of the same split")
                    continue
                prompt, story, refs = questions[pid]
            if not isinstance(systems, dict):
                problems.add(where_q, f"expected an object of systems, got {type(systems).__name__}")
                continue
            for system, rated in systems.items():
                where_s = f"{where_q}[{system!r}]"
                text = problems.require(rated, where_s, "response", str, "the system's response")
                if text is None:
                    continue
                meta = {
                    "passage_id": str(passage_id),
                    "question_number": number,
                    "overall": rated.get("overall", {}),
                    "reviews": rated.get("reviews", []),
                }
                if text.strip() in refs:
                    meta["reference_uid"] = refs[text.strip()]
                records.append(Record(pid, text, author=str(system), prompt=prompt, source=story, meta=meta))
    problems.raise_if_any()
    return records


def _index_stories(path: Path) -> dict[str, tuple[str, str, dict[str, str]]]:
    """prompt id -> (question, story, {reference text: uid}) from a story file."""
    if not path.is_file():
        raise FileNotFoundError(f"stories file not found (option 'stories'): {path}")
    try:
        records = load_squality(path)
    except FormatError as err:
        raise FormatError(err.path, err.problems, "Option 'stories' must be a SQuALITY story file. " + err.fix) from None
    index: dict[str, tuple[str, str, dict[str, str]]] = {}
    for r in records:
        _, _, refs = index.setdefault(r.prompt_id, (r.prompt or "", r.source or "", {}))
        refs[r.text.strip()] = r.meta.get("uid")
    return index
