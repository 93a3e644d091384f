"""fitness.setlevel: reference units, mention rates over a set of answers, the set-level components
and the evaluation statistics, on hand-made facts (no spaCy)."""

from __future__ import annotations

import numpy as np
import pytest

import fitness
from fitness.setlevel import (
    mention_gap,
    mention_js,
    mention_rates,
    paired_delta_ci,
    reference_units,
    set_metrics,
    set_report,
)
from infoextract import Extraction, Fact


def ext(*keys: str) -> Extraction:
    """An extraction whose facts are entities (``"x"``) or quantities (``"q:12 metre"``)."""
    facts = []
    for i, k in enumerate(keys):
        kind, key = ("quantity", k[2:]) if k.startswith("q:") else ("entity", k)
        label = key.split()[-1] if kind == "quantity" else "ORG"
        facts.append(Fact(kind, key, key, (i, i + 1), label))
    return Extraction(tuple(facts))


# people: "bridge" in all 4, "1934" (a quantity here) in 2, "mayor" in 1
PEOPLE = [ext("bridge", "q:412 metre"), ext("bridge", "q:412 metre", "mayor"), ext("bridge"), ext("bridge")]


def test_units_merge_what_several_references_state_and_count_each_reference_once():
    refs = PEOPLE + [ext("bridge", "bridge")]  # a repeated fact is one mention
    units = reference_units(refs)
    shares = {u[0].key: s for u, s in zip(units.facts, units.share)}
    assert shares == {"bridge": 1.0, "412 metre": 0.4, "mayor": 0.2}
    # numbers within the numeric tolerance are the same unit ("about 410 metres")
    units = reference_units([ext("q:412 metre"), ext("q:410 metre")])
    assert len(units) == 1 and units.share.tolist() == [1.0]


def test_mention_rates_are_shares_of_answers_with_the_unit_present():
    units = reference_units(PEOPLE)
    answers = [ext("bridge"), ext("bridge", "q:412 metre"), ext("tower")]
    rates = dict(zip((u[0].key for u in units.facts), mention_rates(units, answers)))
    assert rates == pytest.approx({"bridge": 2 / 3, "412 metre": 1 / 3, "mayor": 0.0})
    assert mention_rates(units, []).tolist() == [0.0, 0.0, 0.0]


def test_js_sees_proportions_and_the_gap_sees_absolute_rates():
    human = np.array([1.0, 0.5, 0.25])
    assert mention_js(human, human) == pytest.approx(0.0, abs=1e-12)
    half = human / 2  # every fact half as often: the same proportions
    assert mention_js(human, half) == pytest.approx(0.0, abs=1e-12)
    assert mention_gap(human, half) == pytest.approx(np.mean(human / 2))
    assert mention_js(human, np.zeros(3)) == 1.0  # mentions nothing people say: the worst
    assert mention_js(human, np.array([0.0, 0.0, 1.0])) > mention_js(human, np.array([1.0, 0.5, 0.0]))


def test_set_metrics_of_a_set_that_answers_like_people():
    like = [ext("bridge", "q:412 metre"), ext("bridge", "q:412 metre"), ext("bridge", "mayor"), ext("bridge")]
    m = set_metrics(like, PEOPLE)
    assert m["js"] == pytest.approx(0.0, abs=1e-12) and m["gap"] == pytest.approx(0.0, abs=1e-12)
    assert m["precision"] == 1.0 and m["depth"] == pytest.approx(7 / 4) and m["diversity"] == 1.0
    invented = [ext("bridge", "dragon", "castle")] * 4
    bad = set_metrics(invented, PEOPLE)
    assert bad["precision"] == pytest.approx(1 / 3) and bad["js"] > m["js"] and bad["gap"] > m["gap"]
    assert bad["diversity"] == pytest.approx(1.0)  # 3 distinct facts, as many as the people's
    silent = set_metrics([Extraction(())] * 4, PEOPLE)
    assert (silent["js"], silent["gap"], silent["precision"], silent["depth"]) == (1.0, 1.0, 0.0, 0.0)


def test_facts_of_the_prompt_do_not_count():
    prompt = ext("bridge")
    m = set_metrics([ext("bridge")] * 4, PEOPLE, prompt=prompt)  # only repeats the question
    assert m["depth"] == 0.0 and m["js"] == 1.0


SET_SPEC = "js_mentions:-1 + f1_at_k:0.1"


def _score(fit, answers, refs=PEOPLE):
    return fit.score({"p": answers}, {"p": refs}).total


def test_the_set_level_fitness_ranks_sets_and_does_not_pay_for_tricks():
    fit = fitness.build_fitness(SET_SPEC)
    like = [ext("bridge", "q:412 metre"), ext("bridge", "q:412 metre"), ext("bridge", "mayor"), ext("bridge")]
    same = [ext("bridge", "q:412 metre", "mayor")] * 4  # every answer says everything
    only_top = [ext("bridge")] * 4
    genuine = _score(fit, like)
    assert genuine > _score(fit, same) and genuine > _score(fit, only_top)
    tricks = {
        "empty": [Extraction(())] * 4,
        "repetition": [ext("bridge", "bridge", "bridge")] * 4,
        "padding": [ext("bridge", "q:412 metre", "nice weather", "good day", "fine time")] * 4,
        "invention": [ext("bridge", "dragon")] * 4,
    }
    for name, answers in tricks.items():
        assert _score(fit, answers) < genuine, name
    assert _score(fit, tricks["empty"]) == fit.worst


def test_set_report_means_intervals_and_paired_deltas():
    refs = {f"p{i}": PEOPLE for i in range(6)}
    good = {p: [ext("bridge", "q:412 metre"), ext("bridge", "mayor"), ext("bridge"), ext("bridge", "q:412 metre")]
            for p in refs}
    poor = {p: [ext("bridge", "tower")] * 4 for p in refs}
    before, after = set_report(poor, refs, n_boot=200), set_report(good, refs, n_boot=200)
    assert set(after.mean) == set(fitness.setlevel.SET_METRICS)
    lo, hi = after.ci["js"]
    assert lo <= after.mean["js"] <= hi
    delta, (dlo, dhi) = paired_delta_ci(before, after, "js", n_boot=200)
    assert delta < 0 and dhi < 0  # every prompt closer to the people
    assert after.to_json()["per_prompt"]["p0"]["precision"] == 1.0
    with pytest.raises(KeyError, match="no references for prompt id"):
        set_report({"zz": [ext("x")]}, refs)
