"""Extraction on real public data (../shared/data): a sample of the done-when corpora.

The full runs over every SQuALITY human response and every ChatGPT SQuAD answer are in
benchmarks/extract_shared_data.py (minutes on 2 cores); here a sample keeps the suite fast.
"""

from __future__ import annotations

import pytest

from infoextract import Extractor, load_corpus


@pytest.fixture(scope="module")
def ex() -> Extractor:
    return Extractor()


def test_squality_human_responses_extract_with_aligned_facts(shared_data, ex):
    records = [r for r in load_corpus("squality", shared_data / "squality" / "v1-3_txt_test.jsonl")
               if r.author == "human"][:8]  # two questions of the first story, one shared source
    extractions = ex.extract_records(records)
    assert len(extractions) == len(records)
    for record, extraction in zip(records, extractions):
        assert extraction.depth > 10, record.text[:80]
        assert {"entity", "relation", "concept"} <= {f.kind for f in extraction.facts}
        for fact in extraction.facts:
            assert record.text[fact.span[0]:fact.span[1]] == fact.text
    aligned = [f for e in extractions for f in e.unique_facts if f.source_index is not None]
    assert len(aligned) > 0.3 * sum(e.depth for e in extractions)  # answers are about their story


def test_chatgpt_squad_answers_extract(shared_data, ex):
    records = [r for r in load_corpus("mgtbench", shared_data / "squad_chatgpt" / "SQuAD1_chatgpt.csv")
               if r.author == "chatgpt"][:40]
    extractions = ex.extract_records(records)
    assert len(extractions) == 40
    assert sum(e.depth > 0 for e in extractions) >= 38
    # the Luther question of the issue: the answer's date matches the paragraph's
    luther = [(r, e) for r, e in zip(records, extractions) if "Diet of Worms" in r.prompt]
    assert luther, "the sample no longer holds the Diet of Worms question"
    for record, extraction in luther:
        dates = [f for f in extraction.facts if f.kind == "date"]
        assert any(f.key == "1521-04-18" and f.source_index is not None for f in dates), record.text
