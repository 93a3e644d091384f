"""The pyramid recall component on hand-built extractions."""

from __future__ import annotations

import pytest

from fitness import build_fitness
from infoextract import Extraction, Fact


def ext(*keys, kind="concept", sentences=()):
    return Extraction(tuple(Fact(kind, k, k, (0, 1), "") for k in keys), sentences)


def recall(candidates, references, spec="recall"):
    fit = build_fitness(spec)
    return fit.score_prompt(candidates, references)[fit.terms[0].label]


def test_with_pyramid_a_fact_more_references_state_weighs_more():
    refs = [ext("harbour", "storm"), ext("harbour", "ferry"), ext("harbour", "mayor")]
    # "harbour" is in every reference, each of the others in one: stating it recovers half of
    # each reference; stating one rarer fact recovers half of one reference only
    assert recall([ext("harbour")], refs, "recall(pyramid=1)") == pytest.approx(0.5)
    assert recall([ext("storm")], refs, "recall(pyramid=1)") == pytest.approx(0.5 / 3)
    # pooled (the default): each distinct fact once, 4 of them
    assert recall([ext("harbour")], refs) == recall([ext("storm")], refs) == pytest.approx(0.25)
    assert recall([ext("harbour", "storm", "ferry", "mayor")], refs) == pytest.approx(1.0)


def test_kind_balance_and_sentence_words():
    refs = [Extraction((Fact("entity", "selwick", "Selwick", (0, 7), "GPE"),
                        Fact("relation", "bridge|open in|1934", "", (0, 1), "open in"),
                        Fact("concept", "main span", "", (0, 1), "span"),
                        Fact("concept", "bridge", "", (0, 1), "bridge")))]
    only_entity = ext("selwick", kind="entity")
    # kind shares: entity 1/4, relation 1/4, concept 1/2
    assert recall([only_entity], refs) == pytest.approx(0.25)
    assert recall([only_entity], refs, "recall(balance=none)") == pytest.approx(0.25)
    # the triple's words in one sentence of the answer count as the triple (rule "words"), and
    # that sentence also states the concept "bridge": 1/4 + 1/4 + 1/2 * 1/2
    worded = ext("selwick", kind="entity", sentences=(("bridge", "open", "1934"),))
    assert recall([worded], refs) == pytest.approx(0.75)
    assert recall([worded], refs, "recall(words=0)") == pytest.approx(0.25)
    # a words-only match is weaker evidence than a matched fact: with words=0.75 the triple and
    # the concept found as sentence words count 0.75 each; the entity, matched exactly, counts 1
    assert recall([worded], refs, "recall(words=0.75)") == pytest.approx(0.25 + 0.25 * 0.75 + 0.5 * 0.5 * 0.75)
    assert recall([worded], refs, "recall(words=1)") == recall([worded], refs)
    with pytest.raises(ValueError, match="words"):
        build_fitness("recall(words=2)")


def test_no_answer_or_no_reference_facts_is_zero():
    assert recall([ext()], [ext("a")]) == 0.0
    assert recall([ext("a")], [ext()]) == 0.0
    with pytest.raises(ValueError, match="balance"):
        build_fitness("recall(balance=type)")
