"""Depth and precision of answers, and F1@K, the trade-off between them.

- *informative facts*: the unique facts of an answer minus those copied from the prompt (restating
  the question adds nothing) and minus vacuous ones (a relation about a bare "this" or "one", a lone
  generic noun such as "way");
- *depth*: how many informative facts an answer carries;
- *precision*: the share of them supported by the references (see :mod:`fitness.support`);
- *F1@K* (Wei et al., 2024, "Long-form factuality in large language models", §5): with S supported
  and N unsupported facts, ``P = S / (S + N)``, ``R_K = min(S / K, 1)`` and
  ``F1@K = 2 P R_K / (P + R_K)``, 0 when ``S = 0``. Recall is capped at K so that listing more
  than K supported facts does not pay, and precision punishes unsupported padding.
- *kind-balanced* precision and recall (this library's default, a deviation from Wei et al.):
  computed per fact kind and averaged with the weights of the kinds in the references, so an
  answer cannot win by saying only the kind of fact that is easiest to match (a bare list of
  entities, which match exactly far more often than relation triples do);
- an optional FActScore length penalty (Min et al., 2023, §3.2): a score is multiplied by
  ``exp(1 - gamma / |A|)`` when an answer has fewer than ``gamma`` facts, so very short answers
  cannot reach a high precision by saying almost nothing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from infoextract import Extraction

__all__ = [
    "informative",
    "vacuous",
    "depth_score",
    "precision_score",
    "f1_at_k_score",
    "length_penalty",
    "reference_k",
    "balanced_precision_recall",
]


# subjects that leave a triple unidentifiable once coreference could not resolve them ("this is
# important", "one could say a great deal"): such a fact says nothing a reader could check, and
# matching it lets filler "state" what people said
VACUOUS_SUBJECTS = frozenset({"this", "that", "these", "those", "it", "they", "one", "he", "she", "we", "you", "i",
                              "there", "which", "who", "what", "something", "someone", "everything", "all"})


# nouns that name nothing on their own: a concept that is only one of them ("way" from "in many
# ways", "deal" from "a great deal") is found in almost any text
GENERIC_NOUNS = frozenset({"way", "thing", "lot", "kind", "sort", "part", "time", "matter", "aspect", "deal",
                           "fact", "point", "case", "number", "bit", "something", "anything", "everything"})


def vacuous(fact) -> bool:
    """A fact that says nothing a reader could check: a relation whose subject is a bare pronoun or
    demonstrative (:data:`VACUOUS_SUBJECTS`), or a concept that is one generic noun (:data:`GENERIC_NOUNS`)."""
    if fact.kind == "relation":
        return fact.key.split("|", 1)[0] in VACUOUS_SUBJECTS
    return fact.kind == "concept" and fact.key in GENERIC_NOUNS


def informative(extraction: Extraction, prompt_keys: Iterable[tuple[str, str]] = ()) -> Extraction:
    """The answer's unique facts minus the ``(kind, key)`` pairs that also occur in the prompt and
    minus :func:`vacuous` facts (which filler states as easily as a genuine answer)."""
    banned = frozenset(prompt_keys)
    return Extraction(tuple(f for f in extraction.unique_facts if (f.kind, f.key) not in banned and not vacuous(f)),
                      extraction.sentences)


def depth_score(extraction: Extraction) -> int:
    """Number of unique facts (apply :func:`informative` first to drop prompt-copied ones)."""
    return extraction.depth


def precision_score(n_supported: int, n_facts: int) -> float:
    """Share of facts supported; 0 for an answer without facts (nothing said, nothing right)."""
    _check_counts(n_supported, n_facts)
    return n_supported / n_facts if n_facts else 0.0


def f1_at_k_score(n_supported: int, n_facts: int, *, k: float) -> float:
    """F1@K of an answer with ``n_supported`` of ``n_facts`` facts supported (Wei et al., 2024)."""
    _check_counts(n_supported, n_facts)
    if not k > 0:
        raise ValueError(f"k must be > 0 (the number of supported facts that earns full recall), got {k!r}")
    if n_supported == 0:
        return 0.0
    p = n_supported / n_facts
    r = min(n_supported / k, 1.0)
    return 2 * p * r / (p + r)


def length_penalty(n_facts: int, *, gamma: float = 10.0) -> float:
    """FActScore's multiplier ``exp(1 - gamma / n)`` for ``n < gamma`` facts, else 1; 0 for no facts."""
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0 (the fact count below which the penalty applies), got {gamma!r}")
    if n_facts <= 0:
        return 0.0
    return 1.0 if n_facts >= gamma else math.exp(1.0 - gamma / n_facts)


def reference_k(reference_depths: Sequence[float], *, k: float | str = "median") -> float:
    """K for F1@K: a fixed number, or ``"median"``/``"mean"``/``"max"`` of the references' depths
    (at least 1, so a prompt whose references carry no facts still has a defined K)."""
    if isinstance(k, str):
        funcs = {"median": np.median, "mean": np.mean, "max": np.max}
        if k not in funcs:
            raise ValueError(f"k must be a positive number or one of {sorted(funcs)}, got {k!r}")
        if len(reference_depths) == 0:
            return 1.0
        return max(1.0, float(funcs[k](np.asarray(reference_depths, dtype=float))))
    if not float(k) > 0:
        raise ValueError(f"k must be > 0, got {k!r}")
    return float(k)


def _check_counts(n_supported: int, n_facts: int) -> None:
    if not 0 <= n_supported <= n_facts:
        raise ValueError(
            f"need 0 <= n_supported <= n_facts, got n_supported={n_supported}, n_facts={n_facts}"
        )


def balanced_precision_recall(counts: Mapping[str, tuple[int, int]], weights: Mapping[str, float],
                              ks: Mapping[str, float]) -> tuple[float, float]:
    """Kind-balanced precision and capped recall of one answer.

    Args:
        counts: kind -> ``(n_supported, n_facts)`` of the answer.
        weights: kind -> weight (the kinds' shares among the references' facts; sums to 1).
        ks: kind -> K for that kind (supported facts of that kind that earn full recall).

    Returns:
        ``(sum_k w_k S_k / N_k, sum_k w_k min(S_k / K_k, 1))``; a kind the answer lacks adds 0.
    """
    p = r = 0.0
    for kind, w in weights.items():
        s, n = counts.get(kind, (0, 0))
        _check_counts(s, n)
        if n:
            p += w * s / n
            r += w * min(s / ks[kind], 1.0)
    return p, r
