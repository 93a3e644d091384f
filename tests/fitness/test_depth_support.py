"""Support matching, depth, precision and F1@K on hand-built facts."""

import math

import pytest

from fitness import SupportIndex, f1_at_k_score, informative, length_penalty, precision_score, reference_k
from infoextract import Extraction, Fact


def fact(key, kind="entity", label="PERSON", dup=False):
    return Fact(kind=kind, key=key, text=key, span=(0, len(key)), label=label, duplicate=dup)


def test_support_exact_numeric_fuzzy():
    refs = [fact("captain steffens"), fact("3 million km", "quantity", "km"), fact("1987", "date", "DATE"),
            fact("steffens|find|robot", "relation", "find")]
    index = SupportIndex.build(refs)
    cands = [
        fact("captain steffens"),                     # exact
        fact("3.1 million km", "quantity", "km"),     # within 5 %
        fact("4 million km", "quantity", "km"),       # a wrong number
        fact("1989", "date", "DATE"),                 # a wrong year, string-similar to 1987
        fact("captain steffen"),                      # fuzzy
        fact("steffens|find|robots", "relation", "find"),  # near-identical triple
        fact("robot|find|steffens", "relation", "find"),  # subject and object swapped: another fact
        fact("lieutenant ball"),                      # unsupported
        fact("captain steffens", kind="concept", label=""),  # a name as a noun chunk: the same name
        fact("captain steffens|find|robot", "relation", "find"),  # a longer name in a triple
    ]
    assert index.supports(cands).tolist() == [True, True, False, False, True, True, False, False, True, True]
    strict = SupportIndex.build(refs, numeric_tolerance=0.0, fuzzy_threshold=100)
    assert strict.supports(cands).tolist() == [True, False, False, False, False, False, False, False, True, True]


def test_support_rejects_bad_options():
    with pytest.raises(ValueError, match="fuzzy_threshold"):
        SupportIndex.build([], fuzzy_threshold=120)
    with pytest.raises(ValueError, match="numeric_tolerance"):
        SupportIndex.build([], numeric_tolerance=-1)


def test_informative_drops_duplicates_and_prompt_facts():
    e = Extraction((fact("gurn"), fact("gurn", dup=True), fact("misty ones"), fact("slave", "concept", "")))
    prompt = Extraction((fact("gurn"),))
    kept = informative(e, prompt.keys)
    assert [f.key for f in kept.facts] == ["misty ones", "slave"]
    assert kept.depth == 2


def test_f1_at_k_and_precision():
    assert f1_at_k_score(0, 10, k=5) == 0.0
    assert f1_at_k_score(5, 5, k=5) == pytest.approx(1.0)
    # listing more than K supported facts does not raise recall; unsupported facts cost precision
    assert f1_at_k_score(10, 10, k=5) == pytest.approx(1.0)
    p, r = 5 / 15, 1.0
    assert f1_at_k_score(5, 15, k=5) == pytest.approx(2 * p * r / (p + r))
    assert f1_at_k_score(2, 2, k=4) == pytest.approx(2 * 1 * 0.5 / 1.5)
    assert precision_score(0, 0) == 0.0
    assert precision_score(3, 4) == 0.75
    with pytest.raises(ValueError, match="n_supported"):
        f1_at_k_score(3, 2, k=1)
    with pytest.raises(ValueError, match="k must be"):
        f1_at_k_score(1, 2, k=0)


def test_length_penalty_and_k():
    assert length_penalty(0) == 0.0
    assert length_penalty(10) == 1.0
    assert length_penalty(5) == pytest.approx(math.exp(1 - 10 / 5))
    assert reference_k([3, 5, 9]) == 5
    assert reference_k([3, 5, 9], k="max") == 9
    assert reference_k([], k="median") == 1.0
    assert reference_k([0, 0]) == 1.0
    assert reference_k([3, 5], k=7) == 7
    with pytest.raises(ValueError, match="median"):
        reference_k([1], k="mode")
