"""The loaders on the real public files in ../shared/data (skipped when absent)."""

from __future__ import annotations

import ast
import csv
import json
from collections import Counter

import pytest

from infoextract.loaders import load_corpus


@pytest.fixture(scope="module")
def squad_doc(shared_data):
    return json.loads((shared_data / "squad_chatgpt" / "dev-v1.1.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def squality_rows(shared_data):
    path = shared_data / "squality" / "v1-3_txt_test.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_squad_every_span_is_a_human_record(shared_data, squad_doc):
    records = load_corpus("squad", shared_data / "squad_chatgpt" / "dev-v1.1.json")
    qas = [(p["context"], qa) for a in squad_doc["data"] for p in a["paragraphs"] for qa in p["qas"]]
    assert len(records) == sum(len(qa["answers"]) for _, qa in qas)
    assert len({r.prompt_id for r in records}) == len(qas)
    assert {r.author for r in records} == {"human"}
    # every span sits in its paragraph at its answer_start
    for r in records[::97]:
        start = r.meta["answer_start"]
        assert r.source[start : start + len(r.text)] == r.text
    context, qa = qas[0]
    first = [r for r in records if r.prompt_id == qa["id"]]
    assert [r.text for r in first] == [a["text"] for a in qa["answers"]]
    assert first[0].prompt == qa["question"] and first[0].source == context


def test_squad_dedupe_keeps_distinct_spans(shared_data, squad_doc):
    records = load_corpus("squad", shared_data / "squad_chatgpt" / "dev-v1.1.json", dedupe=True)
    distinct = sum(len({a["text"] for a in qa["answers"]}) for a in squad_doc["data"] for p in a["paragraphs"] for qa in p["qas"])
    assert len(records) == distinct
    per_prompt = Counter((r.prompt_id, r.text) for r in records)
    assert max(per_prompt.values()) == 1


def test_squality_four_human_responses_per_question(shared_data, squality_rows):
    records = load_corpus("squality", shared_data / "squality" / "v1-3_txt_test.jsonl")
    n_questions = sum(len(row["questions"]) for row in squality_rows)
    assert len({r.prompt_id for r in records}) == n_questions
    assert Counter(Counter(r.prompt_id for r in records).values()) == {4: n_questions}
    row = squality_rows[0]
    q = row["questions"][0]
    pid = f"{row['metadata']['passage_id']}/{q['question_number']}"
    mine = [r for r in records if r.prompt_id == pid]
    assert [r.text for r in mine] == [x["response_text"] for x in q["responses"]]
    assert mine[0].source == row["document"] and mine[0].prompt == q["question_text"]
    assert [r.meta["worker_id"] for r in mine] == [x["worker_id"] for x in q["responses"]]


def test_squality_eval_joins_with_the_story_file(shared_data):
    stories = shared_data / "squality" / "v1-3_txt_test.jsonl"
    refs = load_corpus("squality", stories)
    ref_ids = {r.prompt_id for r in refs}
    rated = load_corpus("squality-eval", shared_data / "squality" / "human-eval_all-responses.jsonl", stories=stories)
    assert Counter(r.author for r in rated) == {"bart": 100, "bart-dpr": 100, "human": 100}
    assert {r.prompt_id for r in rated} <= ref_ids
    for r in rated:
        assert len(r.meta["reviews"]) == 3
        assert 0 <= r.meta["overall"]["overall-rating"] <= 100
        assert r.prompt and r.source
    # the key -> question_number mapping is right iff every rated human response is one of the
    # four references of the prompt it was mapped to
    by_prompt = {}
    for r in refs:
        by_prompt.setdefault(r.prompt_id, set()).add(r.text.strip())
    humans = [r for r in rated if r.author == "human"]
    assert all(h.text.strip() in by_prompt[h.prompt_id] for h in humans)
    assert all(h.meta["reference_uid"] for h in humans)
    assert not any("reference_uid" in r.meta for r in rated if r.author != "human")


def test_squality_eval_without_stories_has_ids_but_no_text(shared_data):
    rated = load_corpus("squality-eval", shared_data / "squality" / "human-eval_all-responses.jsonl")
    assert len(rated) == 300
    assert all(r.prompt is None and r.source is None and "/" in r.prompt_id for r in rated)


def test_mgtbench_human_spans_and_chatgpt(shared_data):
    path = shared_data / "squad_chatgpt" / "SQuAD1_chatgpt.csv"
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    records = load_corpus("mgtbench", path)
    authors = Counter(r.author for r in records)
    assert authors["chatgpt"] == len(rows)
    assert authors["human"] == sum(len(ast.literal_eval(row["answers"])["text"]) for row in rows)
    chatgpt = {r.prompt_id: r.text for r in records if r.author == "chatgpt"}
    assert chatgpt[rows[0]["id"]] == rows[0]["chatgpt_answer"]
    # the CSV's ids are SQuAD dev question ids: the two loaders join on prompt_id
    squad_ids = {r.prompt_id for r in load_corpus("squad", shared_data / "squad_chatgpt" / "dev-v1.1.json")}
    assert set(chatgpt) <= squad_ids
