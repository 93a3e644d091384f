"""Does esfit's presence decision agree with people? REALSumm (Bhandari et al., EMNLP 2020).

In one run, on the 100 articles x 25 systems of ``../shared/data/realsumm``:

- SCU level: for every (SCU, system summary) pair the annotators judged, esfit's presence
  decision (:func:`fitness.presence`, default threshold) against the majority label: balanced
  accuracy, F1 of "present", Cohen's kappa; the same with the threshold chosen by grouped
  cross-validation (folds of whole articles), to show how much the default owes to this data;
- the ceiling: the annotators' agreement with each other (Cohen's kappa over every pair of
  annotators of the same summary, and each annotator against the majority of the others);
- the baseline: ROUGE-1 recall of the SCU in the summary (``rouge-score``, stemmed), threshold
  chosen by the same cross-validation;
- system level: Kendall tau between each system's mean score and its mean Lite-Pyramid (the
  human score), over all 25 systems and over the 14 abstractive ones, for esfit's automatic
  pyramid (share of SCUs present), esfit's recall (share of the reference's facts present, no
  SCUs), its F1@K and the fitness (default: ``fitness.DEFAULT_SPEC``) against the reference,
  beside ROUGE-1 F / ROUGE-2 recall computed here and the authors' ROUGE-2 recall, BERTScore and
  MoverScore from ``scores.json``.

    .venv/bin/python benchmarks/realsumm_agreement.py [--data DIR] [--cache FILE] [--fitness SPEC]
        [--threshold T] [--no-resolve] [--rules exact,number,...] [--number-gate]

Last line: ``realsumm scu_bacc=<v> scu_kappa=<v> tau_all=<v> tau_rouge2=<v>`` (esfit's presence
at the default threshold; tau of the fitness over all 25 systems; tau of the authors' ROUGE-2
recall).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import fitness.support as support_module  # noqa: E402
from fitness import DEFAULT_SPEC, PRESENCE_THRESHOLD, SupportIndex, build_fitness, presence  # noqa: E402
from fitness.support import DEFAULT_RULES, MATCH_RULES  # noqa: E402
from infoextract.loaders.realsumm import RealSumm, read_realsumm  # noqa: E402

AUTHOR_METRICS = ("rouge_2_recall", "rouge_1_recall", "rouge_1_f_score", "bert_recall_score", "bert_f_score",
                  "mover_score", "js-2")


# ---- statistics (pure functions, tested on a tiny fixture) ------------------------------------


def _binary(y: Sequence[bool], pred: Sequence[bool]) -> tuple[np.ndarray, np.ndarray]:
    y, pred = np.asarray(y, dtype=bool), np.asarray(pred, dtype=bool)
    if y.shape != pred.shape or y.ndim != 1:
        raise ValueError(f"labels and predictions must be 1-d of one length, got {y.shape} and {pred.shape}")
    return y, pred


def balanced_accuracy(y: Sequence[bool], pred: Sequence[bool]) -> float:
    """Mean of the recall of "present" and the recall of "absent" (0.5 = chance)."""
    y, pred = _binary(y, pred)
    rates = [np.mean(pred[y == c] == c) for c in (True, False) if np.any(y == c)]
    return float(np.mean(rates)) if rates else 0.0


def f1_present(y: Sequence[bool], pred: Sequence[bool]) -> float:
    """F1 of the "present" class."""
    y, pred = _binary(y, pred)
    tp = float(np.sum(y & pred))
    return 2 * tp / (np.sum(y) + np.sum(pred)) if tp else 0.0


def cohen_kappa(a: Sequence[bool], b: Sequence[bool]) -> float:
    """Cohen's kappa of two binary labelings: (observed - chance agreement) / (1 - chance)."""
    a, b = _binary(a, b)
    observed = np.mean(a == b)
    pa, pb = a.mean(), b.mean()
    chance = pa * pb + (1 - pa) * (1 - pb)
    return float((observed - chance) / (1 - chance)) if chance < 1 else 1.0


def annotator_kappas(votes: Sequence[Sequence[bool]]) -> tuple[float, float]:
    """The annotators' own agreement, from the votes of each item (one bool per annotator).

    Returns ``(pairwise, vs_others)``: Cohen's kappa pooled over every ordered pair of annotators
    of the same item, and each annotator against the majority of the *other* annotators (items
    where the others tie are left out), the figure comparable to a system scored against a
    majority.
    """
    a, b, solo, rest = [], [], [], []
    for v in votes:
        for i, j in itertools.permutations(range(len(v)), 2):
            a.append(v[i])
            b.append(v[j])
        for i in range(len(v)):
            others = [v[k] for k in range(len(v)) if k != i]
            if others and 2 * sum(others) != len(others):
                solo.append(v[i])
                rest.append(2 * sum(others) > len(others))
    return cohen_kappa(a, b), cohen_kappa(solo, rest)


def best_threshold(scores: Sequence[float], y: Sequence[bool]) -> float:
    """The threshold on ``scores`` (present when >=) with the highest balanced accuracy."""
    scores = np.asarray(scores, dtype=float)
    candidates = np.unique(np.round(scores, 3))
    if candidates.size > 200:
        candidates = np.quantile(scores, np.linspace(0.01, 0.99, 199))
    return float(max(candidates, key=lambda t: balanced_accuracy(y, scores >= t)))


def cross_validated(scores: Sequence[float], y: Sequence[bool], groups: Sequence[str], *,
                    folds: int = 5) -> tuple[np.ndarray, list[float]]:
    """Predictions with the threshold fitted on the other folds (folds of whole groups, e.g.
    articles, so no article is both fitted and tested); returns the predictions and thresholds."""
    scores, y = np.asarray(scores, dtype=float), np.asarray(y, dtype=bool)
    names = sorted(set(groups))
    if len(names) < folds:
        raise ValueError(f"need at least folds={folds} groups, got {len(names)}")
    fold_of = {g: i % folds for i, g in enumerate(names)}
    fold = np.array([fold_of[g] for g in groups])
    pred = np.zeros(len(y), dtype=bool)
    thresholds = []
    for k in range(folds):
        t = best_threshold(scores[fold != k], y[fold != k])
        thresholds.append(t)
        pred[fold == k] = scores[fold == k] >= t
    return pred, thresholds


def system_tau(scores: dict[str, float], human: dict[str, float], systems: Sequence[str]) -> float:
    """Kendall tau (tau-b) between per-system mean scores and human scores over ``systems``."""
    return float(kendalltau([scores[s] for s in systems], [human[s] for s in systems]).statistic)


# ---- the run ----------------------------------------------------------------------------------


def _rouge():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rouge1", "rouge2"], use_stemmer=True)


def _extract(data: RealSumm, args) -> dict[str, object]:
    from infoextract import Extractor

    texts = []
    for doc in data.references:
        texts.append(data.references[doc])
        texts += data.summaries[doc].values()
        texts += [j.text for j in data.judgments.get(doc, {}).values()]
        texts += data.scus.get(doc, {}).values()
    texts = list(dict.fromkeys(texts))
    t0 = time.perf_counter()
    extractor = Extractor(cache=args.cache, resolve=not args.no_resolve)
    got = extractor.extract(texts, progress=sys.stderr.isatty())
    print(f"extracted {len(texts)} texts in {time.perf_counter() - t0:.1f} s ({extractor.signature})")
    return dict(zip(texts, got))


def scu_level(data: RealSumm, ext, args, rouge) -> tuple[float, float]:
    rows = []  # (article, scu text, summary text, majority, votes)
    for doc, by_system in data.judgments.items():
        for judged in by_system.values():
            for q, votes in judged.votes.items():
                rows.append((doc, data.scus[doc][q], judged.text, 2 * sum(votes) > len(votes), votes))
    y = np.array([r[3] for r in rows])
    groups = [r[0] for r in rows]
    t0 = time.perf_counter()
    indexes = {}
    ours = []
    for _, scu, summary, _, _ in rows:
        if summary not in indexes:
            indexes[summary] = SupportIndex.from_extractions([ext[summary]], rules=args.rules)
        got = presence(ext[scu], indexes[summary], threshold=args.threshold, numbers=args.number_gate)
        ours.append(got.score if got.present or not got.contradicted else 0.0)
    ours = np.array(ours)
    t1 = time.perf_counter()
    base = np.array([rouge.score(scu, summary)["rouge1"].recall for _, scu, summary, _, _ in rows])
    print(f"\nSCU level: {len(rows)} (SCU, summary) pairs, {y.mean():.1%} present by majority; "
          f"esfit presence {1e3 * (t1 - t0) / len(rows):.2f} ms a pair (index built once per summary)")
    pairwise, vs_others = annotator_kappas([r[4] for r in rows])
    print(f"  annotators: kappa between annotators {pairwise:.3f}; one annotator vs the majority of the "
          f"others {vs_others:.3f}  (target for esfit: kappa >= 0.8 x {pairwise:.3f} = {0.8 * pairwise:.3f})")
    print(f"  {'decision':<54} {'bal.acc':>7} {'F1(p)':>6} {'kappa':>6}")
    fixed = ours >= args.threshold
    table = [(f"esfit presence, threshold {args.threshold:g} (default)", fixed)]
    cv, ts = cross_validated(ours, y, groups)
    table.append((f"esfit presence, threshold by 5-fold CV ({min(ts):.2f}-{max(ts):.2f})", cv))
    bcv, bts = cross_validated(base, y, groups)
    table.append((f"ROUGE-1 recall of the SCU, CV threshold ({min(bts):.2f}-{max(bts):.2f})", bcv))
    for name, pred in table:
        print(f"  {name:<54} {balanced_accuracy(y, pred):7.3f} {f1_present(y, pred):6.3f} {cohen_kappa(y, pred):6.3f}")
    return balanced_accuracy(y, fixed), cohen_kappa(y, fixed)


def system_level(data: RealSumm, ext, args, rouge) -> tuple[float, float]:
    fitness = build_fitness(args.fitness)
    systems = data.systems
    abstractive = [s for s in systems if s.startswith("abs/")]
    per: dict[str, dict[str, list[float]]] = {}
    for doc, by_system in data.summaries.items():
        ref_text = data.references[doc]
        ref = ext[ref_text]
        scus = [ext[t] for t in data.scus.get(doc, {}).values()]
        for system, text in by_system.items():
            cand = ext[text]
            index = SupportIndex.from_extractions([cand], rules=args.rules)
            row = fitness.score_prompt([cand], [ref])
            facts = ref.unique_facts
            r = rouge.score(ref_text, text)
            vals = {
                "human Lite-Pyramid": data.lite_pyramid(doc, system),
                "esfit pyramid (SCUs present)": np.mean([
                    presence(s, index, threshold=args.threshold, numbers=args.number_gate).present
                    for s in scus]) if scus else np.nan,
                "esfit recall (reference facts present)": index.supports(facts).mean() if facts else 0.0,
                "esfit fitness": row["total"],
                "ROUGE-1 F (this run)": r["rouge1"].fmeasure,
                "ROUGE-2 recall (this run)": r["rouge2"].recall,
            }
            for t in fitness.terms:
                vals[f"  component {t.label}"] = row[t.label] if t.higher_is_better else -row[t.label]
            for m in AUTHOR_METRICS:
                vals[f"authors' {m}"] = data.scores[doc][system].get(m, np.nan)
            for k, v in vals.items():
                per.setdefault(k, {}).setdefault(system, []).append(float(v))
    means = {k: {s: float(np.nanmean(v)) for s, v in by.items()} for k, by in per.items()}
    human = means.pop("human Lite-Pyramid")
    print(f"\nsystem level: Kendall tau with mean Lite-Pyramid ({len(data.summaries)} articles; fitness {fitness})")
    print(f"  {'score':<42} {'all ' + str(len(systems)):>7} {'abs ' + str(len(abstractive)):>7}")
    taus = {}
    for name, by in means.items():
        taus[name] = system_tau(by, human, systems)
        if len(set(by.values())) == 1:  # e.g. w1_depth, which needs two references
            print(f"  {name:<42} {'n/a':>7} {'n/a':>7}  (the same for every system)")
            continue
        print(f"  {name:<42} {taus[name]:7.3f} {system_tau(by, human, abstractive):7.3f}")
    return taus["esfit fitness"], taus["authors' rouge_2_recall"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "realsumm")
    parser.add_argument("--cache", default=None, help="sqlite extraction cache (speeds up reruns)")
    parser.add_argument("--fitness", default=DEFAULT_SPEC, help="fitness spec (default: fitness.DEFAULT_SPEC)")
    parser.add_argument("--threshold", type=float, default=PRESENCE_THRESHOLD, help="presence threshold")
    parser.add_argument("--no-resolve", action="store_true", help="extract without pronoun/short-name resolution")
    parser.add_argument("--rules", default=",".join(DEFAULT_RULES),
                        help=f"matching rules of every support index of the run, from {','.join(MATCH_RULES)} "
                             f"(default {','.join(DEFAULT_RULES)})")
    parser.add_argument("--number-gate", action="store_true",
                        help="a contradicted number makes a statement absent (presence(numbers=True))")
    args = parser.parse_args()
    args.rules = [r.strip() for r in args.rules.split(",") if r.strip()]
    support_module.DEFAULT_RULES = tuple(args.rules)  # every index of the run, the components' too
    data = read_realsumm(args.data / "scores.json")
    n_votes = sum(len(j.votes) for by in data.judgments.values() for j in by.values())
    print(f"presence: threshold {args.threshold:g}, rules {','.join(args.rules)}, number gate "
          f"{'on' if args.number_gate else 'off'}")
    print(f"loaded {len(data.references)} articles, {len(data.systems)} systems, "
          f"{sum(len(s) for s in data.scus.values())} SCUs, {n_votes} judged (SCU, summary) pairs")
    ext = _extract(data, args)
    rouge = _rouge()
    bacc, kappa = scu_level(data, ext, args, rouge)
    tau_all, tau_rouge2 = system_level(data, ext, args, rouge)
    print(f"realsumm scu_bacc={bacc:.3f} scu_kappa={kappa:.3f} tau_all={tau_all:.3f} tau_rouge2={tau_rouge2:.3f}")


if __name__ == "__main__":
    main()
