import json

import pytest

from infoextract import CorpusError, Record, group_by_prompt, read_records, write_records


def test_round_trip(tmp_path):
    records = [
        Record("q1", "Paris is the capital.", author="human", prompt="Capital?", source="France...", meta={"r": 1}),
        Record("q1", "It is Paris.", author="model"),
        Record("q2", "", author="human"),
    ]
    path = tmp_path / "c.jsonl"
    assert write_records(records, path) == 3
    back = read_records(path)
    assert back == records
    assert back[0].meta == {"r": 1}
    assert list(group_by_prompt(back)) == ["q1", "q2"]


def test_every_bad_line_is_reported_with_its_number(tmp_path):
    path = tmp_path / "bad.jsonl"
    lines = [
        json.dumps({"prompt_id": "a", "text": "fine"}).encode(),
        b"{not json",
        json.dumps({"text": "no id"}).encode(),
        json.dumps({"prompt_id": "a", "text": 3}).encode(),
        b"\xff\xfe bad bytes",
        json.dumps([1, 2]).encode(),
        json.dumps({"prompt_id": "a", "text": "x", "meta": "nope"}).encode(),
        b"",
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(CorpusError) as info:
        read_records(path)
    err = info.value
    assert [line for line, _ in err.problems] == [2, 3, 4, 5, 6, 7]
    text = str(err)
    assert f"{path}:3: missing required field 'text'" not in text  # line 3 lacks prompt_id
    assert f"{path}:3: missing required field 'prompt_id'" in text
    assert "not valid UTF-8" in text and "invalid JSON" in text and "'meta' must be an object" in text
    assert read_records(path, on_error="skip") == [Record("a", "fine")]


def test_int_prompt_id_and_unknown_fields_are_kept(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"prompt_id": 7, "text": "t", "rating": 4}) + "\n", encoding="utf-8")
    (record,) = read_records(path)
    assert record.prompt_id == "7" and record.meta == {"rating": 4}


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        read_records(tmp_path / "nope.jsonl")
