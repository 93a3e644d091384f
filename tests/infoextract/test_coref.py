"""Pronoun and short-name resolution, and the content words per sentence, on hand-checked sentences."""

from __future__ import annotations

import pytest

from infoextract import Extraction, Extractor
from infoextract.cache import ExtractionCache


@pytest.fixture(scope="module")
def ex() -> Extractor:
    return Extractor()


def keys(e: Extraction, kind: str) -> set[str]:
    return {f.key for f in e.facts if f.kind == kind}


def test_a_personal_pronoun_takes_the_last_person(ex):
    e = ex.extract(["Kevin Carr set off from Haytor. He paid £40 for a tent."])[0]
    assert "kevin carr|pay|40 gbp" in keys(e, "relation")
    assert not any(k.startswith("he|") for k in keys(e, "relation"))


def test_a_short_name_takes_the_full_name(ex):
    e = ex.extract(["Kevin Carr set off from Haytor. Carr has walked 16,000 miles."])[0]
    assert keys(e, "entity") >= {"kevin carr"} and "carr" not in keys(e, "entity")
    assert [f.duplicate for f in e.facts if f.key == "kevin carr"] == [False, True]  # the same entity again
    assert "kevin carr|walk|" in keys(e, "relation")


def test_a_lone_proper_noun_takes_the_one_name_that_contains_it(ex):
    e = ex.extract(["Manchester United beat Liverpool. United scored three goals."])[0]
    assert "manchester united|score|3 goal" in keys(e, "relation")


def test_they_takes_a_plural_subject_and_it_a_recent_thing(ex):
    e = ex.extract(["The farmers sold the land. They moved to the city."])[0]
    assert "farmer|move to|city" in keys(e, "relation")
    e = ex.extract(["The council raised 310 pounds. It gave the money to the school."])[0]
    assert "council|give|money" in keys(e, "relation")


def test_resolution_can_be_turned_off(ex):
    off = Extractor(resolve=False)
    text = "Kevin Carr set off from Haytor. He paid £40 for a tent."
    assert "he|pay|40 gbp" in keys(off.extract([text])[0], "relation")
    assert off.signature != ex.signature  # so the cache never mixes the two settings


def test_sentence_words_use_fact_keys_and_antecedents(ex):
    e = ex.extract(["Kevin Carr paid $4,000. He walked to the Old Mill!"])[0]
    assert e.sentences[0] == ("kevin", "carr", "pay", "4000", "usd")
    assert set(e.sentences[1]) >= {"kevin", "carr", "walk", "old", "mill"}
    assert ex.extract([""])[0].sentences == ()


def test_lower_cased_names_keep_their_word_not_a_wrong_lemma(ex):
    words = {w for s in ex.extract(["justin rose will try to win the masters ."])[0].sentences for w in s}
    assert "rose" in words and "rise" not in words


def test_sentences_survive_the_cache_and_to_dict(tmp_path, ex):
    e = ex.extract(["Kevin Carr paid $4,000."])[0]
    with ExtractionCache(tmp_path / "c.sqlite") as cache:
        cache.put_many([("k", e)])
        assert cache.get_many(["k"])["k"] == e
    assert Extraction.from_dict(e.to_dict()) == e
    assert Extraction.from_dict({"facts": []}).sentences == ()
