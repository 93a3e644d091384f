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
- ``score`` is the share of the statement's content words found (each word weighted by its role,
  below, and by ``weights`` when given); the statement is present when
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

Not every word of a statement says as much about whether it is stated. A predicate's verb is the
word a paraphrase changes most often ("Bayern won 6-1" / "Bayern defeated Porto 6-1", "was left
out of" / "was overlooked for"), so its absence is weaker evidence that the statement is absent; a
number or date is the word a paraphrase keeps (approximately: the ``number`` rule's tolerances),
so its absence is stronger evidence. :func:`statement_roles` reads each word's role from the
statement's own facts (the predicate of a relation triple; the key of a quantity or date) and
``presence(..., roles=ROLE_WEIGHTS)`` (the default) multiplies the word's weight by
:data:`ROLE_WEIGHTS` (predicate 0.75, number 3; every other word 1; chosen with the threshold by
cross-validation over REALSumm's articles, nested so that the folds that chose them were not the
folds that measured them). ``roles=None`` turns it off.

The default thresholds (:data:`PRESENCE_THRESHOLD`, :data:`WEIGHTED_PRESENCE_THRESHOLD`) were
chosen on REALSumm by cross-validation over articles (the benchmark prints the folds); they are
properties of the rule, not of one corpus, but they were measured on one corpus only.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from fitness.support import FUNCTION_WORDS, Match, SupportIndex, fact_words, stem
from infoextract import Extraction, Fact

__all__ = ["Presence", "presence", "presence_scores", "statement_weights", "statement_roles", "PRESENCE_THRESHOLD",
           "WEIGHTED_PRESENCE_THRESHOLD", "IDF_FLOOR", "ROLE_WEIGHTS"]

# with the default ROLE_WEIGHTS (without them, the same CV picked 0.75 and 0.56-0.59):
PRESENCE_THRESHOLD = 0.68  # share of the statement's words (5-fold CV over REALSumm's articles: 0.68-0.70)
WEIGHTED_PRESENCE_THRESHOLD = 0.61  # idf-weighted share (the same CV: 0.59-0.62, median 0.61)
IDF_FLOOR = 0.1  # the weight of a word that every statement of the set has
# a word's weight by its role in the statement (statement_roles): chosen on REALSumm by grouped CV
# (README, "Agreement with people"); words of no listed role weigh 1
ROLE_WEIGHTS: Mapping[str, float] = MappingProxyType({"predicate": 0.75, "number": 3.0})


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


def statement_roles(statement: Extraction) -> dict[str, str]:
    """The role of each of a statement's word stems that has one, read from its facts.

    ``"number"``: a word in digits of a quantity or date key ("23000000", "2013-07");
    ``"predicate"``: a content word of a relation's predicate ("win" and "won" in "Bayern Munich
    won 6-1", ``bayern munich|win|6 1``) that is not also a number. Other words (names, nouns,
    adjectives, units) have no role and are absent.
    """
    roles: dict[str, str] = {}
    named = {w for f in statement.unique_facts if f.kind != "relation" for w in f.key.split()}
    for f in statement.unique_facts:
        parts = f.key.split("|")
        if f.kind == "relation" and len(parts) == 3:
            # the predicate's lemmas ("win"), and its surface words: the words of the fact's text
            # outside its arguments and the statement's other facts ("won" in "Munich won"), which
            # is how a statement's words keep a verb whose lemma is far from the word
            # (infoextract.sentences)
            args = set(parts[0].split()) | set(parts[2].split()) | named
            surface = [w for w in re.findall(r"[^\W\d]+", f.text.lower()) if w not in args]
            for w in parts[1].split() + surface:
                if w not in FUNCTION_WORDS:
                    roles.setdefault(stem(w), "predicate")
    for f in statement.unique_facts:
        if f.kind in ("quantity", "date"):
            for w in f.key.split():
                if any(c.isdigit() for c in w):  # "23000000", "2013-07"; not "gbp", "summer", "several"
                    roles[stem(w)] = "number"
    return roles


def _share(found: set[str], words: frozenset[str], weights: Mapping[str, float] | None,
           factor: Mapping[str, float]) -> float:
    if not words:
        return 0.0
    if weights is None and not factor:
        return len(found) / len(words)

    def weight(w: str) -> float:
        return (1.0 if weights is None else weights.get(w, 1.0)) * factor.get(w, 1.0)

    total = sum(weight(w) for w in words)
    return sum(weight(w) for w in found) / total if total > 0 else len(found) / len(words)


def _index(candidate: Extraction | SupportIndex) -> SupportIndex:
    if isinstance(candidate, SupportIndex):
        return candidate
    if isinstance(candidate, Extraction):
        return SupportIndex.from_extractions([candidate])
    raise TypeError(f"candidate must be an Extraction or a SupportIndex, got {type(candidate).__name__}")


def presence(statement: Extraction, candidate: Extraction | SupportIndex, *,
             threshold: float | None = None, numbers: bool = False,
             weights: Mapping[str, float] | None = None,
             roles: Mapping[str, float] | None = ROLE_WEIGHTS) -> Presence:
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
        roles: a weight factor per role of :func:`statement_roles` (``{"predicate": 0.75,
            "number": 3.0}``, :data:`ROLE_WEIGHTS`, by default); ``None``: every word weighs alike.
            The default thresholds were chosen with the default roles.

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
    if roles is not None:
        unknown = sorted(set(roles) - {"predicate", "number"})
        if unknown or any(not v >= 0 for v in roles.values()):
            raise ValueError(f"roles must map 'predicate' and/or 'number' to weights >= 0, got {dict(roles)!r}")
        factor = {w: roles[r] for w, r in statement_roles(statement).items() if r in roles}
    else:
        factor = {}
    score = _share(found, words, weights, factor)
    return Presence(bool(words) and score >= threshold and not contradicted, score, tuple(sorted(found)),
                    tuple(sorted(words - found)), tuple(matches), tuple(contradicted))


def presence_scores(statements: Sequence[Extraction], candidate: Extraction | SupportIndex, *,
                    weighted: bool = False, roles: Mapping[str, float] | None = ROLE_WEIGHTS) -> np.ndarray:
    """:attr:`Presence.score` of each statement in one candidate (the index is built once); with
    ``weighted=True``, the words weighted by :func:`statement_weights` of ``statements``."""
    index = _index(candidate)
    weights = statement_weights(statements) if weighted else None
    return np.array([presence(s, index, weights=weights, roles=roles).score for s in statements], dtype=float)
