"""Recall: how much of what the references state does an answer state.

For one answer and R references, each reference fact is looked for in the answer with the presence
rules of :class:`fitness.support.SupportIndex` (built from the answer's facts *and* its sentence
words, so a reference triple whose words all occur in one sentence of the answer counts, as an SCU
would for REALSumm's annotators). Recall is the share of the references' distinct facts present.

``pyramid=True`` is the Pyramid weighting (Nenkova & Passonneau, 2004; Shapira et al., 2019): the
mean over the references of the share of each reference's facts present, so a fact that k
references state counts k times, without merging the references' facts into units first. It is
not the default because it did not help: on SQuALITY's ratings it agreed slightly less than the
pooled recall (README, "Agreement with people").

Kind-balanced (the default, as for ``f1_at_k``): recall is computed per fact kind and averaged with
the kinds' shares among the references' facts, so a bare list of entities recovers only the
entity share (about 7 % of SQuALITY's facts), not their whole recall.
"""

from __future__ import annotations

import numpy as np

from fitness.components import PromptContext, register
from fitness.support import SupportIndex

__all__ = ["recall_score", "answer_recall"]


def _groups(ctx: PromptContext, pyramid: bool) -> list[tuple]:
    """The fact lists recall averages over: one per reference (pyramid), or every distinct
    ``(kind, key)`` of the references once (no pyramid: what several people say counts once)."""
    if pyramid:
        return [ref.unique_facts for ref in ctx.references if ref.unique_facts]
    distinct = {(f.kind, f.key): f for ref in ctx.references for f in ref.unique_facts}
    return [tuple(distinct.values())] if distinct else []


def answer_recall(ctx: PromptContext, index: SupportIndex, *, balance: str | None = "kind",
                  pyramid: bool = False, words: float = 1.0) -> float:
    """Recall of the references' facts in one answer (``index`` built from the answer); a fact
    found only by the ``words`` rule counts ``words`` (:meth:`SupportIndex.support_scores`)."""
    per_group = []  # kind -> share of that group's facts of the kind present
    for facts in _groups(ctx, pyramid):
        hit = index.support_scores(facts, words=words)
        if balance != "kind":
            per_group.append({"all": float(hit.mean())})
            continue
        kinds = np.array([f.kind for f in facts])
        per_group.append({k: float(hit[kinds == k].mean()) for k in set(kinds.tolist())})
    if not per_group:
        return 0.0
    if balance != "kind":
        return float(np.mean([g["all"] for g in per_group]))
    # a kind a reference lacks leaves that reference out of the kind's mean
    total = 0.0
    for kind, w in ctx.kind_weights().items():
        vals = [g[kind] for g in per_group if kind in g]
        total += w * (float(np.mean(vals)) if vals else 0.0)
    return total


@register("recall", higher_is_better=True)
def recall_score(*, balance: str | None = "kind", words: bool | float = True, pyramid: bool = False):
    """Mean recall of the answers: the share of the references' distinct facts present in the
    answer (presence rules, plus the answer's sentence words when ``words``: a number in [0, 1]
    is the credit of a fact found only through them, ``True`` = 1, ``False`` = 0); with
    ``pyramid=True``, per reference and averaged over the references (a fact k references state
    counts k times); with ``balance="kind"`` (default), per fact kind, weighted by the kinds'
    shares in the references. Higher is better; 0 for no answer."""
    if balance not in ("kind", None):
        raise ValueError(f"balance must be 'kind' or None, got {balance!r}")
    if isinstance(words, str) or not 0 <= float(words) <= 1:
        raise ValueError(f"words must be a bool or a number in [0, 1] (the credit of a fact found only "
                         f"through the answer's sentence words), got {words!r}")
    credit = float(words)

    def component(ctx: PromptContext) -> float:
        if not ctx.candidates or not ctx.references:
            return 0.0
        vals = []
        for e in ctx.candidates:
            index = SupportIndex.from_extractions([e]) if credit else SupportIndex.build(e.unique_facts)
            vals.append(answer_recall(ctx, index, balance=balance, pyramid=pyramid, words=credit))
        return float(np.mean(vals))

    return component
