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

The default threshold (:data:`PRESENCE_THRESHOLD`) was chosen on REALSumm by cross-validation
(the benchmark prints the folds); it is a property of the rule, not of one corpus, but it was
measured on one corpus only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fitness.support import Match, SupportIndex, fact_words, stem
from infoextract import Extraction, Fact

__all__ = ["Presence", "presence", "presence_scores", "PRESENCE_THRESHOLD"]

PRESENCE_THRESHOLD = 0.75


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
    score: float
    found: tuple[str, ...]
    missing: tuple[str, ...]
    matches: tuple[Match, ...]
    contradicted: tuple[Fact, ...] = ()


def _statement_words(statement: Extraction) -> frozenset[str]:
    if statement.sentences:
        return frozenset(stem(w) for s in statement.sentences for w in s)
    return frozenset().union(*(fact_words(f) for f in statement.unique_facts)) if statement.facts else frozenset()


def _index(candidate: Extraction | SupportIndex) -> SupportIndex:
    if isinstance(candidate, SupportIndex):
        return candidate
    if isinstance(candidate, Extraction):
        return SupportIndex.from_extractions([candidate])
    raise TypeError(f"candidate must be an Extraction or a SupportIndex, got {type(candidate).__name__}")


def presence(statement: Extraction, candidate: Extraction | SupportIndex, *,
             threshold: float = PRESENCE_THRESHOLD, numbers: bool = False) -> Presence:
    """Is the information of ``statement`` present in ``candidate``?

    Args:
        statement: the extraction of a short statement (an SCU, a reference sentence).
        candidate: the extraction of the text to look in, or a :class:`SupportIndex` built from
            it with :meth:`SupportIndex.from_extractions` (build it once to ask many statements).
        threshold: the share of the statement's content words that must be found, in (0, 1].
        numbers: a contradicted quantity or date makes the statement absent (see above). Off by
            default: REALSumm's annotators agreed with it slightly less than without it.

    Returns:
        A :class:`Presence`; a statement without content words is never present.
    """
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
    score = len(found) / len(words) if words else 0.0
    return Presence(bool(words) and score >= threshold and not contradicted, score, tuple(sorted(found)),
                    tuple(sorted(words - found)), tuple(matches), tuple(contradicted))


def presence_scores(statements: Sequence[Extraction], candidate: Extraction | SupportIndex) -> np.ndarray:
    """:attr:`Presence.score` of each statement in one candidate (the index is built once)."""
    index = _index(candidate)
    return np.array([presence(s, index).score for s in statements], dtype=float)
