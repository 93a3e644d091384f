"""Distribution views, paraphrase clusters, bootstrap intervals, unregistered diagnostics, imports."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from fitness import (
    Fitness,
    Term,
    bootstrap_answers_ci,
    bootstrap_mean_ci,
    fact_distributions,
    precision,
    w1_position,
)
from fitness.clusters import cluster_keys
from fitness.distributions import answer_outcomes, ordinal_samples
from infoextract import Extraction, Fact


def f(kind, key, label="", src=None, dup=False):
    return Fact(kind, key, key, (0, 1), label, src, dup)


A = Extraction((f("entity", "gurn", "PERSON", 3), f("entity", "gurn", "PERSON", 3, True),
                f("relation", "gurn|free|slave", "free", 5)))
B = Extraction((f("entity", "gurn", "PERSON", 1), f("entity", "earth", "LOC", 9)))


def test_mass_is_the_share_of_answers_mentioning_a_fact():
    a, b = fact_distributions([A, B], [B], view="key")
    assert a.outcomes == b.outcomes
    got = a.as_dict()
    assert got["entity:gurn"] == 1.0 and got["entity:earth"] == 0.5 and got["relation:gurn|free|slave"] == 0.5
    assert b.as_dict()["relation:gurn|free|slave"] == 0.0


def test_label_predicate_kind_and_ordinal_views():
    (sets,) = answer_outcomes([A], view="label")
    assert sets == [frozenset({"PERSON"})]
    (sets,) = answer_outcomes([A], view="predicate")
    assert sets == [frozenset({"free"})]
    (sets,) = answer_outcomes([A, B], view="kind")
    assert sets == [frozenset({"entity", "relation"}), frozenset({"entity"})]
    assert ordinal_samples([A, B], view="depth").tolist() == [2, 2]
    assert ordinal_samples([A, B], view="source_position").tolist() == [3, 5, 1, 9]
    with pytest.raises(ValueError, match="view must be one of"):
        fact_distributions([A], view="colour")


def test_clusters_group_paraphrases_but_not_unrelated_keys():
    ids = cluster_keys(["captain steffens", "captain steffen", "steffens", "nine million robots", "radiation"])
    assert ids["captain steffens"] == ids["captain steffen"]
    assert ids["radiation"] != ids["captain steffens"]
    assert ids["nine million robots"] != ids["radiation"]
    assert cluster_keys(["one"]) == {"one": 0}
    assert len(set(cluster_keys(["a b", "c d"], distance_threshold=0.0).values())) == 2
    with pytest.raises(ValueError, match="distance_threshold"):
        cluster_keys(["a", "b"], distance_threshold=2)
    (ca, cb) = answer_outcomes([Extraction((f("entity", "captain steffens"),))],
                               [Extraction((f("entity", "captain steffen"),))], view="cluster")
    assert ca == cb


def test_bootstrap_intervals():
    lo, hi = bootstrap_mean_ci([1.0, 2.0, 3.0, 4.0], n_boot=500)
    assert 1.0 <= lo < 2.5 < hi <= 4.0
    assert bootstrap_mean_ci([2.0], n_boot=10) == (2.0, 2.0)
    lo, hi = bootstrap_answers_ci(lambda c, r: float(np.mean(c) - np.mean(r)), [1, 2, 3], [1, 1, 1], n_boot=200)
    assert lo <= 1.0 <= hi
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_mean_ci([1.0], n_boot=0)
    with pytest.raises(ValueError, match="empty"):
        bootstrap_mean_ci([])


def test_unregistered_diagnostics_compose_from_python():
    fit = Fitness([Term("precision", precision(gamma=None), 1.0), Term("pos", w1_position(), -1.0, False, 1.0)])
    r = fit.score({"p": [A]}, {"p": [B, A]})
    assert 0 <= r.components["precision"] <= 1 and 0 <= r.components["pos"] <= 1


def test_importing_fitness_loads_neither_torch_nor_transformers():
    code = "import sys, fitness; bad = [m for m in ('torch', 'transformers') if m in sys.modules]; print(bad)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
