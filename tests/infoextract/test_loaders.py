"""Loader registry, the multi-reference format, and bad input for every format (small files)."""

from __future__ import annotations

import json

import pytest

from infoextract.loaders import LOADERS, FormatError, load_corpus, loader_options, register
from infoextract.records import Record


def write(tmp_path, name, content):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


SQUAD = {
    "version": "1.1",
    "data": [{"title": "T", "paragraphs": [{"context": "Ada was born in 1815 in London.", "qas": [
        {"id": "q1", "question": "When was Ada born?", "answers": [
            {"text": "1815", "answer_start": 16}, {"text": "1815", "answer_start": 16}, {"text": "in 1815", "answer_start": 13}]},
    ]}]}],
}
MGT_HEADER = "id,title,context,question,answers,Question,chatgpt_answer\n"


# ---- registry -----------------------------------------------------------------------------------


def test_known_formats_are_registered():
    assert {"squad", "squality", "squality-eval", "mgtbench", "multiref"} <= set(LOADERS)


def test_unknown_format_lists_the_known_ones(tmp_path):
    with pytest.raises(KeyError) as err:
        load_corpus("squad2", write(tmp_path, "x.json", "{}"))
    assert "squad2" in str(err.value) and "multiref" in str(err.value) and "squality-eval" in str(err.value)


def test_option_the_format_does_not_take_is_named(tmp_path):
    path = write(tmp_path, "s.json", json.dumps(SQUAD))
    with pytest.raises(TypeError, match="stories.*takes: dedupe"):
        load_corpus("squad", path, stories="x.jsonl")
    # None means "not given" so a command line can pass every option it has
    assert len(load_corpus("squad", path, stories=None)) == 3
    assert loader_options("squality-eval") == {"stories": None}


def test_register_a_new_format_and_refuse_a_taken_name(tmp_path):
    @register("lines-test")
    def load_lines(path, *, author="human"):
        return [Record(str(i), line, author=author) for i, line in enumerate(path.read_text().splitlines())]

    try:
        records = load_corpus("lines-test", write(tmp_path, "a.txt", "one\ntwo\n"), author="bot")
        assert [(r.prompt_id, r.text, r.author) for r in records] == [("0", "one", "bot"), ("1", "two", "bot")]
        with pytest.raises(ValueError, match="already registered"):
            register("lines-test")(lambda path: [])
    finally:
        LOADERS.pop("lines-test")


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.json"):
        load_corpus("squad", tmp_path / "nope.json")


# ---- squad --------------------------------------------------------------------------------------


def test_squad_keeps_duplicate_spans_unless_asked(tmp_path):
    path = write(tmp_path, "s.json", json.dumps(SQUAD))
    assert [r.text for r in load_corpus("squad", path)] == ["1815", "1815", "in 1815"]
    deduped = load_corpus("squad", path, dedupe=True)
    assert [(r.text, r.meta["answer_index"]) for r in deduped] == [("1815", 0), ("in 1815", 2)]


def test_squad_given_jsonl_says_so(tmp_path):
    path = write(tmp_path, "s.jsonl", '{"prompt_id": "a", "text": "x"}\n{"prompt_id": "b", "text": "y"}\n')
    with pytest.raises(FormatError, match=r"s\.jsonl:line 2: invalid JSON.*JSONL") as err:
        load_corpus("squad", path)
    assert "SQuAD v1.1 file is one JSON object" in str(err.value)


def test_squad_wrong_top_level(tmp_path):
    with pytest.raises(FormatError, match="'data' list"):
        load_corpus("squad", write(tmp_path, "s.json", json.dumps({"version": "1.1", "articles": []})))


def test_squad_missing_keys_are_all_reported_with_their_item(tmp_path):
    doc = json.loads(json.dumps(SQUAD))
    qa = doc["data"][0]["paragraphs"][0]["qas"][0]
    del qa["question"]
    doc["data"][0]["paragraphs"].append({"qas": []})
    with pytest.raises(FormatError) as err:
        load_corpus("squad", write(tmp_path, "s.json", json.dumps(doc)))
    items = [item for item, _ in err.value.problems]
    assert items == ["data[0].paragraphs[0].qas[0]", "data[0].paragraphs[1]"]
    assert "missing key 'question'" in str(err.value) and "missing key 'context'" in str(err.value)


def test_non_utf8_names_the_line_and_the_fix(tmp_path):
    raw = json.dumps(SQUAD).replace("London", "Lond\u00f3n").encode("latin-1")
    with pytest.raises(FormatError, match=r"(?s)line 1: not valid UTF-8.*iconv"):
        load_corpus("squad", write(tmp_path, "s.json", raw))


# ---- squality -----------------------------------------------------------------------------------


def squality_row(passage_id="p1"):
    return {"metadata": {"passage_id": passage_id}, "document": "A story.", "questions": [
        {"question_text": f"Q{n}?", "question_number": n, "responses": [
            {"worker_id": str(w), "uid": f"{passage_id}-{n}-{w}", "response_text": f"answer {n} by {w}"} for w in range(4)]}
        for n in (1, 2)]}


def test_squality_eval_maps_key_k_to_question_k_plus_1(tmp_path):
    stories = write(tmp_path, "test.jsonl", json.dumps(squality_row()) + "\n")
    rated = {"passage-id": "p1", "questions": {
        "1": {"human": {"response": "answer 2 by 3", "reviews": [{"overall-rating": 80}], "overall": {"overall-rating": 80.0}},
              "bart": {"response": "A model answer.", "reviews": [], "overall": {"overall-rating": 10.0}}}}}
    path = write(tmp_path, "eval.jsonl", json.dumps(rated) + "\n")
    records = load_corpus("squality-eval", path, stories=stories)
    assert [(r.prompt_id, r.author, r.prompt) for r in records] == [("p1/2", "human", "Q2?"), ("p1/2", "bart", "Q2?")]
    assert records[0].meta["reference_uid"] == "p1-2-3" and records[0].meta["overall"]["overall-rating"] == 80.0
    # a passage missing from the stories file is named, with the fix
    other = write(tmp_path, "eval2.jsonl", json.dumps({**rated, "passage-id": "p9"}) + "\n")
    with pytest.raises(FormatError, match="p9/2 is not in the stories file"):
        load_corpus("squality-eval", other, stories=stories)


def test_squality_files_swapped_point_to_the_other_format(tmp_path):
    stories = write(tmp_path, "test.jsonl", json.dumps(squality_row()) + "\n")
    with pytest.raises(FormatError, match=r"(?s)line 1: missing key 'passage-id'.*'questions' must be an object, got an array.*use format 'squality'\)"):
        load_corpus("squality-eval", stories)
    rated = write(tmp_path, "eval.jsonl", json.dumps({"passage-id": "p1", "questions": {}}) + "\n")
    with pytest.raises(FormatError, match="(?s)missing key 'metadata'.*must be an array, got an object.*use format 'squality-eval'"):
        load_corpus("squality", rated)


def test_squality_bad_lines_reported_together(tmp_path):
    bad = squality_row()
    del bad["questions"][1]["responses"][2]["response_text"]
    path = write(tmp_path, "t.jsonl", json.dumps(bad) + "\nnot json\n")
    with pytest.raises(FormatError, match="line 2: invalid JSON"):
        load_corpus("squality", path)
    path = write(tmp_path, "t.jsonl", json.dumps(bad) + "\n")
    with pytest.raises(FormatError, match=r"line 1 questions\[1\]\.responses\[2\]: missing key 'response_text'"):
        load_corpus("squality", path)


# ---- mgtbench -----------------------------------------------------------------------------------


def test_mgtbench_parses_answers_without_eval(tmp_path):
    good = 'q1,T,"Ada, born 1815.",When?,"{\'text\': [\'1815\', \'1815\'], \'answer_start\': [10, 10]}",ask,In 1815.\n'
    # a literal that would run code under eval() is rejected, not executed
    evil = 'q2,T,ctx,Q?,"__import__(\'os\').system(\'touch pwned\')",ask,x\n'
    path = write(tmp_path, "m.csv", MGT_HEADER + good)
    records = load_corpus("mgtbench", path)
    assert [(r.author, r.text, r.source) for r in records] == [
        ("human", "1815", "Ada, born 1815."), ("human", "1815", "Ada, born 1815."), ("chatgpt", "In 1815.", "Ada, born 1815.")]
    assert len(load_corpus("mgtbench", path, dedupe=True, model_author="gpt")) == 2
    with pytest.raises(FormatError, match=r"line 3 \(id 'q2'\): column 'answers' is not a Python dict literal"):
        load_corpus("mgtbench", write(tmp_path, "m2.csv", MGT_HEADER + good + evil))
    assert not (tmp_path / "pwned").exists()


def test_mgtbench_broken_csv_names_the_line(tmp_path):
    huge = "x" * 200_000  # over the csv module's field limit
    rows = 'q1,T,ctx,Q?,"{\'text\': [\'a\']}",ask,A.\n' + f'q2,T,{huge},Q?,"{{}}",ask,B.\n'
    with pytest.raises(FormatError, match=r"line 3: not valid CSV: field larger than field limit"):
        load_corpus("mgtbench", write(tmp_path, "m.csv", MGT_HEADER + rows))


def test_mgtbench_wrong_header(tmp_path):
    with pytest.raises(FormatError, match="header lacks column.*chatgpt_answer"):
        load_corpus("mgtbench", write(tmp_path, "m.csv", "id,context,question,answers\nq,c,q,a\n"))


# ---- multiref -----------------------------------------------------------------------------------

ITEM = {"prompt_id": 7, "source": "Doc.", "prompt": "Summarise.", "dataset": "toy",
        "references": ["Ref one.", {"text": "Ref two.", "author": "expert", "id": "r2"}],
        "systems": {"bart": "Out.", "lm": ["s0", "s1"], "t5": {"text": "T5 out.", "rating": 3}}}


def test_multiref_json_array_jsonl_and_single_item_agree(tmp_path):
    as_array = load_corpus("multiref", write(tmp_path, "a.json", json.dumps([ITEM])))
    as_jsonl = load_corpus("multiref", write(tmp_path, "a.jsonl", json.dumps(ITEM) + "\n" + json.dumps({**ITEM, "prompt_id": 8}) + "\n"))
    single = load_corpus("multiref", write(tmp_path, "one.json", json.dumps(ITEM, indent=2)))
    assert as_array == single == as_jsonl[: len(as_array)]
    assert [(r.author, r.text) for r in as_array] == [
        ("human", "Ref one."), ("expert", "Ref two."), ("bart", "Out."), ("lm", "s0"), ("lm", "s1"), ("t5", "T5 out.")]
    assert all(r.prompt_id == "7" and r.source == "Doc." and r.prompt == "Summarise." for r in as_array)
    assert as_array[1].meta == {"dataset": "toy", "id": "r2", "reference_index": 1}
    assert as_array[4].meta["sample_index"] == 1 and as_array[5].meta["rating"] == 3


def test_multiref_bad_items(tmp_path):
    items = [{"source": "x", "references": ["a"]}, {"prompt_id": "b"}, {"prompt_id": "c", "references": [{"txt": "a"}]},
             {"prompt_id": "d", "source": 3, "references": ["a"]}, {"prompt_id": "e", "references": [5]}]
    with pytest.raises(FormatError) as err:
        load_corpus("multiref", write(tmp_path, "m.json", json.dumps(items)))
    assert [item for item, _ in err.value.problems] == ["[0]", "[1]", "[2].references[0]", "[3]", "[4].references[0]"]
    text = str(err.value)
    assert "missing key 'prompt_id'" in text and "no 'references' and no 'systems'" in text and "'source' must be a string" in text
    assert "expected a string or an object with 'text', got int" in text


def test_multiref_broken_json_is_not_mistaken_for_jsonl(tmp_path):
    with pytest.raises(FormatError, match=r"line 4: invalid JSON") as err:
        load_corpus("multiref", write(tmp_path, "m.json", '[\n {"prompt_id": "a",\n  "references": ["x"\n]'))
    assert len(err.value.problems) == 1
