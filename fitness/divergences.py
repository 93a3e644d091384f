"""Divergences between two discrete distributions, and the estimator that turns counts into them.

Pure functions over arrays: data positional, options keyword-only; ``*_divergence`` is lower-better.
The information-theoretic ones delegate to scipy (``rel_entr``,
``wasserstein_distance``) so they agree with it to floating-point precision; the tests check that on
random inputs.

Small samples are the norm (3-11 answers per prompt), so how counts become probabilities matters
as much as the divergence. :func:`estimate` applies additive (Lidstone) smoothing with a chosen
pseudo-count over the union support of both sides; the default 0.5 is the Jeffreys (Krichevsky-
Trofimov) estimator, 0 is the plug-in (maximum-likelihood) estimate, which makes KL infinite as soon
as one side mentions a fact the other never does. See ``benchmarks/divergence_bias.py`` and the
README for the measured bias of each choice at 3-10 answers per prompt.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.special import rel_entr
from scipy.stats import wasserstein_distance

__all__ = [
    "ESTIMATORS",
    "estimate",
    "kl_divergence",
    "js_divergence",
    "tv_divergence",
    "hellinger_divergence",
    "wasserstein_divergence",
    "DIVERGENCES",
]

# named pseudo-counts; any non-negative float is accepted too. "perks" is 1/K per outcome (K the
# support size: one pseudo-observation in total) and "minimax" sqrt(N)/K (N the total count); see
# Hausser & Strimmer (2009), "Entropy inference and the James-Stein estimator", Table 1.
ESTIMATORS = {"jeffreys": 0.5, "laplace": 1.0, "plugin": 0.0, "perks": None, "minimax": None}


def _check_pair(p, q) -> tuple[np.ndarray, np.ndarray]:
    """Normalise two non-negative weight vectors of equal length into probability vectors."""
    p = np.asarray(p, dtype=float)
    q = np.asarray(q, dtype=float)
    if p.ndim != 1 or p.shape != q.shape:
        raise ValueError(
            f"p and q must be 1-D arrays of the same length, got shapes {p.shape} and {q.shape}; "
            "align both distributions on one support first (see fitness.estimate)"
        )
    for name, arr in (("p", p), ("q", q)):
        if not np.all(np.isfinite(arr)) or np.any(arr < 0):
            raise ValueError(f"{name} must hold finite non-negative weights, got {arr!r}")
        if arr.sum() <= 0:
            raise ValueError(f"{name} has zero total mass; a distribution needs at least one positive weight")
    return p / p.sum(), q / q.sum()


def pseudo_count(estimator: str | float, *, support_size: int = 1, total: float = 0.0) -> float:
    """The additive pseudo-count of an estimator name (``jeffreys``, ``laplace``, ``plugin``,
    ``perks``, ``minimax``) or number, for a support of ``support_size`` outcomes and ``total`` counts."""
    if isinstance(estimator, str):
        if estimator not in ESTIMATORS:
            raise ValueError(
                f"estimator must be one of {sorted(ESTIMATORS)} or a non-negative number, got {estimator!r}"
            )
        if estimator == "perks":
            return 1.0 / max(support_size, 1)
        if estimator == "minimax":
            return float(np.sqrt(total)) / max(support_size, 1)
        return ESTIMATORS[estimator]
    alpha = float(estimator)
    if not np.isfinite(alpha) or alpha < 0:
        raise ValueError(f"estimator pseudo-count must be a finite number >= 0, got {estimator!r}")
    return alpha


def estimate(counts: Sequence[float], *, estimator: str | float = "jeffreys") -> np.ndarray:
    """Probabilities from counts with additive smoothing: ``(c_i + a) / (sum(c) + a * K)``.

    ``counts`` must already be laid out on the shared support (K entries, zeros included), so both
    sides of a comparison receive the same pseudo-count per outcome. With ``a = 0`` (plug-in) an
    all-zero count vector has no distribution and raises.
    """
    c = np.asarray(counts, dtype=float)
    if c.ndim != 1 or c.size == 0 or not np.all(np.isfinite(c)) or np.any(c < 0):
        raise ValueError(f"counts must be a non-empty 1-D array of finite non-negative numbers, got {counts!r}")
    alpha = pseudo_count(estimator, support_size=c.size, total=float(c.sum()))
    smoothed = c + alpha
    total = smoothed.sum()
    if total <= 0:
        raise ValueError("counts are all zero and the estimator is plug-in: no distribution to estimate; "
                         "use a positive pseudo-count (e.g. estimator='jeffreys')")
    return smoothed / total


def kl_divergence(p, q, *, base: float | None = None) -> float:
    """Kullback-Leibler divergence KL(p || q) in nats (or ``base``); ``inf`` where q misses p's support."""
    p, q = _check_pair(p, q)
    value = float(np.sum(rel_entr(p, q)))
    return value / np.log(base) if base else value


def js_divergence(p, q, *, base: float | None = None) -> float:
    """Jensen-Shannon divergence (the square of scipy's JS distance); at most ln 2 nats, 1 with base 2."""
    p, q = _check_pair(p, q)
    # computed here rather than as scipy's jensenshannon(p, q) ** 2: for nearly equal p and q its
    # rounding can go below zero under the square root and return nan
    m = 0.5 * (p + q)
    js = min(max(0.5 * float(rel_entr(p, m).sum() + rel_entr(q, m).sum()), 0.0), np.log(2))  # nats, rounding clipped
    return float(js / np.log(base) if base is not None else js)


def tv_divergence(p, q) -> float:
    """Total variation distance, half the L1 distance, in [0, 1]."""
    p, q = _check_pair(p, q)
    return float(0.5 * np.abs(p - q).sum())


def hellinger_divergence(p, q) -> float:
    """Hellinger distance ``sqrt(1 - sum sqrt(p q))`` in [0, 1]."""
    p, q = _check_pair(p, q)
    bc = float(np.sum(np.sqrt(p * q)))
    return float(np.sqrt(max(0.0, 1.0 - bc)))


def wasserstein_divergence(u_values, v_values, *, u_weights=None, v_weights=None) -> float:
    """Wasserstein-1 (earth mover's) distance between two samples of an ordinal quantity.

    Used for views whose outcomes are ordered (depth, source position) where KL-type divergences
    would treat "5 facts" and "6 facts" as unrelated outcomes.
    """
    u = np.asarray(u_values, dtype=float)
    v = np.asarray(v_values, dtype=float)
    if u.size == 0 or v.size == 0:
        raise ValueError("u_values and v_values must each hold at least one value; got sizes "
                         f"{u.size} and {v.size}")
    return float(wasserstein_distance(u, v, u_weights, v_weights))


# categorical divergences by name, all lower-is-better
DIVERGENCES = {
    "kl": kl_divergence,
    "kl_reverse": lambda p, q: kl_divergence(q, p),
    "js": lambda p, q: js_divergence(p, q, base=2),
    "tv": tv_divergence,
    "hellinger": hellinger_divergence,
}
