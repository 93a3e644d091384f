"""Fitness shaping: raw fitness (members × groups) → one weight per member for the ES update.

Pure functions over arrays, data positional and options keyword-only. ``fitness`` is (P,) for one
group-level score per member, or (P, G) for one score per member and prompt group.

- ``zscore_shaping``: per-group mean, global std (EGGROLL, "Evolution Strategies at the Hyperscale").
- ``centered_rank_shaping``: ranks mapped to [−0.5, 0.5] (Salimans et al. 2017, OpenAI-ES).
- ``raw_shaping``: the fitness itself, averaged over groups.

A NaN or missing (None) fitness is ranked worst, with a warning naming the member: rank shaping
places the member below every other one; z-score and raw shaping give the value the worst finite
fitness of its group (they have no scale to go further below without inventing one).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import torch

Shaper = Callable[[torch.Tensor], torch.Tensor]


def fitness_matrix(fitness, *, population_size: int | None = None, warn: bool = True) -> torch.Tensor:
    """(P, G) float64 tensor with NaN for missing values; warns naming each member with a NaN."""
    rows = fitness.tolist() if isinstance(fitness, torch.Tensor) else list(fitness)
    rows = [r if isinstance(r, Sequence) and not isinstance(r, str) else [r] for r in rows]
    if not rows or len({len(r) for r in rows}) != 1:
        raise ValueError("fitness must be a non-empty (P,) or (P, G) array with the same G for every member")
    if population_size is not None and len(rows) != population_size:
        raise ValueError(
            f"fitness has {len(rows)} entries but the population has {population_size} members: "
            "give one fitness per member, in member order"
        )
    f = torch.tensor([[float("nan") if v is None else float(v) for v in r] for r in rows], dtype=torch.float64)
    bad = (~torch.isfinite(f)).any(1).nonzero().flatten().tolist()
    if bad and warn:
        warnings.warn(
            f"fitness of member(s) {bad} is NaN, infinite or missing: ranked worst", RuntimeWarning, stacklevel=3
        )
    return f


def _fill_worst(f: torch.Tensor) -> torch.Tensor:
    """Non-finite entries replaced by their column's worst finite value (0 for an all-bad column)."""
    finite = torch.isfinite(f)
    worst = torch.where(finite, f, torch.inf).min(0).values
    worst = torch.where(torch.isfinite(worst), worst, torch.zeros_like(worst))
    return torch.where(finite, f, worst.expand_as(f))


def raw_shaping(fitness, *, population_size: int | None = None) -> torch.Tensor:
    """(P,) mean fitness of each member over its groups."""
    return _fill_worst(fitness_matrix(fitness, population_size=population_size)).mean(1).float()


def zscore_shaping(fitness, *, population_size: int | None = None, eps: float = 1e-8) -> torch.Tensor:
    """(P,) z-scores with a per-group mean and one global std (EGGROLL), averaged over groups.

    Subtracting each group's own mean removes how hard its prompts are; sharing one std keeps
    groups where members disagree more from being scaled down. All-equal fitness gives zeros.
    """
    f = _fill_worst(fitness_matrix(fitness, population_size=population_size))
    centred = f - f.mean(0, keepdim=True)
    std = f.std(unbiased=False) if f.numel() > 1 else torch.tensor(0.0, dtype=f.dtype)
    if std <= eps:
        return torch.zeros(f.shape[0])
    return (centred / std).mean(1).float()


def centered_rank_shaping(fitness, *, population_size: int | None = None) -> torch.Tensor:
    """(P,) centred ranks of the members' mean fitness in [−0.5, 0.5] (OpenAI-ES); ties share
    their average rank, and a member with any NaN or missing value ranks below all others."""
    f = fitness_matrix(fitness, population_size=population_size)
    score = torch.where(torch.isfinite(f).all(1), f.mean(1), -torch.inf)
    p = score.numel()
    if p == 1:
        return torch.zeros(1)
    order = score.argsort(stable=True)
    ranks = torch.empty(p, dtype=torch.float64)
    ranks[order] = torch.arange(p, dtype=torch.float64)
    # average the ranks of tied scores, so mirrored members with equal fitness cancel exactly
    uniq, inverse = torch.unique(score, return_inverse=True)
    sums = torch.zeros(uniq.numel(), dtype=torch.float64).index_add_(0, inverse, ranks)
    counts = torch.zeros(uniq.numel(), dtype=torch.float64).index_add_(0, inverse, torch.ones(p, dtype=torch.float64))
    ranks = (sums / counts)[inverse]
    return (ranks / (p - 1) - 0.5).float()


SHAPERS: dict[str, Callable[..., torch.Tensor]] = {
    "zscore": zscore_shaping,
    "rank": centered_rank_shaping,
    "raw": raw_shaping,
}


def register_shaper(name: str):
    """Register a shaping function ``fn(fitness, *, population_size=None) -> (P,) tensor`` under
    ``name`` (a decorator); it can then be chosen as ``shaping = "name"`` anywhere."""

    def deco(fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        if name in SHAPERS:
            raise ValueError(f"shaper {name!r} is already registered; pick another name")
        SHAPERS[name] = fn
        return fn

    return deco


def get_shaper(name: str) -> Callable[..., torch.Tensor]:
    """The shaping function registered as ``name``; an unknown name lists the available ones."""
    try:
        return SHAPERS[name]
    except KeyError:
        raise ValueError(f"shaping={name!r} is not known; choose one of {sorted(SHAPERS)}") from None
