"""`esfit convert` through click's runner."""

from __future__ import annotations

import json
import re

from click.testing import CliRunner

from esfit.cli import main
from infoextract.records import read_records

ITEMS = [
    {"prompt_id": "a", "source": "Doc A.", "references": ["r1", "r2 two words"], "systems": {"bart": "x"}},
    {"prompt_id": "b", "references": ["r3"], "systems": {"bart": "y"}},
]


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_convert_writes_records_and_summarises(tmp_path):
    src = tmp_path / "in.json"
    src.write_text(json.dumps(ITEMS), encoding="utf-8")
    out = tmp_path / "sub" / "corpus.jsonl"
    result = run("convert", "multiref", src, "-o", out)
    assert result.exit_code == 0, result.output
    records = read_records(out)
    assert [(r.prompt_id, r.author, r.text) for r in records] == [
        ("a", "human", "r1"), ("a", "human", "r2 two words"), ("a", "bart", "x"), ("b", "human", "r3"), ("b", "bart", "y")]
    assert "5 records, 2 prompts (2-3 records per prompt)" in result.output
    # human: 1 + 3 + 1 words over 3 records
    assert re.search(r"human\s+3 records\s+1\.7 words on average", result.output)
    assert re.search(r"bart\s+2 records\s+1\.0 words on average", result.output)
    result = run("convert", "multiref", src, "-o", out, "--max-prompts", 1)
    assert result.exit_code == 0 and {r.prompt_id for r in read_records(out)} == {"a"}


def test_convert_bad_input_is_one_clear_error_and_writes_nothing(tmp_path):
    src = tmp_path / "in.json"
    src.write_text(json.dumps([{"references": ["r"]}]), encoding="utf-8")
    out = tmp_path / "corpus.jsonl"
    result = run("convert", "multiref", src, "-o", out)
    assert result.exit_code == 1
    assert "in.json:[0]: missing key 'prompt_id'" in result.output and "Traceback" not in result.output
    assert not out.exists()


def test_convert_unknown_format_and_foreign_option(tmp_path):
    src = tmp_path / "in.json"
    src.write_text(json.dumps(ITEMS), encoding="utf-8")
    result = run("convert", "summeval", src, "-o", tmp_path / "c.jsonl")
    assert result.exit_code == 2 and "squality-eval" in result.output and "multiref" in result.output
    result = run("convert", "multiref", src, "-o", tmp_path / "c.jsonl", "--dedupe")
    assert result.exit_code == 2 and "does not take option(s) dedupe" in result.output


def test_convert_public_squad_file(tmp_path, shared_data):
    out = tmp_path / "squad.jsonl"
    result = run("convert", "squad", shared_data / "squad_chatgpt" / "dev-v1.1.json", "-o", out, "--dedupe")
    assert result.exit_code == 0, result.output
    records = read_records(out)
    assert f"{len(records)} records, 10570 prompts" in result.output
    assert all(r.source and r.prompt and r.author == "human" for r in records)


def test_convert_writes_a_lone_surrogate_back_as_its_json_escape(tmp_path):
    # "\ud800" in a JSON file is a lone surrogate in Python, which strict UTF-8 cannot encode
    src = tmp_path / "in.json"
    src.write_text('[{"prompt_id": "a", "references": ["Paris \\ud800 is in France."], "systems": {}}]', encoding="utf-8")
    out = tmp_path / "corpus.jsonl"
    result = run("convert", "multiref", src, "-o", out)
    assert result.exit_code == 0, result.output
    assert "\\ud800" in out.read_text(encoding="utf-8")
    assert [r.text for r in read_records(out)] == ["Paris \ud800 is in France."]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.jsonl", "in.json"]  # no temporary file left


def _realsumm(tmp_path):
    scores = {"abs": {"0": {"ref_summ": "<t> kevin carr set off from haytor . </t>", "system_summaries": {
        "t5.txt": {"system_summary": "<t> carr left haytor . </t>", "scores": {"litepyramid_recall": 1.0}}}}}}
    (tmp_path / "scores.json").write_text(json.dumps(scores), encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "abs").mkdir(parents=True)
    (tmp_path / "scus.csv").write_text("eventId,questionId,questionText\ncnndm1,0,Carr set off from Haytor.\n",
                                        encoding="utf-8")
    (elsewhere / "abs" / "t5.csv").write_text(
        "Input.eventId,Input.summaryId,Input.qIdList,Input.summary_text,Input.statement_1,Answer.S1Answer\n"
        + "".join(f"cnndm1,t5,['0'],Carr left Haytor .,Carr set off from Haytor.,{a}\n" for a in "ppn"),
        encoding="utf-8")
    return tmp_path / "scores.json", elsewhere


def test_convert_realsumm_with_annotations_elsewhere(tmp_path):
    scores, elsewhere = _realsumm(tmp_path)
    out = tmp_path / "realsumm.jsonl"
    result = run("convert", "realsumm", scores, "-o", out, "--annotations", elsewhere, "--scus", tmp_path / "scus.csv")
    assert result.exit_code == 0, result.output
    records = read_records(out)
    assert [(r.author, r.text) for r in records] == [("human", "kevin carr set off from haytor."),
                                                     ("abs/t5", "Carr left Haytor.")]
    assert records[1].meta["scu_present"] == {"0": True} and records[0].meta["scus"][0]["text"].startswith("Carr")
    assert "2 records, 1 prompts" in result.output
    result = run("convert", "realsumm", scores, "-o", out, "--annotations", tmp_path / "missing")
    assert result.exit_code == 2 and "--annotations" in result.output
    result = run("convert", "squad", scores, "-o", out, "--scus", tmp_path / "scus.csv")
    assert result.exit_code == 2 and "does not take option(s) scus" in result.output
