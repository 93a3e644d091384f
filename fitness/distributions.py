"""Distributions of extracted facts over a prompt's answers, under several views.

A *categorical* view maps each answer to a set of outcomes (fact keys, paraphrase clusters, entity
labels, predicates, fact kinds); an outcome's mass is the share of the prompt's answers that
mention it (an answer that repeats a fact still counts once). Divergences compare the two sides
after normalising these shares into probabilities, which answers "are the same facts mentioned in
the same proportions?"; how *many* facts an answer carries is the separate, *ordinal* depth view.

Ordinal views (depth, source position) give samples of numbers and are compared with
Wasserstein-1, where being off by one fact costs less than being off by ten.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from fitness.clusters import cluster_keys
from infoextract import Extraction, Fact

__all__ = [
    "FactDistribution",
    "CATEGORICAL_VIEWS",
    "ORDINAL_VIEWS",
    "answer_outcomes",
    "fact_distributions",
    "ordinal_samples",
]


@dataclass(frozen=True)
class FactDistribution:
    """How many of ``n_answers`` answers mention each outcome.

    ``counts[i]`` answers mention ``outcomes[i]``; :attr:`mass` is the share of answers.
    """

    outcomes: tuple[str, ...]
    counts: np.ndarray
    n_answers: int

    @property
    def mass(self) -> np.ndarray:
        return self.counts / max(self.n_answers, 1)

    def as_dict(self) -> dict[str, float]:
        return {o: float(m) for o, m in zip(self.outcomes, self.mass)}


def _fact_id(f: Fact) -> str:
    return f"{f.kind}:{f.key}"


# per-fact labellers: fact -> outcome, or None when the fact has no outcome under that view
_LABELLERS: dict[str, Callable[[Fact], str | None]] = {
    "key": _fact_id,
    "label": lambda f: f.label or None if f.kind == "entity" else None,
    "predicate": lambda f: f.label or None if f.kind == "relation" else None,
    "kind": lambda f: f.kind,
}
CATEGORICAL_VIEWS = (*_LABELLERS, "cluster")
ORDINAL_VIEWS = ("depth", "source_position")


def _check_view(view: str, allowed: Sequence[str]) -> None:
    if view not in allowed:
        raise ValueError(f"view must be one of {list(allowed)}, got {view!r}")


def answer_outcomes(
    *groups: Sequence[Extraction], view: str = "key", distance_threshold: float = 0.5
) -> list[list[frozenset[str]]]:
    """The set of outcomes each answer mentions, for every group of answers, under one view.

    Groups are laid out together so that the ``cluster`` view is fitted on their union (a cluster
    id means the same thing on both sides).
    """
    _check_view(view, CATEGORICAL_VIEWS)
    if view == "cluster":
        keys = [f.key for g in groups for e in g for f in e.unique_facts]
        clusters = cluster_keys(keys, distance_threshold=distance_threshold)
        return [[frozenset(f"c{clusters[f.key]}" for f in e.unique_facts) for e in g] for g in groups]
    label = _LABELLERS[view]
    out = []
    for g in groups:
        sets = []
        for e in g:
            labels = (label(f) for f in e.unique_facts)
            sets.append(frozenset(x for x in labels if x is not None))
        out.append(sets)
    return out


def fact_distributions(
    *groups: Sequence[Extraction], view: str = "key", distance_threshold: float = 0.5
) -> list[FactDistribution]:
    """One :class:`FactDistribution` per group, all laid out on the union of their outcomes."""
    per_group = answer_outcomes(*groups, view=view, distance_threshold=distance_threshold)
    counters = [Counter(o for s in sets for o in s) for sets in per_group]
    support = sorted(set().union(*counters))
    return [
        FactDistribution(tuple(support), np.array([c[o] for o in support], dtype=float), len(sets))
        for c, sets in zip(counters, per_group)
    ]


def ordinal_samples(answers: Sequence[Extraction], *, view: str = "depth") -> np.ndarray:
    """Numbers for an ordinal view: one depth per answer, or the source sentence index of every
    distinct source-aligned fact of every answer."""
    _check_view(view, ORDINAL_VIEWS)
    if view == "depth":
        return np.array([e.depth for e in answers], dtype=float)
    values = []
    for e in answers:
        values.extend(sorted({f.source_index for f in e.unique_facts if f.source_index is not None}))
    return np.array(values, dtype=float)
