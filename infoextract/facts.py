"""The extracted-information data model: :class:`Fact` and :class:`Extraction`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Fact", "Extraction", "FACT_KINDS"]

# entity: a named entity (OntoNotes label); quantity: a number, amount, money or percentage with its
# unit; date: a normalised date or time; relation: a (subject, predicate, object) triple from the
# dependency parse; concept: a noun-chunk concept (lower priority than the others).
FACT_KINDS = ("entity", "quantity", "date", "relation", "concept")


@dataclass(frozen=True)
class Fact:
    """One unit of information extracted from a text.

    Attributes:
        kind: one of :data:`FACT_KINDS`.
        key: canonical form used to match the same fact across texts (lemmatised, lower-cased,
            numbers and dates normalised, units kept). Relation keys are ``"subj|pred|obj"``.
        text: the surface text the fact was read from.
        span: ``(start, end)`` character offsets of ``text`` in the record's text.
        label: the spaCy entity label, the predicate lemma, or the quantity's unit.
        source_index: index of the source sentence the fact aligns to, or ``None``.
        duplicate: ``True`` when an earlier fact of the same text has the same ``(kind, key)``.
    """

    kind: str
    key: str
    text: str
    span: tuple[int, int]
    label: str = ""
    source_index: int | None = None
    duplicate: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "key": self.key,
            "text": self.text,
            "span": list(self.span),
            "label": self.label,
            "source_index": self.source_index,
            "duplicate": self.duplicate,
        }

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> Fact:
        return cls(
            kind=obj["kind"],
            key=obj["key"],
            text=obj.get("text", ""),
            span=tuple(obj.get("span", (0, 0))),
            label=obj.get("label", ""),
            source_index=obj.get("source_index"),
            duplicate=bool(obj.get("duplicate", False)),
        )


@dataclass(frozen=True)
class Extraction:
    """The facts of one text, in order of appearance (duplicates included and marked).

    ``sentences`` holds, per sentence of the text, its content words: lemmas without stop words
    and punctuation, entity and value tokens replaced by the words of their fact key, pronouns
    and short names by their antecedent's (see :mod:`infoextract.coref`). The presence decision
    (:func:`fitness.presence`) uses them as its statement-level fallback; extractions built by
    hand may leave it empty.
    """

    facts: tuple[Fact, ...] = field(default_factory=tuple)
    sentences: tuple[tuple[str, ...], ...] = field(default_factory=tuple)

    @property
    def unique_facts(self) -> tuple[Fact, ...]:
        """The facts not marked as duplicates."""
        return tuple(f for f in self.facts if not f.duplicate)

    @property
    def keys(self) -> frozenset[tuple[str, str]]:
        """The set of ``(kind, key)`` pairs of this text."""
        return frozenset((f.kind, f.key) for f in self.facts)

    @property
    def depth(self) -> int:
        """Number of unique facts: repeating a fact does not raise it."""
        return len(self.keys)

    def by_kind(self, *kinds: str) -> tuple[Fact, ...]:
        """The unique facts of the given kinds."""
        return tuple(f for f in self.unique_facts if f.kind in kinds)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"depth": self.depth, "facts": [f.to_dict() for f in self.facts]}
        if self.sentences:
            out["sentences"] = [list(s) for s in self.sentences]
        return out

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> Extraction:
        return cls(facts=tuple(Fact.from_dict(f) for f in obj.get("facts", [])),
                   sentences=tuple(tuple(s) for s in obj.get("sentences", ())))
