"""Is a fact of one text stated in another? The matching rules behind precision, recall and presence.

:class:`SupportIndex` indexes the facts (and, when built from extractions, the sentence words) of
one side; :meth:`SupportIndex.supports` asks, for each fact of the other side, whether it is
stated there. Precision asks it of an answer's facts against the references
(``SupportIndex.build(reference_facts).supports(answer_facts)``); recall and presence ask it the
other way round (``SupportIndex.from_extractions([answer]).supports(reference_facts)``).

The rules follow what REALSumm's annotators were told counts as present (Bhandari et al., 2020;
Shapira et al., 2019): paraphrase, a shorter or longer name for the same entity, approximate
numbers and dates. Tried in order, the first that holds wins (:data:`MATCH_RULES`; all but
``name`` by default, :data:`DEFAULT_RULES`):

1. ``exact``: the same ``(kind, key)``; names match across the entity and concept kinds (a
   lower-cased text often gives "kevin carr" as a noun chunk instead of a PERSON);
2. ``number``: quantities within a relative tolerance (5 %) with the same unit or one side
   without a unit; dates with the same year (1989 is 0.1 % from 1987 and still the wrong year).
   A number that matches no number is wrong, not paraphrased: no later rule is tried;
3. ``name``: one name's words are a subset of the other's, ending in the same word ("Carr" /
   "Kevin Carr", "United" / "Manchester United"; not "Manchester" / "Manchester United", which
   could be City);
4. ``triple``: a relation whose arguments match (equal, a word subset, or the same head word) and
   whose predicates are close (the same verb, the same negation), e.g. ``kevin carr|set off
   from|haytor`` and ``carr|set off|haytor``;
5. ``fuzzy``: similar keys (rapidfuzz ``token_sort_ratio`` >= 88) of the same kind;
6. ``words``: with sentence words indexed, every content word of the fact's key occurs in one
   sentence of the other text (words compared on their first five letters, so "competition" and
   "competitive" agree and inflections do not matter).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from rapidfuzz import fuzz, process

from infoextract import Extraction, Fact

__all__ = ["SupportIndex", "Match", "MATCH_RULES", "DEFAULT_RULES", "supported", "fact_words", "stem"]

MATCH_RULES = ("exact", "number", "name", "triple", "fuzzy", "words")
# "name" is off by default: measured on REALSumm's SCU labels and SQuALITY's ratings, matching a
# name to any longer name ending in the same word lost agreement on both (README); short names are
# resolved inside each text instead (infoextract.coref)
DEFAULT_RULES = ("exact", "number", "triple", "fuzzy", "words")
STEM_CHARS = 5
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_NAME_KINDS = ("entity", "concept")
# function words of predicates and keys: "set off from", "be in", "not have"
_FUNCTION = frozenset(
    ["a", "an", "the", "of", "in", "on", "at", "to", "from", "by", "for", "with", "about", "into", "onto", "over", "under", "after", "before", "up", "down", "off", "out", "as", "than", "be", "is", "are", "was", "were", "been", "being", "have", "has", "had", "do", "does", "did", "not", "no", "and", "or", "but", "'s"]
)
FUNCTION_WORDS = _FUNCTION  # public: fitness.presence reads predicates' content words with it


def stem(word: str) -> str:
    """A word as compared across texts: numbers whole, other words cut to their first five letters."""
    return word if any(c.isdigit() for c in word) else word[:STEM_CHARS]


def fact_words(fact: Fact) -> frozenset[str]:
    """The stems of a fact key's content words (``"obama|bear in|hawaii"`` -> obama, bear, hawai)."""
    return frozenset(stem(w) for w in re.split(r"[\s|]+", fact.key) if w and w not in _FUNCTION)


def _first_number(key: str) -> float | None:
    m = _NUMBER.search(key.replace(",", ""))
    return float(m.group()) if m else None


@dataclass(frozen=True)
class Match:
    """How a fact was found: the rule (one of :data:`MATCH_RULES`) and the fact of the other side
    that states it (``None`` for a ``words`` match; then ``sentence`` is the sentence's index)."""

    fact: Fact
    how: str
    by: Fact | None = None
    sentence: int | None = None


@dataclass(frozen=True)
class _Triple:
    subj: frozenset[str]
    head: str  # the predicate's verb (first content word), "" for none
    negated: bool
    obj: frozenset[str]
    fact: Fact


def _triple(f: Fact) -> _Triple | None:
    parts = f.key.split("|")
    if len(parts) != 3:
        return None
    subj, pred, obj = parts
    words = pred.split()
    negated = bool(words) and words[0] == "not"
    content = [w for w in words if w not in _FUNCTION]
    return _Triple(frozenset(subj.split()), content[0] if content else "", negated, frozenset(obj.split()), f)


def _args_match(a: frozenset[str], b: frozenset[str]) -> bool:
    if not a or not b:
        return a == b
    return a <= b or b <= a


def _close(q: _Triple, t: _Triple) -> bool:
    return (q.negated == t.negated and q.head[:STEM_CHARS] == t.head[:STEM_CHARS]
            and _args_match(q.subj, t.subj) and _args_match(q.obj, t.obj))


@dataclass(frozen=True)
class SupportIndex:
    """The facts (and optionally sentence words) of one side, indexed for "is it stated?" queries.

    Build once per side (:meth:`build` from facts, :meth:`from_extractions` from extractions,
    which also indexes their sentences for the ``words`` rule) and query with :meth:`supports`
    (one bool per fact) or :meth:`match` (the evidence for one fact).
    """

    exact: frozenset[tuple[str, str]]
    by_kind: dict[str, list[str]]
    numbers: dict[tuple[str, str], np.ndarray]  # (kind, unit label) -> numbers
    numeric_tolerance: float = 0.05
    fuzzy_threshold: float = 88.0
    names: dict[str, list[tuple[frozenset[str], Fact]]] = field(default_factory=dict)  # word -> names with it
    triples: dict[str, list[_Triple]] = field(default_factory=dict)  # predicate verb stem -> triples
    sentences: tuple[frozenset[str], ...] = ()  # stems of each indexed sentence
    facts_by_key: dict[tuple[str, str], Fact] = field(default_factory=dict)
    rules: frozenset[str] = frozenset(DEFAULT_RULES)

    @classmethod
    def build(cls, facts: Iterable[Fact], *, numeric_tolerance: float = 0.05, fuzzy_threshold: float = 88.0,
              sentences: Iterable[Sequence[str]] = (), rules: Iterable[str] | None = None) -> SupportIndex:
        """Index facts (and sentence word lists).

        Args:
            facts: the facts of the side to look in.
            numeric_tolerance: relative tolerance of quantities (0.05 = 5 %, 0 requires equality).
            fuzzy_threshold: rapidfuzz score in [0, 100] of the ``fuzzy`` rule (100 turns it off).
            sentences: word lists of that side's sentences, for the ``words`` rule.
            rules: the rules to apply, a subset of :data:`MATCH_RULES` (``exact`` always applies);
                ``None``: the module's :data:`DEFAULT_RULES` at call time (every rule but ``name``;
                the agreement benchmarks rebind it to measure each rule's effect on every component).
        """
        rules = frozenset(DEFAULT_RULES if rules is None else rules) | {"exact"}
        unknown = sorted(rules - set(MATCH_RULES))
        if unknown:
            raise ValueError(f"rules must be a subset of {list(MATCH_RULES)}, got unknown {unknown}")
        if not 0 <= fuzzy_threshold <= 100:
            raise ValueError(f"fuzzy_threshold must be in [0, 100] (a rapidfuzz score), got {fuzzy_threshold!r}")
        if not numeric_tolerance >= 0:
            raise ValueError(f"numeric_tolerance must be >= 0 (a relative tolerance), got {numeric_tolerance!r}")
        exact: set[tuple[str, str]] = set()
        by_kind: dict[str, set[str]] = {}
        numbers: dict[tuple[str, str], list[float]] = {}
        names: dict[str, list[tuple[frozenset[str], Fact]]] = {}
        triples: dict[str, list[_Triple]] = {}
        facts_by_key: dict[tuple[str, str], Fact] = {}
        for f in facts:
            if (f.kind, f.key) in exact:
                continue
            exact.add((f.kind, f.key))
            facts_by_key[(f.kind, f.key)] = f
            by_kind.setdefault(f.kind, set()).add(f.key)
            if f.kind in _NAME_KINDS:
                exact.add(("name", f.key))
                facts_by_key.setdefault(("name", f.key), f)
                words = f.key.split()
                if words and "name" in rules:  # posted under the last word, the one a short form keeps
                    names.setdefault(words[-1], []).append((frozenset(words), f))
            elif f.kind in ("quantity", "date"):
                x = _first_number(f.key)
                if x is not None:
                    numbers.setdefault((f.kind, f.label), []).append(x)
            elif f.kind == "relation":
                t = _triple(f)
                if t is not None:
                    triples.setdefault(t.head[:STEM_CHARS], []).append(t)
        return cls(
            exact=frozenset(exact),
            by_kind={k: sorted(v) for k, v in by_kind.items()},
            numbers={k: np.array(v) for k, v in numbers.items()},
            numeric_tolerance=numeric_tolerance,
            fuzzy_threshold=fuzzy_threshold,
            names=names,
            triples=triples,
            sentences=tuple(frozenset(stem(w) for w in s) for s in sentences),
            facts_by_key=facts_by_key,
            rules=rules,
        )

    @classmethod
    def from_extractions(cls, extractions: Iterable[Extraction], **options) -> SupportIndex:
        """Index the unique facts and the sentence words of one or more extractions."""
        extractions = list(extractions)
        return cls.build([f for e in extractions for f in e.unique_facts],
                         sentences=[s for e in extractions for s in e.sentences], **options)

    @property
    def words(self) -> frozenset[str]:
        """Every indexed sentence stem."""
        return frozenset().union(*self.sentences) if self.sentences else frozenset()

    # ------------------------------------------------------------------ queries

    def _number(self, f: Fact) -> bool | None:
        """True/False for a number that matches / matches none; None when the rule does not apply."""
        x = _first_number(f.key)
        if x is None:
            return None
        refs = [v for (kind, unit), v in self.numbers.items()
                if kind == f.kind and (unit == f.label or not unit or not f.label or f.kind == "date")]
        if not refs:
            return False
        ref = np.concatenate(refs)
        scale = np.maximum(np.abs(ref), abs(x))
        tol = self.numeric_tolerance if f.kind == "quantity" else 0.0
        return bool(np.any(np.abs(ref - x) <= tol * np.where(scale > 0, scale, 1)))

    def _name(self, f: Fact) -> Fact | None:
        words = f.key.split()
        if not words:
            return None
        mine = frozenset(words)
        for other, by in self.names.get(words[-1], ()):
            # the shorter name is a subset ending in the same word: "Carr" / "Kevin Carr", "United" /
            # "Manchester United", "the old king" / "the king"; not "Manchester" / "Manchester United"
            if (mine < other or other < mine) and by.key.split()[-1] == words[-1]:
                return by
        return None

    def _triple(self, f: Fact) -> Fact | None:
        q = _triple(f)
        if q is None:
            return None
        for t in self.triples.get(q.head[:STEM_CHARS], ()):
            if _close(q, t):
                return t.fact
        return None

    def _words(self, f: Fact) -> int | None:
        words = fact_words(f)
        if not words:
            return None
        return next((i for i, s in enumerate(self.sentences) if words <= s), None)

    @property
    def _fuzzy_on(self) -> bool:
        return self.fuzzy_threshold < 100 and "fuzzy" in self.rules

    def contradicts(self, fact: Fact) -> bool:
        """Whether a quantity or date is stated otherwise here: the indexed side has numbers of
        its kind (and unit) and none is within tolerance."""
        return fact.kind in ("quantity", "date") and self._number(fact) is False and \
            any(kind == fact.kind and (unit == fact.label or fact.kind == "date") for kind, unit in self.numbers)

    def match(self, fact: Fact) -> Match | None:
        """How ``fact`` is stated on the indexed side, or ``None`` (see the module docstring)."""
        return self._match(fact, fuzzy=True)

    def _match(self, f: Fact, *, fuzzy: bool) -> Match | None:
        if (f.kind, f.key) in self.exact:
            return Match(f, "exact", self.facts_by_key[(f.kind, f.key)])
        if f.kind in _NAME_KINDS and ("name", f.key) in self.exact:
            return Match(f, "exact", self.facts_by_key[("name", f.key)])
        if f.kind in ("quantity", "date") and "number" in self.rules:
            hit = self._number(f)
            if hit is not None:
                # a wrong number is not a paraphrase: "1987" vs "1989" are 75 % similar strings
                return Match(f, "number") if hit else None
        if f.kind in _NAME_KINDS and "name" in self.rules:
            by = self._name(f)
            if by is not None:
                return Match(f, "name", by)
        if f.kind == "relation" and "triple" in self.rules:
            by = self._triple(f)
            if by is not None:
                return Match(f, "triple", by)
        if fuzzy and self._fuzzy_on and self.by_kind.get(f.kind):
            best = process.extractOne(f.key, self.by_kind[f.kind], scorer=fuzz.token_sort_ratio,
                                      score_cutoff=self.fuzzy_threshold)
            if best is not None:
                return Match(f, "fuzzy", self.facts_by_key[(f.kind, best[0])])
        if self.sentences and "words" in self.rules:
            i = self._words(f)
            if i is not None:
                return Match(f, "words", None, i)
        return None

    def supports(self, facts: Iterable[Fact]) -> np.ndarray:
        """A boolean per fact: is it stated on the indexed side?"""
        return self.support_scores(facts) > 0

    def support_scores(self, facts: Iterable[Fact], *, words: float = 1.0) -> np.ndarray:
        """Per fact, 1 when a rule other than ``words`` finds it on the indexed side, ``words`` when
        only the ``words`` rule does (its content words in one sentence: weaker evidence than a
        matched fact), 0 when nothing does."""
        if not 0 <= words <= 1:
            raise ValueError(f"words must be in [0, 1] (the credit of a words-only match), got {words!r}")
        facts = list(facts)
        out = np.zeros(len(facts), dtype=float)
        fuzzy_todo: dict[str, list[int]] = {}
        for i, f in enumerate(facts):
            m = self._match(f, fuzzy=False)
            if m is not None:
                out[i] = 1.0 if m.how != "words" else words
            if (m is None or m.how == "words" and words < 1) and self._fuzzy_on and self.by_kind.get(f.kind) \
                    and (f.kind not in ("quantity", "date") or "number" not in self.rules or self._number(f) is None):
                fuzzy_todo.setdefault(f.kind, []).append(i)
        for kind, idx in fuzzy_todo.items():
            # one vectorised call per kind: a (facts x indexed keys) similarity matrix
            scores = process.cdist([facts[i].key for i in idx], self.by_kind[kind], scorer=fuzz.token_sort_ratio,
                                   score_cutoff=self.fuzzy_threshold, workers=1)
            hit = scores.max(axis=1) >= self.fuzzy_threshold  # fuzzy comes before words: a full match
            out[np.array(idx)[hit]] = 1.0
        return out


def supported(candidate: Iterable[Fact], references: Iterable[Fact], **options) -> np.ndarray:
    """Convenience: which ``candidate`` facts are supported by ``references`` (see :class:`SupportIndex`)."""
    return SupportIndex.build(references, **options).supports(candidate)
