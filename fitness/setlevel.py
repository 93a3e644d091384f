"""Set-level fitness: how often a *set* of answers mentions each fact, against how often people do.

The question esfit exists for: across K sampled answers to one prompt, does the model mention each
fact about as often as people do, and invent nothing? No single answer can be scored for that; the
whole set is. For one prompt:

- the references' facts are merged into *units*: facts of different references that state the same
  thing (the presence decision of :class:`fitness.SupportIndex`: exact key, numeric tolerance,
  fuzzy match) are one unit; ``h(u)`` is the share of references that state unit u;
- ``m(u)`` is the share of the K candidate answers in which u is present (the same decision, in the
  recall direction: is a fact of u supported by the answer's facts?);
- the answers' own facts that no reference supports are units too, with h(u) = 0: what the set
  says that people never do (invented or off-topic facts) takes mass from what they do say;
- :func:`mention_js` is the Jensen-Shannon divergence (nats, at most ln 2 ≈ 0.693) between h and m normalised to
  distributions over all these units (the issue's "shares of answers mentioning each fact");
  :func:`mention_gap` is the mean absolute difference |h(u) − m(u)| of the raw rates over the
  reference units, which, unlike the normalised JS, also sees an answer set that mentions everything
  half as often as people do;
- :func:`set_precision` is the share of all the answers' informative facts that the references
  support (the guard against invented text);
- depth is the mean number of informative facts per answer; diversity is the number of distinct
  facts across the answers over the number across the references.

Registered: ``js_mentions`` (lower is better; units of the fact kinds that carry information by
default, entities, quantities, dates and relations, since generic noun-chunk concepts let filler
"mention" what people say). Like precision alone, ``mention_gap`` and ``set_precision`` are not
registered on their own: single answers that say little (one repeated sentence, a bare list of
names) beat a genuine answer on them (``tests/fitness/test_gaming.py``), so they are evaluation
statistics and Python functions; a training fitness pairs ``js_mentions`` with a gaming-proof
precision side such as ``f1_at_k`` (``"js_mentions:-1 + f1_at_k:0.5"``). A set without any
informative fact gets every component's worst value (``fitness.compose``). Estimates from K answers
are noisy; compare divergences only at equal K and equal numbers of references (see
``benchmarks/divergence_bias.py`` for the plug-in bias).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from fitness.bootstrap import bootstrap_mean_ci
from fitness.components import PromptContext, register
from fitness.depth import informative
from fitness.divergences import js_divergence
from fitness.support import SupportIndex
from infoextract import Extraction, Fact

__all__ = ["INFORMATIVE_KINDS", "SET_METRICS", "SetReport", "Units", "mention_gap", "mention_js", "mention_rates", "mention_table", "paired_delta_ci",
           "reference_units",
           "set_metrics", "set_precision", "set_report"]


@dataclass(frozen=True)
class Units:
    """The references' facts merged into units: ``facts[u]`` states unit u; ``share[u]`` is the
    fraction of the ``n_references`` references that state it."""

    facts: tuple[tuple[Fact, ...], ...]
    share: np.ndarray
    n_references: int

    def __len__(self) -> int:
        return len(self.facts)


INFORMATIVE_KINDS = ("entity", "quantity", "date", "relation")


def _merge(texts: Sequence[Sequence[Fact]]) -> tuple[list[list[Fact]], list[set[int]]]:
    """Facts of several texts merged into units (a fact joins the first unit one of whose facts
    supports it, else starts one), with the set of texts stating each unit."""
    units: list[list[Fact]] = []
    indexes: list[SupportIndex] = []
    holders: list[set[int]] = []
    for t, facts in enumerate(texts):
        for fact in facts:
            home = next((u for u, index in enumerate(indexes) if index.supports([fact])[0]), None)
            if home is None:
                units.append([fact])
                indexes.append(SupportIndex.build([fact]))
                holders.append({t})
            else:
                units[home].append(fact)
                holders[home].add(t)
    return units, holders


def _of_kinds(extraction: Extraction, kinds: Sequence[str] | None) -> list[Fact]:
    return [f for f in extraction.unique_facts if kinds is None or f.kind in kinds]


def reference_units(references: Sequence[Extraction], *, kinds: Sequence[str] | None = None) -> Units:
    """Merge the references' unique facts into units, each with the share of references stating it.

    A fact joins the first unit one of whose facts supports it (the presence decision of
    :class:`fitness.SupportIndex`); otherwise it starts a unit. A reference counts once per unit.
    ``kinds`` keeps only facts of those kinds (all by default).
    """
    units, holders = _merge([_of_kinds(e, kinds) for e in references])
    n = len(references)
    share = np.array([len(h) / n for h in holders], dtype=float) if n else np.zeros(0)
    return Units(tuple(tuple(u) for u in units), share, n)


def mention_rates(units: Units, candidates: Sequence[Extraction]) -> np.ndarray:
    """(U,) share of the candidate answers in which each unit is present."""
    if not len(units) or not candidates:
        return np.zeros(len(units))
    flat = [f for u in units.facts for f in u]
    owner = np.repeat(np.arange(len(units)), [len(u) for u in units.facts])
    present = np.zeros((len(candidates), len(units)), dtype=bool)
    for i, cand in enumerate(candidates):
        # the recall direction, with the answer's sentence words: is fact f stated in the answer?
        hit = SupportIndex.build(cand.unique_facts).supports(flat)
        np.logical_or.at(present[i], owner[hit], True)
    return present.mean(axis=0)


def unsupported_rates(references: Sequence[Extraction], candidates: Sequence[Extraction], *,
                      kinds: Sequence[str] | None = None) -> np.ndarray:
    """Shares of the candidate answers stating each fact no reference supports (the answers' own
    facts of ``kinds``, merged into units across the answers): what the set says that people never do."""
    if not candidates:
        return np.zeros(0)
    index = SupportIndex.from_extractions(references)
    extra = []
    for cand in candidates:
        facts = _of_kinds(cand, kinds)
        supported = index.supports(facts) if facts else np.zeros(0, dtype=bool)
        extra.append([f for f, ok in zip(facts, supported) if not ok])
    _, holders = _merge(extra)
    return np.array([len(h) / len(candidates) for h in holders], dtype=float)


def _units(ctx: PromptContext, kinds: Sequence[str] | None = None) -> Units:
    key = tuple(kinds) if kinds is not None else None
    return ctx._memo(("units", key), lambda: reference_units(ctx.references, kinds=kinds))


def _rates(ctx: PromptContext, kinds: Sequence[str] | None = None) -> np.ndarray:
    key = tuple(kinds) if kinds is not None else None
    return ctx._memo(("mention_rates", key), lambda: mention_rates(_units(ctx, kinds), ctx.candidates))


def _distribution(ctx: PromptContext, kinds: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(people, answers) mention rates over the reference units and then the answers' unsupported
    units (people's rate 0): the two sides of the set-level JS."""
    key = tuple(kinds) if kinds is not None else None

    def make():
        extra = unsupported_rates(ctx.references, ctx.candidates, kinds=kinds)
        return (np.concatenate([_units(ctx, kinds).share, np.zeros(extra.size)]),
                np.concatenate([_rates(ctx, kinds), extra]))

    return ctx._memo(("distribution", key), make)


def _kind_js(ctx: PromptContext, kinds: Sequence[str] | None) -> float:
    """JS per fact kind, averaged with the kinds' shares of the reference units (kind-balanced, as
    ``f1_at_k``): an answer set that says only the easiest kind of fact (a list of names) gets the
    worst value on every other kind."""
    units = _units(ctx, kinds)
    present = sorted({u[0].kind for u in units.facts})
    if not present:
        return 1.0
    weights = np.array([sum(u[0].kind == k for u in units.facts) for k in present], dtype=float)
    values = [mention_js(*_distribution(ctx, (k,))) for k in present]
    return float(np.dot(weights / weights.sum(), values))


def mention_js(human: np.ndarray, model: np.ndarray) -> float:
    """JS divergence (nats, at most ln 2) between mention rates normalised over the units; 1 (the
    worst, above any JS) when either side mentions no unit."""
    if human.sum() <= 0 or model.sum() <= 0:
        return 1.0
    return float(js_divergence(human / human.sum(), model / model.sum()))


def mention_gap(human: np.ndarray, model: np.ndarray) -> float:
    """Mean absolute difference between the mention rates, in [0, 1]; 1 when there is no unit."""
    return float(np.abs(human - model).mean()) if human.size else 1.0


def set_precision(ctx: PromptContext) -> float:
    """Share of all the answers' informative facts that the references support (pooled over the
    answers of the set); 0 when they have none."""
    masks = ctx.supported_mask("references")
    total = sum(m.size for m in masks)
    return float(sum(int(m.sum()) for m in masks) / total) if total else 0.0


def _kinds(kinds: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """``"entity,date"`` or a sequence of fact kinds; ``"all"``/None for every kind."""
    if kinds is None or kinds == "all":
        return None
    out = tuple(k.strip() for k in (kinds.split(",") if isinstance(kinds, str) else kinds) if k.strip())
    from infoextract import FACT_KINDS

    bad = [k for k in out if k not in FACT_KINDS]
    if bad or not out:
        raise ValueError(f"kinds={kinds!r} must name fact kinds among {', '.join(FACT_KINDS)} (or 'all')")
    return out


@register("js_mentions", higher_is_better=False, worst=1.0)
def js_mentions(*, kinds: str = ",".join(INFORMATIVE_KINDS), balance: str | None = "kind"):
    """Set-level JS (nats) between the people's and the answers' shares of mentioning each fact:
    the references' facts of ``kinds`` merged into units by the presence decision, and the facts
    the answers state that no reference supports (people's share 0); 1 is the worst.
    ``balance="kind"`` (default) averages the JS of each fact kind, weighted by the kinds' shares of
    the reference units, so that a list of every name in the source does not pay; None pools them."""
    chosen = _kinds(kinds)
    if balance not in ("kind", None):
        raise ValueError(f"balance must be 'kind' or None, got {balance!r}")

    def component(ctx: PromptContext) -> float:
        if not ctx.candidates or not ctx.references:
            return 1.0
        return _kind_js(ctx, chosen) if balance == "kind" else mention_js(*_distribution(ctx, chosen))

    return component


def mention_table(candidates: Sequence[Extraction], references: Sequence[Extraction], *,
                  prompt: Extraction | None = None,
                  kinds: Sequence[str] | None = INFORMATIVE_KINDS) -> list[tuple[str, float, float]]:
    """``(unit, people's share, answers' share)`` for every reference unit of one prompt, the unit
    named by the surface text of its first fact; most mentioned by people first."""
    banned = prompt.keys if prompt is not None else frozenset()
    refs = [informative(e, banned) for e in references]
    units = reference_units(refs, kinds=kinds)
    rates = mention_rates(units, [informative(e, banned) for e in candidates])
    rows = [(u[0].text or u[0].key, float(h), float(m)) for u, h, m in zip(units.facts, units.share, rates)]
    return sorted(rows, key=lambda r: (-r[1], -r[2], r[0]))


# --- evaluation statistics ----------------------------------------------------------------------

SET_METRICS = ("js", "gap", "precision", "depth", "diversity")


def set_metrics(candidates: Sequence[Extraction], references: Sequence[Extraction], *,
                prompt: Extraction | None = None, kinds: Sequence[str] | None = INFORMATIVE_KINDS) -> dict[str, float]:
    """The set-level statistics of one prompt's K answers against its references.

    ``js`` and ``gap``: :func:`mention_js` and :func:`mention_gap` over the units of ``kinds``
    (default: :data:`INFORMATIVE_KINDS`, as ``js_mentions``); ``precision``: the share of the answers'
    informative facts the references support; ``depth``: mean informative facts per answer;
    ``diversity``: distinct informative facts across the answers / distinct across the references.
    Facts that repeat the prompt (``prompt``'s facts) do not count on either side.
    """
    banned = prompt.keys if prompt is not None else frozenset()
    cands = [informative(e, banned) for e in candidates]
    refs = [informative(e, banned) for e in references]
    ctx = PromptContext(candidates=cands, references=refs)
    units = _units(ctx, kinds)
    rates = _rates(ctx, kinds)
    ref_distinct = len(set().union(*(e.keys for e in refs))) if refs else 0
    cand_distinct = len(set().union(*(e.keys for e in cands))) if cands else 0
    silent = all(e.depth == 0 for e in cands)
    return {
        "js": 1.0 if silent else _kind_js(ctx, kinds),
        "gap": 1.0 if silent else mention_gap(units.share, rates),
        "precision": 0.0 if silent else set_precision(ctx),
        "depth": float(np.mean([e.depth for e in cands])) if cands else 0.0,
        "diversity": cand_distinct / ref_distinct if ref_distinct else 0.0,
    }


@dataclass
class SetReport:
    """Per-prompt set statistics, their means over prompts and 95 % bootstrap intervals over prompts."""

    per_prompt: dict[str, dict[str, float]]
    mean: dict[str, float] = field(default_factory=dict)
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"mean": self.mean, "ci": {k: list(v) for k, v in self.ci.items()}, "per_prompt": self.per_prompt}


def set_report(candidates: Mapping[str, Sequence[Extraction]], references: Mapping[str, Sequence[Extraction]], *,
               prompts: Mapping[str, Extraction] | None = None, n_boot: int = 1000, seed: int = 0) -> SetReport:
    """:func:`set_metrics` for every prompt of ``candidates``, with means and bootstrap CIs over prompts."""
    missing = [p for p in candidates if p not in references]
    if missing:
        raise KeyError(f"no references for prompt id(s) {missing[:5]}; every candidate prompt needs references")
    if not candidates:
        raise ValueError("candidates is empty: give at least one prompt id with its answers")
    prompts = prompts or {}
    per = {pid: set_metrics(c, references[pid], prompt=prompts.get(pid)) for pid, c in candidates.items()}
    report = SetReport(per)
    for m in SET_METRICS:
        values = [row[m] for row in per.values()]
        report.mean[m] = float(np.mean(values))
        report.ci[m] = bootstrap_mean_ci(values, n_boot=n_boot, seed=seed)
    return report


def paired_delta_ci(before: SetReport, after: SetReport, metric: str, *, n_boot: int = 1000,
                    seed: int = 0) -> tuple[float, tuple[float, float]]:
    """Mean over prompts of after − before for ``metric``, and its bootstrap CI over prompts
    (paired: the same prompts on both sides)."""
    common = [p for p in before.per_prompt if p in after.per_prompt]
    if not common:
        raise ValueError("before and after share no prompt: compare evaluations of the same prompts")
    deltas = [after.per_prompt[p][metric] - before.per_prompt[p][metric] for p in common]
    return float(np.mean(deltas)), bootstrap_mean_ci(deltas, n_boot=n_boot, seed=seed)
