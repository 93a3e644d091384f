"""Noun-chunk concepts: the lower-priority fact kind.

A concept is what a text talks about ("the old king", "a safe conduct") when it is not already a
named entity or a value. Keys drop determiners, stop words and pronouns, so "the old king" and
"an old king" match; chunks that are only pronouns, or lie wholly inside an entity/value fact,
give no concept (the stronger fact already counts them).
"""

from __future__ import annotations

from infoextract._spacy import Doc
from infoextract.entities import covered_words, token_word
from infoextract.facts import Fact
from infoextract.normalize import canonical_words

__all__ = ["concept_facts"]

_SKIP_POS = frozenset({"DET", "PRON", "PUNCT", "SPACE", "CCONJ", "ADP", "PART"})


def concept_facts(doc: Doc, covered: dict[int, str], offset: int = 0) -> list[Fact]:
    """One concept fact per noun chunk of ``doc`` (spans shifted by ``offset``)."""
    if not doc.has_annotation("DEP"):
        return []  # noun_chunks needs the parser; with it disabled there are no concepts
    facts = []
    text = doc.text  # Doc.text is rebuilt from the tokens on every access
    for chunk in doc.noun_chunks:
        if chunk.root.pos_ == "PRON":
            continue
        tokens = [t for t in chunk if t.pos_ not in _SKIP_POS]
        if not tokens or all(t.i in covered for t in tokens):
            continue
        key = canonical_words(covered_words(tokens, covered))
        if not key:
            continue
        start, end = tokens[0].idx, tokens[-1].idx + len(tokens[-1])
        facts.append(Fact("concept", key, text[start:end], (start + offset, end + offset), token_word(chunk.root)))
    return facts
