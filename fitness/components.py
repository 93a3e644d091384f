"""Fitness components: a registry of per-prompt scores built from the distribution, divergence,
support and depth functions.

A component is a callable ``PromptContext -> float`` made by a registered factory from keyword
parameters (``js_facts(estimator=0.5)``). Each factory declares whether its value is
higher-is-better (a score) or lower-is-better (a divergence); :mod:`fitness.compose` uses that to
keep the total higher-is-better. Register your own with :func:`register`.

Registered here: ``f1_at_k``, ``js_facts``, ``tv_facts``, ``hellinger_facts``, ``w1_depth`` and the
generic ``divergence(view=..., divergence=..., estimator=..., support=...)``; ``recall`` is
registered by :mod:`fitness.recall`. Every registered
component at its default parameters passes the anti-gaming tests (repetition, padding, copying the
prompt, empty answers, a list of every entity of the source never beat a genuine human answer;
``tests/fitness/test_gaming.py``). What did *not* pass and is therefore not registered on its own:
precision alone (generic filler can add supported facts), KL with smoothing, the cluster, label,
predicate and kind views, and source-position W1; they remain reachable through ``divergence(...)``
and the library functions, as diagnostics.

Distribution components compare over the outcomes the *references* mention, with the plug-in
estimate by default. Measured on SQuALITY (one candidate answer against three references, hundreds
of distinct facts): Jeffreys smoothing over that support makes both distributions nearly uniform,
and a one-sentence answer then scores *closer* to the humans than a genuine human answer.

Every component returns a finite number. With nothing to compare (no candidate answer, or a side
without any fact) it returns its *worst* value: 0 for scores, 1 for the bounded divergences (JS in
bits, TV, Hellinger) and for ``w1_depth``, :data:`KL_CAP` nats for KL (KL is also clipped there so
the plug-in estimate cannot produce ``inf``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fitness.depth import (
    balanced_precision_recall,
    f1_at_k_score,
    length_penalty,
    precision_score,
    reference_k,
)
from fitness.distributions import CATEGORICAL_VIEWS, fact_distributions, ordinal_samples
from fitness.divergences import DIVERGENCES, estimate, pseudo_count, wasserstein_divergence
from fitness.registry import COMPONENTS, ComponentInfo, Params, make_component, register
from fitness.support import SupportIndex
from infoextract import Extraction

__all__ = ["PromptContext", "ComponentInfo", "COMPONENTS", "register", "make_component", "KL_CAP"]

KL_CAP = 10.0  # nats; with Jeffreys smoothing real KLs stay far below (see README)
_WORST = {"kl": KL_CAP, "kl_reverse": KL_CAP, "js": 1.0, "tv": 1.0, "hellinger": 1.0}


@dataclass
class PromptContext:
    """What a component sees for one prompt. Facts copied from the prompt are already removed
    from ``candidates`` and ``references`` (see :func:`fitness.depth.informative`)."""

    candidates: list[Extraction]
    references: list[Extraction]
    source: Extraction | None = None
    prompt: Extraction | None = None
    cache: dict[Any, Any] = field(default_factory=dict)  # shared by the components of one prompt

    def _memo(self, key, make):
        if key not in self.cache:
            self.cache[key] = make()
        return self.cache[key]

    def support_index(self, support: str, words: bool = False) -> SupportIndex:
        """The reference facts (with ``words``, also the references' sentence words) to check
        candidate facts against, built once per prompt."""

        def make():
            sides = []
            if support in ("references", "both"):
                sides += self.references
            if support in ("source", "both") and self.source is not None:
                sides.append(self.source)
            if words:
                return SupportIndex.from_extractions(sides)
            return SupportIndex.build([f for e in sides for f in e.unique_facts])

        return self._memo(("support", support, words), make)

    def supported_mask(self, support: str, words: bool = False) -> list[np.ndarray]:
        """Per candidate answer, a boolean per unique fact: supported?"""
        index = self.support_index(support, words)
        return self._memo(("mask", support, words), lambda: [index.supports(e.unique_facts) for e in self.candidates])

    def counts_by_kind(self, support: str, words: bool = False) -> list[dict[str, tuple[int, int]]]:
        """Per candidate answer: kind -> ``(n_supported, n_facts)``."""

        def make():
            out = []
            for e, mask in zip(self.candidates, self.supported_mask(support, words)):
                d: dict[str, list[int]] = {}
                for f, ok in zip(e.unique_facts, mask):
                    c = d.setdefault(f.kind, [0, 0])
                    c[0] += int(ok)
                    c[1] += 1
                out.append({k: (v[0], v[1]) for k, v in d.items()})
            return out

        return self._memo(("kinds", support, words), make)

    def kind_weights(self) -> dict[str, float]:
        """Each kind's share of the references' unique facts."""

        def make():
            counts = Counter(f.kind for e in self.references for f in e.unique_facts)
            total = sum(counts.values())
            return {k: c / total for k, c in counts.items()} if total else {}

        return self._memo("kind_weights", make)

    def loo_supported_depths(self) -> np.ndarray:
        """Per reference answer, how many of its facts the *other* references support."""

        def make():
            out = []
            for i, e in enumerate(self.references):
                others = [f for j, o in enumerate(self.references) if j != i for f in o.unique_facts]
                out.append(int(SupportIndex.build(others).supports(e.unique_facts).sum()) if others else 0)
            return np.array(out, dtype=float)

        return self._memo("loo_depths", make)


_SUPPORTS = ("references", "source", "both")


def _check_support(support: str) -> str:
    if support not in _SUPPORTS:
        raise ValueError(f"support must be one of {list(_SUPPORTS)}, got {support!r}")
    return support


# --- depth and precision (higher is better) ---------------------------------------------------

def _kind_ks(ctx: PromptContext, k: float | str, weights: dict[str, float]) -> dict[str, float]:
    """K per kind: the statistic ``k`` of the references' per-kind depths, or a share of a fixed K."""
    if isinstance(k, str):
        return {kind: reference_k([sum(f.kind == kind for f in e.unique_facts) for e in ctx.references], k=k)
                for kind in weights}
    return {kind: max(1.0, float(k) * w) for kind, w in weights.items()}


def _source_support(params: Params) -> bool:
    return params.get("support", "references") != "references"


@register("f1_at_k", higher_is_better=True, needs_source=_source_support)
def f1_at_k(*, k: float | str = "median", support: str = "references", balance: str | None = "kind",
            gamma: float | None = None, words: bool = False):
    """Mean F1@K of the answers (Wei et al., 2024): precision against the references, recall capped
    at K supported facts, K fixed or the references' median depth. ``balance="kind"`` (default)
    computes both per fact kind, weighted by the kinds' shares in the references, so a bare list
    of easy-to-match entities does not pay; ``balance=None`` is the paper's plain F1@K.
    ``gamma``: optional FActScore length penalty. ``words``: a fact also counts as supported when
    all its content words occur in one sentence of a reference (the presence rule ``words``)."""
    _check_support(support)
    if balance not in ("kind", None):
        raise ValueError(f"balance must be 'kind' or None, got {balance!r}")
    reference_k([1.0], k=k)  # validate now, not at the first prompt

    def component(ctx: PromptContext) -> float:
        if not ctx.candidates or not ctx.references:
            return 0.0
        vals = []
        if balance == "kind":
            weights = ctx.kind_weights()
            if not weights:
                return 0.0
            ks = _kind_ks(ctx, k, weights)
            for counts in ctx.counts_by_kind(support, words):
                p, r = balanced_precision_recall(counts, weights, ks)
                vals.append(2 * p * r / (p + r) if p + r > 0 else 0.0)
        else:
            kk = reference_k([e.depth for e in ctx.references], k=k)
            for mask in ctx.supported_mask(support, words):
                vals.append(f1_at_k_score(int(mask.sum()), mask.size, k=kk))
        if gamma:
            vals = [v * length_penalty(e.depth, gamma=gamma) for v, e in zip(vals, ctx.candidates)]
        return float(np.mean(vals))

    return component


def precision(*, support: str = "references", balance: str | None = "kind", gamma: float | str | None = "median"):
    """Mean share of an answer's informative facts supported by the references (kind-balanced by
    default, see f1_at_k), times the FActScore length penalty exp(1 - gamma/n) below gamma facts;
    gamma is a number or, by default, the references' median depth (so a short "safe" answer
    cannot win); None disables it."""
    _check_support(support)
    if balance not in ("kind", None):
        raise ValueError(f"balance must be 'kind' or None, got {balance!r}")
    if gamma is not None:
        reference_k([1.0], k=gamma)

    def component(ctx: PromptContext) -> float:
        if not ctx.candidates or not ctx.references:
            return 0.0
        g = reference_k([e.depth for e in ctx.references], k=gamma) if gamma is not None else None
        weights = ctx.kind_weights()
        vals = []
        for e, counts in zip(ctx.candidates, ctx.counts_by_kind(support)):
            if balance == "kind":
                p = balanced_precision_recall(counts, weights, dict.fromkeys(weights, 1.0))[0]
            else:
                p = precision_score(sum(s for s, _ in counts.values()), sum(n for _, n in counts.values()))
            vals.append(p * (length_penalty(e.depth, gamma=g) if g else 1.0))
        return float(np.mean(vals))

    return component


# --- distribution matching (lower is better) --------------------------------------------------

_DIST_SUPPORTS = ("references", "union")


def _categorical(view: str, divergence: str, estimator: str | float | None, distance_threshold: float = 0.5,
                 support: str = "references"):
    if divergence not in DIVERGENCES:
        raise ValueError(f"divergence must be one of {sorted(DIVERGENCES)}, got {divergence!r}")
    if estimator is None:
        # bounded divergences are finite under plug-in; KL needs smoothing (see the module docstring)
        estimator = "jeffreys" if divergence.startswith("kl") else "plugin"
    if support not in _DIST_SUPPORTS:
        raise ValueError(f"support must be one of {list(_DIST_SUPPORTS)}, got {support!r}")
    if view not in CATEGORICAL_VIEWS:
        raise ValueError(f"view must be one of {list(CATEGORICAL_VIEWS)}, got {view!r}")
    pseudo_count(estimator)  # validate early
    fn, worst = DIVERGENCES[divergence], _WORST[divergence]

    def component(ctx: PromptContext) -> float:
        if not ctx.candidates or not ctx.references:
            return worst
        cand, ref = fact_distributions(
            ctx.candidates, ctx.references, view=view, distance_threshold=distance_threshold
        )
        c, r = cand.counts, ref.counts
        if support == "references":
            # compare over what people mention; outcomes only the candidates have are the
            # precision side's business (with 1-10 answers and hundreds of rare facts, a union
            # support makes every smoothed distribution nearly uniform and short answers win)
            c, r = c[r > 0], r[r > 0]
        if c.sum() == 0 or r.sum() == 0:
            return worst  # a side that mentions nothing (of what people mention) has no distribution
        # first argument the references: KL(references || candidates) punishes missing what people say
        value = fn(estimate(r, estimator=estimator), estimate(c, estimator=estimator))
        return float(min(value, worst)) if np.isfinite(value) else worst

    return component


def _divergence_worst(params: Params) -> float:
    return _WORST.get(params.get("divergence", "js"), 1.0)


@register("divergence", higher_is_better=False, worst=_divergence_worst)
def divergence(*, view: str = "key", divergence: str = "js", estimator: str | float | None = None,
               distance_threshold: float = 0.5, support: str = "references"):
    """Any categorical view (key, cluster, label, predicate, kind) under any divergence (kl =
    KL(references || candidates), kl_reverse, js in bits, tv, hellinger), over the outcomes the
    references mention (``support="references"``, default) or the union of both sides. Estimator
    default: plug-in for the bounded divergences, Jeffreys for KL. Only the default (JS over
    fact keys) is covered by the anti-gaming tests; the other views are diagnostics."""
    return _categorical(view, divergence, estimator, distance_threshold, support)


def _shortcut(name: str, view: str, div: str, what: str):
    def factory(*, estimator: str | float = "plugin", distance_threshold: float = 0.5,
                support: str = "references"):
        return _categorical(view, div, estimator, distance_threshold, support)

    factory.__doc__ = f"{what} between the reference and candidate distributions of {view}s."
    register(name, higher_is_better=False, worst=_WORST[div])(factory)


for _div, _what in (("js", "Jensen-Shannon divergence (bits)"), ("tv", "Total variation"),
                    ("hellinger", "Hellinger distance")):
    _shortcut(f"{_div}_facts", "key", _div, _what)


@register("w1_depth", higher_is_better=False, worst=1.0)
def w1_depth():
    """Wasserstein-1 between the *supported* depth distributions on a log scale: for a candidate,
    log(1 + its facts supported by the references, capped at the references' maximum); for a
    reference, log(1 + its facts supported by the other references); divided by log(1 + that
    maximum) so it lies in [0, 1]. Unsupported padding does not move it; 0 means same depth."""

    def component(ctx: PromptContext) -> float:
        if not ctx.candidates or len(ctx.references) < 2:
            return 1.0 if not ctx.candidates else 0.0
        loo = ctx.loo_supported_depths()
        # depth beyond what any reference reaches counts as that maximum: over-long answers are
        # the precision side's business, and capping keeps a bare list from looking "closer"
        cand = np.minimum([m.sum() for m in ctx.supported_mask("references")], loo.max())
        ref, cand = np.log1p(loo), np.log1p(cand)
        # divided by the largest possible distance so the value lies in [0, 1] like the others
        return wasserstein_divergence(cand, ref) / max(float(np.log1p(loo.max())), np.log(2))

    return component


def w1_position():
    """Wasserstein-1 between where in the source (sentence index) the references' facts and the
    candidates' *supported* facts come from, divided by the span of indices seen (0 same coverage,
    1 opposite ends of the source); needs the extractor to align answers to the source."""

    def component(ctx: PromptContext) -> float:
        ref = ordinal_samples(ctx.references, view="source_position")
        supported = [
            Extraction(tuple(f for f, ok in zip(e.unique_facts, m) if ok))
            for e, m in zip(ctx.candidates, ctx.supported_mask("references"))
        ]
        cand = ordinal_samples(supported, view="source_position")
        if ref.size == 0 or cand.size == 0:
            return 1.0
        span = max(ref.max(), cand.max()) - min(ref.min(), cand.min())
        return min(1.0, wasserstein_divergence(cand, ref) / span) if span > 0 else 0.0

    # source_index is only set when the extractor is given the source: compose it with
    # Term(..., needs_source=True, worst=1.0)
    return component
