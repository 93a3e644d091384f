"""The presence decision: is the information of a short statement present in a candidate text?

This is the question behind recall (which reference facts does an answer state?) and the one
REALSumm's annotators answered for every (SCU, summary) pair (Bhandari et al., 2020), so its
agreement with people can be measured (``benchmarks/realsumm_agreement.py``).

A statement is present when enough of its content is found in the candidate:

- its content words (lemmas, pronouns resolved; :attr:`infoextract.Extraction.sentences`) are
  looked up among the candidate's, compared on their first five letters;
- its facts are matched by the rules of :class:`fitness.support.SupportIndex` (same key, numbers
  within tolerance, a name's short form, a triple with matching arguments and a close predicate,
  ...): the words of a matched fact count as found even when the candidate words them
  differently ("Carr" for "Kevin Carr", "$4,000" for "4000 dollars");
- ``score`` is the share of the statement's content words found; the statement is present when
  ``score >= threshold``; with ``numbers=True``, also none of its numbers or dates may be
  contradicted (a quantity or date of the statement that matches no number of the candidate,
  while the candidate has numbers of that kind: "18,000 miles" against "16,000 miles").

When several statements of one text are asked together (the SCUs of one reference, a
reference's sentences), the words they share say least about *which* statement is present: the
main entity of an article is in every SCU and in every summary of it. :func:`statement_weights`
gives each word stem the inverse document frequency over that set of statements,
``ln((n + 1) / (df + 1)) + IDF_FLOOR``, and ``presence(..., weights=...)`` scores the weighted share
of the statement's words found (:data:`WEIGHTED_PRESENCE_THRESHOLD`). A word that is in every
statement keeps the small weight ``IDF_FLOOR``, so a statement made only of shared words is still
decided on them.

The default thresholds (:data:`PRESENCE_THRESHOLD`, :data:`WEIGHTED_PRESENCE_THRESHOLD`) were
chosen on REALSumm by cross-validation over articles (the benchmark prints the folds); they are
properties of the rule, not of one corpus, but they were measured on one corpus only.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from fitness.support import Match, SupportIndex, fact_words, stem
from infoextract import Extraction, Fact

__all__ = ["Presence", "presence", "presence_scores", "statement_weights", "PRESENCE_THRESHOLD",
           "WEIGHTED_PRESENCE_THRESHOLD", "IDF_FLOOR"]

PRESENCE_THRESHOLD = 0.75  # share of the statement's words (5-fold CV over REALSumm's articles: 0.75 in every fold)
WEIGHTED_PRESENCE_THRESHOLD = 0.6  # idf-weighted share (CV: 0.58-0.59 in the folds; 0.6 is within 0.001 of it)
IDF_FLOOR = 0.1  # the weight of a word that every statement of the set has


@dataclass(frozen=True)
class Presence:
    """The decision and its evidence.

    Attributes:
        present: ``score >= threshold``.
        score: share of the statement's content words found in the candidate, in [0, 1].
        found: the statement's word stems found (directly or through a matched fact).
        missing: the statement's word stems not found.
        matches: how each of the statement's facts that was found is stated in the candidate.
        contradicted: the statement's quantities and dates that the candidate states otherwise.
    """

    present: bool
    score: float  # weighted share when presence() was given weights
    found: tuple[str, ...]
    missing: tuple[str, ...]
    matches: tuple[Match, ...]
    contradicted: tuple[Fact, ...] = ()


def _statement_words(statement: Extraction) -> frozenset[str]:
    if statement.sentences:
        return frozenset(stem(w) for s in statement.sentences for w in s)
    return frozenset().union(*(fact_words(f) for f in statement.unique_facts)) if statement.facts else frozenset()


def statement_weights(statements: Sequence[Extraction], *, floor: float = IDF_FLOOR) -> dict[str, float]:
    """Inverse document frequency of each word stem over a set of statements of one text.

    ``w(stem) = ln((n + 1) / (df + 1)) + floor`` with ``n`` statements, ``df`` of them holding the
    stem: a word every statement has (the article's main entity) weighs ``floor``, a word of one
    statement ``ln((n + 1) / 2) + floor``. Pass the result to :func:`presence` (``weights=``) for
    each statement of the set. Stems that no statement has are absent (weight 1 in :func:`presence`).
    """
    if not floor >= 0:
        raise ValueError(f"floor must be >= 0 (the weight of a word every statement has), got {floor!r}")
    sets = [_statement_words(s) for s in statements]
    df = Counter(w for words in sets for w in words)
    n = len(sets)
    return {w: math.log((n + 1) / (k + 1)) + floor for w, k in df.items()}


def _share(found: set[str], words: frozenset[str], weights: Mapping[str, float] | None) -> float:
    if not words:
        return 0.0
    if weights is None:
        return len(found) / len(words)
    total = sum(weights.get(w, 1.0) for w in words)
    return sum(weights.get(w, 1.0) for w in found) / total if total > 0 else len(found) / len(words)


def _index(candidate: Extraction | SupportIndex) -> SupportIndex:
    if isinstance(candidate, SupportIndex):
        return candidate
    if isinstance(candidate, Extraction):
        return SupportIndex.from_extractions([candidate])
    raise TypeError(f"candidate must be an Extraction or a SupportIndex, got {type(candidate).__name__}")


def presence(statement: Extraction, candidate: Extraction | SupportIndex, *,
             threshold: float | None = None, numbers: bool = False,
             weights: Mapping[str, float] | None = None) -> Presence:
    """Is the information of ``statement`` present in ``candidate``?

    Args:
        statement: the extraction of a short statement (an SCU, a reference sentence).
        candidate: the extraction of the text to look in, or a :class:`SupportIndex` built from
            it with :meth:`SupportIndex.from_extractions` (build it once to ask many statements).
        threshold: the share of the statement's content words that must be found, in (0, 1];
            ``None``: :data:`PRESENCE_THRESHOLD`, or :data:`WEIGHTED_PRESENCE_THRESHOLD` with weights.
        weights: a weight per word stem (:func:`statement_weights` of the set of statements the
            statement belongs to); the score is then the weighted share found. A stem without a
            weight weighs 1.
        numbers: a contradicted quantity or date makes the statement absent (see above). Off by
            default: REALSumm's annotators agreed with it slightly less than without it.

    Returns:
        A :class:`Presence`; a statement without content words is never present.
    """
    if threshold is None:
        threshold = PRESENCE_THRESHOLD if weights is None else WEIGHTED_PRESENCE_THRESHOLD
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1] (a share of the statement's words), got {threshold!r}")
    index = _index(candidate)
    words = _statement_words(statement)
    found = set(words & index.words)
    matches, contradicted = [], []
    for f in statement.unique_facts:
        m = index.match(f)
        if m is not None:
            matches.append(m)
            if m.how != "words":
                found |= fact_words(f) & words
        elif numbers and f.kind in ("quantity", "date") and index.contradicts(f):
            contradicted.append(f)
    score = _share(found, words, weights)
    return Presence(bool(words) and score >= threshold and not contradicted, score, tuple(sorted(found)),
                    tuple(sorted(words - found)), tuple(matches), tuple(contradicted))


def presence_scores(statements: Sequence[Extraction], candidate: Extraction | SupportIndex, *,
                    weighted: bool = False) -> np.ndarray:
    """:attr:`Presence.score` of each statement in one candidate (the index is built once); with
    ``weighted=True``, the words weighted by :func:`statement_weights` of ``statements``."""
    index = _index(candidate)
    weights = statement_weights(statements) if weighted else None
    return np.array([presence(s, index, weights=weights).score for s in statements], dtype=float)
