"""Small-sample bias of the distribution divergences: what two samples of the *same* answer
distribution score at 3-10 answers per prompt, next to two *different* distributions.

The true divergence between two samples of one distribution is 0, but with a handful of answers
and dozens of facts the estimate is far from it; what matters for a fitness is that the no-difference
value sits clearly below the value of a real difference. ``benchmarks/divergence_bias.py`` prints
the table quoted in the README.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fitness.divergences import DIVERGENCES, estimate

__all__ = ["sample_answers", "null_divergence"]


def sample_answers(rates: np.ndarray, n_answers: int, rng: np.random.Generator) -> np.ndarray:
    """Counts of answers mentioning each fact when answer j mentions fact i with probability rates[i]."""
    return (rng.random((n_answers, rates.size)) < rates).sum(axis=0).astype(float)


def _value(ref: np.ndarray, cand: np.ndarray, divergence: str, estimator, support: str) -> float:
    if support == "references":
        keep = ref > 0
        ref, cand = ref[keep], cand[keep]
    if ref.sum() == 0 or cand.sum() == 0:
        return np.nan
    p, q = estimate(ref, estimator=estimator), estimate(cand, estimator=estimator)
    return float(DIVERGENCES[divergence](p, q))


def null_divergence(rates_a: np.ndarray, rates_b: np.ndarray, n_answers: int, *, divergence: str = "js",
                    estimator: str | float = "plugin", support: str = "references", n_trials: int = 200,
                    seed: int = 0, n_reference: int | None = None) -> tuple[float, float]:
    """Mean and std of the divergence between ``n_reference`` answers drawn with ``rates_a`` and
    ``n_answers`` answers drawn with ``rates_b`` (pass the same rates twice for the null value)."""
    rng = np.random.default_rng(seed)
    n_ref = n_reference or n_answers
    vals = [_value(sample_answers(rates_a, n_ref, rng), sample_answers(rates_b, n_answers, rng), divergence,
                   estimator, support) for _ in range(n_trials)]
    vals = np.array([v for v in vals if np.isfinite(v)])
    return float(vals.mean()), float(vals.std())


def zipf_rates(n_facts: int = 60, *, top: float = 0.9, exponent: float = 1.0,
               order: Sequence[int] | None = None) -> np.ndarray:
    """Mention rates falling like a Zipf law from ``top`` (optionally permuted by ``order``)."""
    rates = top / np.arange(1, n_facts + 1) ** exponent
    return rates[np.asarray(order)] if order is not None else rates
