"""Align facts to the sentences of a record's source document.

A fact aligns to the source sentence that shares the most of its key words, provided it shares
at least half of them (and at least one); otherwise it aligns to nothing. Sentence word sets hold
the lemmas of the sentence's content words *and* the words of the normalised keys found in it, so
"4000 dollars" in an answer aligns to "$4,000" in the source. Ties go to the earliest sentence,
where the fact is first stated.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from infoextract._spacy import STOP_WORDS as _SPACY_STOP_WORDS
from infoextract._spacy import Doc
from infoextract.entities import token_word
from infoextract.facts import Fact

__all__ = ["SourceIndex", "fact_words", "MIN_OVERLAP"]

MIN_OVERLAP = 0.5  # share of a fact's key words that its sentence must contain
# Alignment wants content words only: prepositions and auxiliaries ("in", "be") match everywhere.
_ALIGN_STOP = frozenset(_SPACY_STOP_WORDS) | {"'s", "not"}
_SPLIT = re.compile(r"[\s|]+")
_SENT_END = re.compile(r"(?<=[.!?])\s+|\n\s*\n")


def fact_words(key: str) -> set[str]:
    """The content words of a fact key ("obama|bear in|hawaii" -> {"obama", "bear", "hawaii"})."""
    return {w for w in _SPLIT.split(key.lower()) if w and w not in _ALIGN_STOP}


class SourceIndex:
    """Inverted index from content words to the sentences of one source document.

    Build it with :meth:`from_docs` over the parsed chunks of the source; sentence indices count
    from 0 over the whole source.
    """

    def __init__(self) -> None:
        self.sentences: list[tuple[int, int]] = []  # character spans in the source
        self._postings: dict[str, list[int]] = {}

    @classmethod
    def from_docs(cls, parts: Iterable[tuple[Doc, int, list[Fact]]]) -> SourceIndex:
        """Index ``(doc, char_offset, facts)`` chunks of a source, in order."""
        index = cls()
        for doc, offset, facts in parts:
            sents = _sentences(doc)
            first = len(index.sentences)
            words: list[set[str]] = []
            for start, end in sents:
                index.sentences.append((start + offset, end + offset))
                words.append(set())
            ends = [end for _, end in sents]
            for tok in doc:
                if tok.is_punct or tok.is_space:
                    continue
                word = token_word(tok)
                if word in _ALIGN_STOP:
                    continue
                words[_locate(ends, tok.idx)].add(word)
            for fact in facts:  # normalised keys: "$4,000" also indexes "4000" and "usd"
                words[_locate(ends, fact.span[0] - offset)].update(fact_words(fact.key))
            for i, ws in enumerate(words):
                for w in ws:
                    index._postings.setdefault(w, []).append(first + i)
        return index

    def align(self, fact: Fact) -> int | None:
        """Index of the source sentence the fact aligns to, or ``None``."""
        words = fact_words(fact.key)
        if not words:
            return None
        counts: Counter[int] = Counter()
        for w in words:
            counts.update(self._postings.get(w, ()))
        if not counts:
            return None
        best = max(counts.values())
        if best < MIN_OVERLAP * len(words):
            return None
        return min(i for i, c in counts.items() if c == best)


def _sentences(doc: Doc) -> list[tuple[int, int]]:
    """Character spans of the sentences of ``doc``: the parser's when it ran, else a regex split."""
    text = doc.text  # rebuilt from the tokens on every access
    if doc.has_annotation("SENT_START"):
        return [(s.start_char, s.end_char) for s in doc.sents] or [(0, len(text))]
    spans, start = [], 0
    for match in _SENT_END.finditer(text):
        spans.append((start, match.start()))
        start = match.end()
    spans.append((start, len(text)))
    return spans


def _locate(ends: list[int], char: int) -> int:
    """Index of the sentence containing character ``char`` (binary search over sentence ends)."""
    lo, hi = 0, len(ends) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if char < ends[mid]:
            hi = mid
        else:
            lo = mid + 1
    return lo
