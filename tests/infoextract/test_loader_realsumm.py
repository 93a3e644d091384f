"""The REALSumm loader on a tiny hand-made release, its errors, and the real files (skipped when absent)."""

from __future__ import annotations

import csv
import json

import pytest

from infoextract.loaders import FormatError, load_corpus, loader_options
from infoextract.loaders.realsumm import read_realsumm

REF = "<t> kevin carr set off from haytor . </t> <t> he walked 16,000 miles . </t>"
HEADER = ["Input.eventId", "Input.summaryId", "Input.qIdList", "Input.summary_text",
          *[f"Input.statement_{i}" for i in range(1, 4)], *[f"Answer.S{i}Answer" for i in range(1, 4)]]


def scores(lite_a=0.5, lite_b=1.0):
    return {
        "abs": {"0": {"doc_id": "0", "ref_summ": REF, "system_summaries": {
            "t5.txt": {"system_summary": "<t> kevin carr walked 16,000 miles . </t>",
                       "scores": {"litepyramid_recall": lite_a, "rouge_2_recall": 0.2}}}}},
        "ext": {"0": {"doc_id": "0", "ref_summ": REF, "system_summaries": {
            "lead.txt": {"system_summary": "<t> kevin carr set off from haytor -lrb- devon -rrb- . </t>",
                         "scores": {"litepyramid_recall": lite_b, "rouge_2_recall": 0.5}}}}},
    }


def row(system, text, answers):
    statements = ["Kevin Carr set off from Haytor.", "Kevin Carr walked 16,000 miles.", "BLANK"]
    return [ "cnndm7", system, "['10', '11', '12']", text, *statements, *answers, ]


def release(tmp_path, *, lite_a=0.5, rows_abs=None, rows_ext=None):
    (tmp_path / "scores.json").write_text(json.dumps(scores(lite_a)), encoding="utf-8")
    with open(tmp_path / "SCUs_list.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["eventId", "questionId", "questionText"])
        w.writerow(["cnndm7", "10", "Kevin Carr set off from Haytor."])
        w.writerow(["cnndm7", "11", "Kevin Carr walked 16,000 miles."])
    for group, rows in (("abs", rows_abs), ("ext", rows_ext)):
        folder = tmp_path / "annotations" / group
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / f"{group}.csv", "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(HEADER)
            w.writerows(rows)
    return tmp_path / "scores.json"


ABS = [row("t5", "Kevin Carr walked 16,000 miles .", a) for a in (["n", "p", "n"], ["n", "p", "n"], ["p", "p", "n"])]
# four annotators, 2-2 on the first SCU: a tie is absent (the Lite-Pyramid rule of scores.json)
EXT = [row("lead", "kevin carr set off from haytor -lrb- devon -rrb- .", a)
       for a in (["p", "n", "n"], ["p", "n", "n"], ["n", "n", "n"], ["n", "p", "n"])]


def test_records_scus_votes_and_majority(tmp_path):
    path = release(tmp_path, rows_abs=ABS, rows_ext=EXT)
    records = load_corpus("realsumm", path)
    assert [(r.prompt_id, r.author) for r in records] == [("0", "human"), ("0", "abs/t5"), ("0", "ext/lead")]
    ref, t5, lead = records
    assert ref.text == "kevin carr set off from haytor. he walked 16,000 miles."
    assert [s["text"] for s in ref.meta["scus"]] == ["Kevin Carr set off from Haytor.", "Kevin Carr walked 16,000 miles."]
    assert t5.meta["event_id"] == "cnndm7" and t5.meta["litepyramid"] == 0.5
    assert t5.meta["scu_votes"] == {"10": [False, False, True], "11": [True, True, True]}
    assert t5.meta["scu_present"] == {"10": False, "11": True}
    assert lead.meta["scu_present"] == {"10": False, "11": False}  # 2 of 4 is not a majority
    assert t5.text == "Kevin Carr walked 16,000 miles."  # the annotators' cased text, tokenisation undone
    assert lead.text == "kevin carr set off from haytor (devon)."
    assert "annotated_text" not in t5.meta
    assert loader_options("realsumm") == {"annotations": None, "scus": None}


def test_the_joined_data_reproduces_lite_pyramid(tmp_path):
    data = read_realsumm(release(tmp_path, rows_abs=ABS, rows_ext=EXT))
    assert data.systems == ["abs/t5", "ext/lead"]
    assert data.judgments["0"]["abs/t5"].lite_pyramid() == data.lite_pyramid("0", "abs/t5") == 0.5
    assert data.scus["0"] == {10: "Kevin Carr set off from Haytor.", 11: "Kevin Carr walked 16,000 miles."}


def test_a_summary_the_annotators_saw_differently_keeps_both_texts(tmp_path):
    other = [row("t5", "Carr reached Haytor after 16,000 miles .", ["p", "p", "n"])] * 3
    records = load_corpus("realsumm", release(tmp_path, rows_abs=other, rows_ext=EXT))
    t5 = next(r for r in records if r.author == "abs/t5")
    assert t5.text == "kevin carr walked 16,000 miles."
    assert t5.meta["annotated_text"] == "Carr reached Haytor after 16,000 miles."


def test_without_annotations_there_are_scores_only(tmp_path):
    (tmp_path / "scores.json").write_text(json.dumps(scores()), encoding="utf-8")
    records = load_corpus("realsumm", tmp_path / "scores.json")
    assert len(records) == 3 and "scu_votes" not in records[1].meta and records[0].meta["scus"] == []
    with pytest.raises(FileNotFoundError, match="option 'annotations'"):
        load_corpus("realsumm", tmp_path / "scores.json", annotations=tmp_path / "nope")


@pytest.mark.parametrize(("content", "message"), [
    ({"abs": {"0": {"ref_summ": "x", "system_summaries": {"a.txt": {"system_summary": "y", "scores": {}}}}}},
     "litepyramid_recall"),
    ({"abs": {"0": {"system_summaries": {}}}}, "missing key 'ref_summ'"),
    ([1, 2], "expected an object"),
    ({"data": []}, "SQuALITY or SQuAD"),
])
def test_bad_scores_files_name_the_item(tmp_path, content, message):
    (tmp_path / "scores.json").write_text(json.dumps(content), encoding="utf-8")
    with pytest.raises(FormatError, match=message) as err:
        load_corpus("realsumm", tmp_path / "scores.json")
    assert "scores.json" in str(err.value) and "system_summaries" in err.value.fix


def test_bad_annotation_rows_are_all_reported(tmp_path):
    bad = [row("t5", "Kevin Carr walked 16,000 miles .", ["x", "p", "n"]),
           [*row("t5", "Kevin Carr walked 16,000 miles .", ["p", "p", "n"])[:2], "not a list", *row("t5", "", ["p"] * 3)[3:]]]
    with pytest.raises(FormatError) as err:
        load_corpus("realsumm", release(tmp_path, rows_abs=bad, rows_ext=EXT))
    text = str(err.value)
    assert "line 2" in text and "'p' or 'n'" in text and "line 3" in text and "qIdList" in text
    (tmp_path / "annotations" / "abs" / "abs.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(FormatError, match="missing column"):
        load_corpus("realsumm", tmp_path / "scores.json")


def test_real_release_joins_all_25_systems(shared_data):
    data = read_realsumm(shared_data / "realsumm" / "scores.json")
    assert len(data.references) == 100 and len(data.systems) == 25
    assert sum(s.startswith("abs/") for s in data.systems) == 14
    assert len(set(data.event_ids.values())) == 100 and sum(len(s) for s in data.scus.values()) == 1600
    # the majority labels give scores.json's Lite-Pyramid exactly, except for abs/bart_out, whose
    # scores.json entry is a copy of ext/bart_out (see the loader's docstring)
    off = {s for doc, by in data.judgments.items() for s, j in by.items()
           if abs(j.lite_pyramid() - data.lite_pyramid(doc, s)) > 1e-9}
    assert off == {"abs/bart_out"}
    assert all(data.summaries[d]["abs/bart_out"] == data.summaries[d]["ext/bart_out"] for d in data.summaries)
