"""Content words per sentence: what the statement-level presence fallback compares.

A sentence's words are the lemmas of its content tokens (no stop words, punctuation or spaces),
except that tokens inside an entity or value fact contribute the words of that fact's key
("$4,000" gives ``4000`` and ``usd``; "Carr" after "Kevin Carr" gives ``kevin`` and ``carr``) and
resolved pronouns contribute their antecedent's words; a lemma that does not even share its first
two letters with its word is replaced by the lower-cased word (see :func:`_word`). So "he paid 4000 dollars" and "Carr paid
$4,000" share ``kevin carr pay 4000 usd`` once both texts name Kevin Carr.
"""

from __future__ import annotations

from infoextract._spacy import STOP_WORDS as _SPACY_STOP_WORDS
from infoextract._spacy import Doc
from infoextract.entities import token_word

__all__ = ["sentence_words", "CONTENT_STOP"]

# spaCy's list plus contractions; "not" stays out too: presence is about information shared,
# and negation is kept in relation predicates, where it changes the key
CONTENT_STOP = frozenset(_SPACY_STOP_WORDS) | {"'s", "’s", "not", "n't", "-pron-"}


def _word(tok) -> str:
    """The lemma, unless it shares not even its first two letters with the word: lower-cased
    names are often lemmatised as common words ("justin rose" -> "rise"), and a lemma that far
    from its word ("went" -> "go") is as likely a mistake as not."""
    word, surface = token_word(tok), tok.lower_
    return word if word[:2] == surface[:2] else surface


def sentence_words(doc: Doc, covered: dict[int, str]) -> list[tuple[str, ...]]:
    """Content words of each sentence of ``doc`` (one sentence without sentence boundaries)."""
    sents = list(doc.sents) if doc.has_annotation("SENT_START") else [doc[:]]
    out = []
    for sent in sents:
        words: dict[str, None] = {}
        last_key = None
        for tok in sent:
            key = covered.get(tok.i)
            if key is not None:
                if key != last_key:
                    words.update(dict.fromkeys(w for w in key.split() if w not in CONTENT_STOP))
                last_key = key
                continue
            last_key = None
            if tok.is_punct or tok.is_space:
                continue
            word = _word(tok)
            if word in CONTENT_STOP or not any(c.isalnum() for c in word):
                continue
            words[word] = None
        if words:
            out.append(tuple(words))
    return out
