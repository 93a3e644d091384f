"""Bootstrap confidence intervals (Efron & Tibshirani, 1993, percentile method).

Two resampling units: *prompts* for a corpus-level mean (how much would the score move with other
prompts of the same kind), and *answers* within one prompt (how much would a divergence move with
other answers from the same people and the same model: the small-sample noise of 3-11 answers).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np

__all__ = ["bootstrap_mean_ci", "bootstrap_answers_ci"]

T = TypeVar("T")


def _check(n_boot: int, level: float) -> None:
    if not (isinstance(n_boot, int) and n_boot >= 1):
        raise ValueError(f"n_boot must be a positive integer (number of resamples), got {n_boot!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), e.g. 0.95, got {level!r}")


def bootstrap_mean_ci(values: Sequence[float], *, n_boot: int = 1000, level: float = 0.95,
                      seed: int = 0) -> tuple[float, float]:
    """Percentile CI of the mean of ``values`` (resampled with replacement); one value gives a
    zero-width interval."""
    _check(n_boot, level)
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise ValueError("values is empty: nothing to bootstrap")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    tail = (1 - level) / 2
    return float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


def bootstrap_answers_ci(statistic: Callable[[list[T], list[T]], float], candidates: Sequence[T],
                         references: Sequence[T], *, n_boot: int = 200, level: float = 0.95,
                         seed: int = 0) -> tuple[float, float]:
    """Percentile CI of ``statistic(candidates, references)`` when both sides' answers are
    resampled with replacement (each side independently, keeping its size)."""
    _check(n_boot, level)
    if not candidates or not references:
        raise ValueError("candidates and references must each hold at least one answer to bootstrap")
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_boot):
        c = [candidates[i] for i in rng.integers(0, len(candidates), len(candidates))]
        r = [references[i] for i in rng.integers(0, len(references), len(references))]
        values.append(statistic(c, r))
    tail = (1 - level) / 2
    return float(np.quantile(values, tail)), float(np.quantile(values, 1 - tail))
