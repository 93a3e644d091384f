"""Does the fitness rank answers the way human judges do? SQuALITY human-eval (Wang et al., 2022).

For each rated question (20 stories x 5 questions), the bart, bart-dpr and human responses are
scored against that question's four reference responses (the rated human response is one of them
and is left out of its own references) with the fitness (default: ``fitness.DEFAULT_SPEC``) and
with ROUGE-1 F1 (``rouge-score``, stemmed, best reference), in the same run. Printed: Kendall tau
and Spearman rho between each score and the reviewers' mean overall and selection ratings, per
response (300) and per system (3 means), for the fitness, each of its components and ROUGE-1.

    .venv/bin/python benchmarks/squality_agreement.py [--fitness SPEC] [--data DIR] [--cache FILE] [--no-resolve] [--rules R,...]

Last line: ``squality_tau_overall esfit=<tau> rouge1=<tau>`` (per response, overall rating).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau, spearmanr

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import fitness.support as support_module  # noqa: E402
from fitness import DEFAULT_SPEC, build_fitness  # noqa: E402
from fitness.scoring import extract_texts  # noqa: E402
from infoextract import Extractor, group_by_prompt  # noqa: E402
from infoextract.loaders.squality import load_squality, load_squality_eval  # noqa: E402


def load(data: Path):
    """Reference records by prompt id, and the rated responses (with ``reference_uid`` on humans)."""
    stories = data / "v1-3_txt_test.jsonl"
    refs = group_by_prompt(load_squality(stories))
    rated = load_squality_eval(data / "human-eval_all-responses.jsonl", stories=stories)
    # the loader maps question key "k" to question number k+1; check it the way the issue asks:
    # every rated human response must equal one of that question's four references
    humans = [r for r in rated if r.author == "human"]
    unmatched = [r.prompt_id for r in humans if "reference_uid" not in r.meta]
    if unmatched:
        raise SystemExit(f"{len(unmatched)} human responses match no reference of their question "
                         f"(e.g. {unmatched[:3]}): the question-key mapping is wrong")
    print(f"loaded {len(rated)} rated responses on {len({r.prompt_id for r in rated})} questions; "
          f"all {len(humans)} human responses equal one of their question's references")
    return refs, rated


def rouge1(candidate: str, references: list[str]) -> float:
    from rouge_score import rouge_scorer

    scorer = rouge1.scorer = getattr(rouge1, "scorer", None) or rouge_scorer.RougeScorer(["rouge1"], use_stemmer=True)
    return max(scorer.score(ref, candidate)["rouge1"].fmeasure for ref in references)


def correlations(name: str, scores, ratings, systems) -> dict[str, float]:
    out = {}
    for rating in ("overall-rating", "selection-rating"):
        y = np.array([r[rating] for r in ratings])
        x = np.asarray(scores, dtype=float)
        tau, rho = kendalltau(x, y).statistic, spearmanr(x, y).statistic
        sys_names = sorted(set(systems))
        xs = [x[[s == n for s in systems]].mean() for n in sys_names]
        ys = [y[[s == n for s in systems]].mean() for n in sys_names]
        sys_tau = kendalltau(xs, ys).statistic
        # within one system: does the score also order answers of similar quality?
        within = [kendalltau(x[[s == n for s in systems]], y[[s == n for s in systems]]).statistic for n in sys_names]
        out[rating] = tau
        print(f"  {name:<28} {rating:<17} response: tau={tau:+.3f} rho={rho:+.3f}   system(n={len(sys_names)}): "
              f"tau={sys_tau:+.2f}   within system (mean tau): {np.nanmean(within):+.3f}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fitness", default=DEFAULT_SPEC, help="fitness spec (default: fitness.DEFAULT_SPEC)")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "squality")
    parser.add_argument("--cache", default=None, help="sqlite extraction cache (speeds up reruns)")
    parser.add_argument("--no-resolve", action="store_true", help="extract without pronoun/short-name resolution")
    parser.add_argument("--rules", default=",".join(support_module.DEFAULT_RULES),
                        help=f"matching rules of every support index of the run, from "
                             f"{','.join(support_module.MATCH_RULES)} (default {','.join(support_module.DEFAULT_RULES)})")
    args = parser.parse_args()
    support_module.DEFAULT_RULES = tuple(r.strip() for r in args.rules.split(",") if r.strip())
    fitness = build_fitness(args.fitness)
    print(f"fitness: {fitness}")
    refs, rated = load(args.data)

    t0 = time.perf_counter()
    extractor = Extractor(cache=args.cache, resolve=not args.no_resolve)
    need_src = fitness.needs_source
    items = [(r.text, r.prompt_id) for recs in refs.values() for r in recs]
    items += [(r.text, r.prompt_id) for r in rated]
    items += [(recs[0].prompt, "prompt:" + pid) for pid, recs in refs.items()]
    if need_src:
        items += [(recs[0].source, "source:" + pid) for pid, recs in refs.items()]
    items = list(dict.fromkeys(items))
    srcs = [refs[p][0].source if p in refs else None for _, p in items] if need_src else None
    ext = dict(zip(items, extract_texts(extractor, [t for t, _ in items], srcs, progress=sys.stderr.isatty())))
    t1 = time.perf_counter()
    print(f"extracted {len(items)} texts in {t1 - t0:.1f} s")

    esfit_scores, rouge_scores, comp_scores, ratings, systems = [], [], {}, [], []
    for r in rated:
        own = r.meta.get("reference_uid")
        keep = [x for x in refs[r.prompt_id] if x.meta.get("uid") != own]
        if len(keep) != len(refs[r.prompt_id]) - (1 if own else 0):
            raise SystemExit(f"could not leave the rated human response out of its references at {r.prompt_id}")
        row = fitness.score_prompt(
            [ext[(r.text, r.prompt_id)]], [ext[(x.text, x.prompt_id)] for x in keep],
            source=ext.get((refs[r.prompt_id][0].source, "source:" + r.prompt_id)),
            prompt=ext[(refs[r.prompt_id][0].prompt, "prompt:" + r.prompt_id)],
        )
        esfit_scores.append(row["total"])
        for t in fitness.terms:
            comp_scores.setdefault(t.label, []).append(row[t.label] if t.higher_is_better else -row[t.label])
        rouge_scores.append(rouge1(r.text, [x.text for x in keep]))
        ratings.append(r.meta["overall"])
        systems.append(r.author)
    t2 = time.perf_counter()
    print(f"scored {len(rated)} responses: fitness+rouge {t2 - t1:.1f} s")
    for name in sorted(set(systems)):
        idx = [s == name for s in systems]
        print(f"  {name:<9} mean fitness={np.mean(np.array(esfit_scores)[idx]):+.3f} "
              f"rouge1={np.mean(np.array(rouge_scores)[idx]):.3f} "
              f"overall-rating={np.mean([x['overall-rating'] for x, i in zip(ratings, idx) if i]):.1f}")
    print("correlation with reviewers (Kendall tau, Spearman rho; components sign-flipped so higher is better):")
    ours = correlations("esfit (total)", esfit_scores, ratings, systems)
    for label, vals in comp_scores.items():
        correlations(f"  {label}", vals, ratings, systems)
    theirs = correlations("rouge1", rouge_scores, ratings, systems)
    print(f"squality_tau_overall esfit={ours['overall-rating']:.4f} rouge1={theirs['overall-rating']:.4f}")


if __name__ == "__main__":
    main()
