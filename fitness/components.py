"""Fitness components: a registry of per-prompt scores built from the distribution, divergence,
support and depth functions.

A component is a callable ``PromptContext -> float`` made by a registered factory from keyword
parameters (``js_facts(estimator=0.5)``). Each factory declares whether its value is
higher-is-better (a ``*_score``) or lower-is-better (a divergence); :mod:`fitness.compose` uses that
to keep the total higher-is-better. Register your own with :func:`register`.

Every component returns a finite number. When it has nothing to compare (a side without any fact)
it returns its *worst* value: 0 for scores, 1 for the bounded divergences (JS in bits, TV,
Hellinger, normalised W1 of source positions) and :data:`KL_CAP` nats for KL. Both KL directions
are also clipped at :data:`KL_CAP` so the plug-in estimator cannot produce ``inf``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fitness.depth import f1_at_k_score, length_penalty, precision_score, reference_k
from fitness.distributions import fact_distributions, ordinal_samples
from fitness.divergences import DIVERGENCES, estimate, pseudo_count, wasserstein_divergence
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

    def support_index(self, support: str) -> SupportIndex:
        """The reference facts to check candidate facts against, built once per prompt."""
        key = ("support", support)
        if key not in self.cache:
            facts = []
            if support in ("references", "both"):
                facts += [f for e in self.references for f in e.unique_facts]
            if support in ("source", "both") and self.source is not None:
                facts += list(self.source.unique_facts)
            self.cache[key] = SupportIndex.build(facts)
        return self.cache[key]

    def supported_counts(self, support: str) -> list[tuple[int, int]]:
        """``(n_supported, n_facts)`` per candidate answer."""
        key = ("counts", support)
        if key not in self.cache:
            index = self.support_index(support)
            self.cache[key] = [
                (int(index.supports(e.unique_facts).sum()), len(e.unique_facts)) for e in self.candidates
            ]
        return self.cache[key]


@dataclass(frozen=True)
class ComponentInfo:
    factory: Callable[..., Callable[[PromptContext], float]]
    higher_is_better: bool
    doc: str


COMPONENTS: dict[str, ComponentInfo] = {}


def register(name: str, *, higher_is_better: bool):
    """Register a component factory under ``name`` (decorator)."""

    def deco(factory):
        if name in COMPONENTS:
            raise ValueError(f"fitness component {name!r} is already registered; pick another name")
        COMPONENTS[name] = ComponentInfo(factory, higher_is_better, (factory.__doc__ or "").strip())
        return factory

    return deco


def make_component(name: str, **params) -> Callable[[PromptContext], float]:
    """Build a registered component; an unknown name lists the known ones."""
    if name not in COMPONENTS:
        raise KeyError(f"unknown fitness component {name!r}; known components: {', '.join(sorted(COMPONENTS))}")
    try:
        return COMPONENTS[name].factory(**params)
    except TypeError as err:
        raise ValueError(f"bad parameters {params} for fitness component {name!r}: {err}") from None


_SUPPORTS = ("references", "source", "both")


def _check_support(support: str) -> str:
    if support not in _SUPPORTS:
        raise ValueError(f"support must be one of {list(_SUPPORTS)}, got {support!r}")
    return support


# --- depth and precision (higher is better) ---------------------------------------------------

@register("f1_at_k", higher_is_better=True)
def f1_at_k(*, k: float | str = "median", support: str = "references", gamma: float | None = None):
    """Mean F1@K of the answers: precision against the references with recall capped at K supported
    facts (K fixed, or the median depth of the prompt's references); optional FActScore penalty."""
    _check_support(support)
    reference_k([1.0], k=k)  # validate now, not at the first prompt

    def component(ctx: PromptContext) -> float:
        if not ctx.candidates:
            return 0.0
        kk = reference_k([e.depth for e in ctx.references], k=k)
        vals = []
        for s, n in ctx.supported_counts(support):
            v = f1_at_k_score(s, n, k=kk)
            vals.append(v * length_penalty(n, gamma=gamma) if gamma else v)
        return float(np.mean(vals))

    component.needs_source = support != "references"
    return component


@register("precision", higher_is_better=True)
def precision(*, support: str = "references", gamma: float | None = 10.0):
    """Mean share of an answer's informative facts supported by the references, times the
    FActScore length penalty (gamma facts; None disables it: then one safe fact scores 1)."""
    _check_support(support)

    def component(ctx: PromptContext) -> float:
        if not ctx.candidates:
            return 0.0
        vals = [
            precision_score(s, n) * (length_penalty(n, gamma=gamma) if gamma else 1.0)
            for s, n in ctx.supported_counts(support)
        ]
        return float(np.mean(vals))

    component.needs_source = support != "references"
    return component


# --- distribution matching (lower is better) --------------------------------------------------

def _categorical(view: str, divergence: str, estimator: str | float, distance_threshold: float = 0.5):
    if divergence not in DIVERGENCES:
        raise ValueError(f"divergence must be one of {sorted(DIVERGENCES)}, got {divergence!r}")
    pseudo_count(estimator)  # validate early
    fn, worst = DIVERGENCES[divergence], _WORST[divergence]

    def component(ctx: PromptContext) -> float:
        if not ctx.candidates or not ctx.references:
            return worst
        cand, ref = fact_distributions(
            ctx.candidates, ctx.references, view=view, distance_threshold=distance_threshold
        )
        if cand.counts.sum() == 0 or ref.counts.sum() == 0:
            return worst  # a side that mentions nothing has no distribution to compare
        # KL(references || candidates): the direction that punishes missing what people say
        value = fn(estimate(ref.counts, estimator=estimator), estimate(cand.counts, estimator=estimator))
        return float(min(value, worst)) if np.isfinite(value) else worst

    component.worst = worst
    return component


@register("divergence", higher_is_better=False)
def divergence(*, view: str = "key", divergence: str = "js", estimator: str | float = "jeffreys",
               distance_threshold: float = 0.5):
    """Any categorical view (key, cluster, label, predicate, kind) under any divergence (kl =
    KL(references || candidates), kl_reverse, js in bits, tv, hellinger)."""
    return _categorical(view, divergence, estimator, distance_threshold)


def _shortcut(name: str, view: str, div: str, what: str):
    def factory(*, estimator: str | float = "jeffreys", distance_threshold: float = 0.5):
        return _categorical(view, div, estimator, distance_threshold)

    factory.__doc__ = f"{what} between the reference and candidate distributions of {view}s."
    register(name, higher_is_better=False)(factory)


for _div, _what in (("js", "Jensen-Shannon divergence (bits)"), ("kl", "KL(references || candidates)"),
                    ("kl_reverse", "KL(candidates || references)"), ("tv", "Total variation"),
                    ("hellinger", "Hellinger distance")):
    _shortcut(f"{_div}_facts", "key", _div, _what)
for _view in ("cluster", "label", "predicate", "kind"):
    _shortcut(f"js_{_view}s", _view, "js", "Jensen-Shannon divergence (bits)")


@register("w1_depth", higher_is_better=False)
def w1_depth():
    """Wasserstein-1 between the depth (informative facts per answer) distributions, divided by
    the references' median depth (at least 1) so that it reads as a relative depth error."""

    def component(ctx: PromptContext) -> float:
        ref = ordinal_samples(ctx.references, view="depth")
        cand = ordinal_samples(ctx.candidates, view="depth")
        if ref.size == 0 or cand.size == 0:
            return 1.0
        return wasserstein_divergence(cand, ref) / max(1.0, float(np.median(ref)))

    return component


@register("w1_position", higher_is_better=False)
def w1_position():
    """Wasserstein-1 between where in the source (sentence index) the facts of each side come
    from, divided by the span of indices seen: 0 same coverage, 1 opposite ends of the source."""

    def component(ctx: PromptContext) -> float:
        ref = ordinal_samples(ctx.references, view="source_position")
        cand = ordinal_samples(ctx.candidates, view="source_position")
        if ref.size == 0 or cand.size == 0:
            return 1.0
        span = max(ref.max(), cand.max()) - min(ref.min(), cand.min())
        return min(1.0, wasserstein_divergence(cand, ref) / span) if span > 0 else 0.0

    component.needs_source = True  # source_index is only set when the extractor is given the source
    component.worst = 1.0
    return component
