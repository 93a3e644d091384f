"""Score a candidate corpus against a reference corpus: per prompt, per corpus, per author, with
bootstrap confidence intervals over prompts. What ``esfit score`` and the report run on."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fitness.bootstrap import bootstrap_mean_ci
from fitness.compose import Fitness, FitnessResult, build_fitness
from infoextract import Extraction, Record, group_by_prompt

__all__ = ["CorpusScore", "ScoreReport", "extract_texts", "score_corpus"]


@dataclass
class CorpusScore:
    """The score of one set of candidates (all, or one author's) and what it was computed from."""

    result: FitnessResult
    ci: dict[str, Any]
    candidates: dict[str, list[Extraction]]
    references: dict[str, list[Extraction]]
    candidate_texts: dict[str, list[str]]
    skipped: dict[str, str] = field(default_factory=dict)  # prompt id -> why it was not scored

    def to_json(self) -> dict[str, Any]:
        """``{"aggregate": {"fitness", "components", "ci"}, "prompts": [...], "skipped": {...}}``."""
        prompts = [
            {
                "prompt_id": pid,
                "fitness": comps["total"],
                "components": {k: v for k, v in comps.items() if k != "total"},
                "n_candidates": len(self.candidates[pid]),
                "n_references": len(self.references[pid]),
            }
            for pid, comps in self.result.per_prompt.items()
        ]
        return {"aggregate": {**self.result.to_dict(), "ci": self.ci}, "prompts": prompts, "skipped": self.skipped}


@dataclass
class ScoreReport:
    """``overall`` scores every candidate together; ``by_author`` each author separately."""

    overall: CorpusScore
    by_author: dict[str, CorpusScore] = field(default_factory=dict)
    prompts: dict[str, str] = field(default_factory=dict)  # prompt id -> prompt text, when known
    reference_texts: dict[str, list[str]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out = self.overall.to_json()
        if self.by_author:
            out["by_author"] = {a: s.to_json() for a, s in self.by_author.items()}
        return out


def extract_texts(extractor: Any, texts: Sequence[str], sources: Sequence[str | None] | None = None, *,
                  progress: bool = False) -> list[Extraction]:
    """Extract ``texts`` in one call, each distinct (text, source) pair once."""
    keys = list(zip(texts, sources if sources is not None else [None] * len(texts)))
    unique = list(dict.fromkeys(keys))
    if not unique:
        return []
    use_sources = [s for _, s in unique] if sources is not None else None
    got = extractor.extract([t for t, _ in unique], use_sources, progress=progress)
    by_key = dict(zip(unique, got))
    return [by_key[k] for k in keys]


def _ci(result: FitnessResult, fitness: Fitness, *, n_boot: int, level: float, seed: int) -> dict[str, Any]:
    per = list(result.per_prompt.values())
    return {
        "level": level,
        "n_boot": n_boot,
        "unit": "prompt",
        "fitness": list(bootstrap_mean_ci([p["total"] for p in per], n_boot=n_boot, level=level, seed=seed)),
        "components": {
            t.label: list(bootstrap_mean_ci([p[t.label] for p in per], n_boot=n_boot, level=level, seed=seed))
            for t in fitness.terms
        },
    }


def _score_group(fitness, cand_recs, ref_groups, ext, prompt_ext, source_ext, *, exclude_self, n_boot, level, seed):
    cands, refs, texts, skipped, per_prompt = {}, {}, {}, {}, {}
    for pid, recs in group_by_prompt(cand_recs).items():
        if pid not in ref_groups:
            skipped[pid] = "no reference answers for this prompt id"
            continue
        own = {r.text.strip() for r in recs}
        overlap = exclude_self and any(r.text.strip() in own for r in ref_groups[pid])
        opts = dict(source=source_ext.get(pid), prompt=prompt_ext.get(pid))
        if overlap:
            # each candidate against the references minus its own copy (leave-one-out), then
            # averaged: dropping every candidate's copy from everyone's references would leave
            # nothing when a corpus is scored against itself
            rows = []
            for r in recs:
                keep_r = [x for x in ref_groups[pid] if x.text.strip() != r.text.strip()]
                if keep_r:
                    rows.append(fitness.score_prompt([ext[(r.text, "answer", pid)]],
                                                     [ext[(x.text, "answer", pid)] for x in keep_r], **opts))
            if not rows:
                skipped[pid] = "every reference equals the candidate text (--exclude-self)"
                continue
            per_prompt[pid] = {k: float(sum(row[k] for row in rows) / len(rows)) for k in rows[0]}
            keep = [x for x in ref_groups[pid] if x.text.strip() not in own] or ref_groups[pid]
        else:
            keep = ref_groups[pid]
        cands[pid] = [ext[(r.text, "answer", pid)] for r in recs]
        refs[pid] = [ext[(r.text, "answer", pid)] for r in keep]
        texts[pid] = [r.text for r in recs]
        if pid not in per_prompt:
            per_prompt[pid] = fitness.score_prompt(cands[pid], refs[pid], **opts)
    if not cands:
        raise ValueError("no candidate prompt could be scored: " + "; ".join(
            f"{p}: {why}" for p, why in list(skipped.items())[:5]) + ". Check that both corpora use the same prompt ids.")
    comps = {t.label: float(np.mean([row[t.label] for row in per_prompt.values()])) for t in fitness.terms}
    result = FitnessResult(float(sum(t.weight * comps[t.label] for t in fitness.terms)), comps, per_prompt)
    ci = _ci(result, fitness, n_boot=n_boot, level=level, seed=seed)
    return CorpusScore(result, ci, cands, refs, texts, skipped)


def score_corpus(references: Sequence[Record], candidates: Sequence[Record], fitness: Any = None, *,
                 extractor: Any = None, by_author: bool = False, exclude_self: bool = False,
                 n_boot: int = 1000, level: float = 0.95, seed: int = 0, progress: bool = True) -> ScoreReport:
    """Score candidate records against reference records (grouped by ``prompt_id``).

    Args:
        references, candidates: the two corpora.
        fitness: a spec, mapping, TOML path or :class:`Fitness` (``None``: the default fitness).
        extractor: see :class:`~fitness.text.TextFitness`; default ``infoextract.Extractor()``.
        by_author: also score each candidate author separately.
        exclude_self: a reference whose text equals a candidate's is left out of *that*
            candidate's references: on such prompts each candidate is scored on its own against
            the remaining references and the prompt's values are the mean over its candidates
            (scoring a corpus of human answers against itself is then leave-one-out). The
            report's views of such a prompt use the references minus every candidate copy.
        n_boot, level, seed: bootstrap over prompts for the confidence intervals.
    """
    fitness = build_fitness(fitness)
    if not references:
        raise ValueError("the reference corpus is empty")
    if not candidates:
        raise ValueError("the candidate corpus is empty")
    if extractor is None:
        from infoextract import Extractor

        extractor = Extractor()
    ref_groups = group_by_prompt(references)
    sources = {pid: next((r.source for r in recs if r.source), None) for pid, recs in ref_groups.items()}
    prompts = {pid: next((r.prompt for r in recs if r.prompt), None) for pid, recs in ref_groups.items()}
    for r in candidates:  # a candidate corpus may carry the prompt/source the references lack
        if sources.get(r.prompt_id) is None and r.source:
            sources[r.prompt_id] = r.source
        if prompts.get(r.prompt_id) is None and r.prompt:
            prompts[r.prompt_id] = r.prompt
    need_src = fitness.needs_source
    # one extraction call for everything: answers, prompt texts and (if needed) sources; an
    # answer is aligned to its prompt's source only when a component reads source positions
    items = [(r.text, "answer", r.prompt_id) for r in [*references, *candidates]]
    items += [(t, "prompt", p) for p, t in prompts.items() if t]
    if need_src:
        items += [(t, "source", p) for p, t in sources.items() if t]
    items = list(dict.fromkeys(items))
    srcs = [sources.get(p) if what == "answer" else None for _, what, p in items] if need_src else None
    got = extract_texts(extractor, [t for t, _, _ in items], srcs, progress=progress)
    ext = dict(zip(items, got))
    prompt_ext = {p: ext[(t, "prompt", p)] for p, t in prompts.items() if t}
    source_ext = {p: ext[(t, "source", p)] for p, t in sources.items() if t and need_src}
    opts = dict(exclude_self=exclude_self, n_boot=n_boot, level=level, seed=seed)
    overall = _score_group(fitness, candidates, ref_groups, ext, prompt_ext, source_ext, **opts)
    authors = {}
    if by_author:
        for author in dict.fromkeys(r.author for r in candidates):
            recs = [r for r in candidates if r.author == author]
            authors[author] = _score_group(fitness, recs, ref_groups, ext, prompt_ext, source_ext, **opts)
    return ScoreReport(overall, authors, {p: t for p, t in prompts.items() if t},
                       {pid: [r.text for r in recs] for pid, recs in ref_groups.items()})
