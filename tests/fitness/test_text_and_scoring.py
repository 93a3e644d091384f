"""The trainer-facing TextFitness and corpus scoring, with a fast word-level fake extractor."""

from __future__ import annotations

import math

import pytest

from fitness import DEFAULT_SPEC, TextFitness, build_fitness, score_corpus
from infoextract import Record

REFS = [
    Record("q1", "Alice met Bob in Paris during winter.", prompt="Who met whom?"),
    Record("q1", "Alice and Bob met in Paris.", prompt="Who met whom?"),
    Record("q1", "Bob saw Alice in Paris one winter.", prompt="Who met whom?"),
    Record("q2", "The river floods every spring near the village.", prompt="What happens to the river?"),
    Record("q2", "Each spring the river floods the village fields.", prompt="What happens to the river?"),
]


def grouped():
    out = {}
    for r in REFS:
        out.setdefault(r.prompt_id, []).append(r)
    return out


def test_population_is_extracted_in_one_call_and_references_once(word_extractor):
    tf = TextFitness(DEFAULT_SPEC, grouped(), extractor=word_extractor)
    members = [
        [["Alice met Bob in Paris."] * 2, ["The river floods in spring."] * 2],
        [["Bananas are yellow."] * 2, ["Cats sleep a lot."] * 2],
        [["", ""], ["", ""]],
    ]
    results = tf.score_population(members, ["q1", "q2"])
    # one call for references+prompts, one for the whole population (duplicates extracted once)
    assert len(word_extractor.calls) == 2
    assert sorted(word_extractor.calls[1]) == sorted({t for m in members for g in m for t in g})
    good, bad, empty = (r.total for r in results)
    assert good > bad > empty or good > bad >= empty
    assert empty == pytest.approx(tf.fitness.worst)
    assert tf(members[0], ["q1", "q2"]) == pytest.approx(good)
    assert len(word_extractor.calls) == 3  # the references stayed cached


def test_text_fitness_errors(word_extractor):
    tf = TextFitness(None, grouped(), extractor=word_extractor)
    with pytest.raises(KeyError, match="no references"):
        tf([["x"]], ["nope"])
    with pytest.raises(ValueError, match="member 0 has completions for 1 prompts"):
        tf.score_population([[["x"]]], ["q1", "q2"])
    with pytest.raises(ValueError, match="empty"):
        TextFitness(None, {}, extractor=word_extractor)
    assert math.isfinite(tf([[]], ["q1"]))


def test_score_corpus_by_author_exclude_self_and_json(word_extractor):
    cands = [
        Record("q1", "Alice met Bob in Paris during winter.", author="human"),  # equals a reference
        Record("q1", "Alice met Bob in Paris.", author="sys"),
        Record("q2", "Dogs bark loudly.", author="sys"),
        Record("q9", "No references for this one.", author="sys"),
    ]
    fit = build_fitness(DEFAULT_SPEC)
    rep = score_corpus(REFS, cands, fit, extractor=word_extractor, by_author=True, exclude_self=True,
                       n_boot=50, progress=False)
    assert len(word_extractor.calls) == 1
    js = rep.to_json()
    assert set(js["aggregate"]) == {"fitness", "components", "ci"}
    assert {p["prompt_id"] for p in js["prompts"]} == {"q1", "q2"}
    assert "q9" in js["skipped"]
    q1 = next(p for p in js["prompts"] if p["prompt_id"] == "q1")
    assert q1["n_references"] == 2  # the identical reference was left out
    lo, hi = js["aggregate"]["ci"]["fitness"]
    assert lo <= js["aggregate"]["fitness"] <= hi
    assert set(js["by_author"]) == {"human", "sys"}
    # without --exclude-self the copied reference supports itself: a higher score
    rep2 = score_corpus(REFS, cands[:1], fit, extractor=word_extractor, n_boot=10, progress=False)
    rep3 = score_corpus(REFS, cands[:1], fit, extractor=word_extractor, exclude_self=True, n_boot=10, progress=False)
    assert rep2.overall.result.total > rep3.overall.result.total


def test_score_corpus_with_nothing_in_common_raises(word_extractor):
    with pytest.raises(ValueError, match="same prompt ids"):
        score_corpus(REFS, [Record("zz", "text")], None, extractor=word_extractor, progress=False)


def test_exclude_self_is_leave_one_out_when_a_corpus_is_scored_against_itself(word_extractor):
    fit = build_fitness(DEFAULT_SPEC)
    loo = score_corpus(REFS, REFS, fit, extractor=word_extractor, exclude_self=True, n_boot=10, progress=False)
    assert set(loo.overall.result.per_prompt) == {"q1", "q2"} and not loo.overall.skipped
    # by hand for q2: each of its two answers against the other one, averaged
    ext = {r.text: e for r, e in zip(REFS, word_extractor.extract([r.text for r in REFS]))}
    q2 = [r.text for r in REFS if r.prompt_id == "q2"]
    prompt_ext = word_extractor.extract(["What happens to the river?"])[0]
    rows = [fit.score_prompt([ext[a]], [ext[b]], prompt=prompt_ext) for a, b in ((q2[0], q2[1]), (q2[1], q2[0]))]
    assert loo.overall.result.per_prompt["q2"]["total"] == pytest.approx((rows[0]["total"] + rows[1]["total"]) / 2)
    same = score_corpus(REFS, REFS, fit, extractor=word_extractor, n_boot=10, progress=False)
    assert same.overall.result.total > loo.overall.result.total
