"""Recall: how much of what the references state does an answer state, pyramid-weighted.

For one answer and R references, each reference fact is looked for in the answer with the presence
rules of :class:`fitness.support.SupportIndex` (built from the answer's facts *and* its sentence
words, so a reference triple whose words all occur in one sentence of the answer counts, as an SCU
would for REALSumm's annotators). Recall is the mean over the references of the share of each
reference's facts present. Averaging per reference is the Pyramid weighting (Nenkova &
Passonneau, 2004; Shapira et al., 2019): a fact that k references state is counted k times, so
what more people say weighs more, without merging the references' facts into units first.

Kind-balanced (the default, as for ``f1_at_k``): recall is computed per fact kind and averaged with
the kinds' shares among the references' facts, so a bare list of entities recovers only the
entity share (about 7 % of SQuALITY's facts), not their whole recall.
"""

from __future__ import annotations

import numpy as np

from fitness.components import PromptContext, register
from fitness.support import SupportIndex

__all__ = ["recall_score", "answer_recall"]


def answer_recall(ctx: PromptContext, index: SupportIndex, *, balance: str | None = "kind") -> float:
    """Pyramid recall of the references' facts in one answer (``index`` built from the answer)."""
    weights = ctx.kind_weights() if balance == "kind" else None
    per_ref = []
    for ref in ctx.references:
        facts = ref.unique_facts
        if not facts:
            continue
        hit = index.supports(facts)
        if weights is None:
            per_ref.append({"all": (float(hit.mean()), 1.0)})
            continue
        kinds = np.array([f.kind for f in facts])
        per_ref.append({k: (float(hit[kinds == k].mean()), 1.0) for k in set(kinds.tolist())})
    if not per_ref:
        return 0.0
    if weights is None:
        return float(np.mean([r["all"][0] for r in per_ref]))
    # a kind a reference lacks leaves that reference out of the kind's mean
    total = 0.0
    for kind, w in weights.items():
        vals = [r[kind][0] for r in per_ref if kind in r]
        total += w * (float(np.mean(vals)) if vals else 0.0)
    return total


@register("recall", higher_is_better=True)
def recall_score(*, balance: str | None = "kind", words: bool = True):
    """Mean pyramid recall of the answers: per reference, the share of its facts present in the
    answer (presence rules, plus the answer's sentence words when ``words``), averaged over the
    references and, with ``balance="kind"`` (default), over fact kinds weighted by their shares in
    the references. Higher is better; 0 for no answer."""
    if balance not in ("kind", None):
        raise ValueError(f"balance must be 'kind' or None, got {balance!r}")

    def component(ctx: PromptContext) -> float:
        if not ctx.candidates or not ctx.references:
            return 0.0
        vals = []
        for e in ctx.candidates:
            index = SupportIndex.from_extractions([e]) if words else SupportIndex.build(e.unique_facts)
            vals.append(answer_recall(ctx, index, balance=balance))
        return float(np.mean(vals))

    return component
