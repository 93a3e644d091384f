"""Entity, quantity and date facts from a parsed spaCy ``Doc``.

The 18 OntoNotes labels are split by what their key needs: names (PERSON, ORG, ...) become
``entity`` facts keyed by their lemmas; MONEY, PERCENT, QUANTITY, CARDINAL and ORDINAL become
``quantity`` facts keyed by a normalised value and unit; DATE and TIME become ``date`` facts keyed
by an ISO-style value when they are calendar dates. Numbers the statistical NER misses ("4000
dollars" is often untagged by the small English model) are caught by a token rule, so a value
does not depend on how it was written.
"""

from __future__ import annotations

from infoextract._spacy import Doc, Span, Token
from infoextract.facts import Fact
from infoextract.normalize import (
    CURRENCIES,
    canonical_words,
    format_number,
    normalize_date,
    normalize_quantity,
    normalize_time,
    parse_number,
)

__all__ = [
    "NAME_LABELS",
    "QUANTITY_LABELS",
    "DATE_LABELS",
    "ONTONOTES_LABELS",
    "token_word",
    "covered_words",
    "entity_facts",
]

NAME_LABELS = ("PERSON", "NORP", "FAC", "ORG", "GPE", "LOC", "PRODUCT", "EVENT", "WORK_OF_ART", "LAW", "LANGUAGE")
QUANTITY_LABELS = ("MONEY", "PERCENT", "QUANTITY", "CARDINAL", "ORDINAL")
DATE_LABELS = ("DATE", "TIME")
ONTONOTES_LABELS = NAME_LABELS + QUANTITY_LABELS + DATE_LABELS

_SCALE_WORDS = frozenset({"hundred", "thousand", "million", "billion", "trillion", "dozen", "bn"})
# words inside a numeric entity that qualify rather than state the value ("about 25%")
_HEDGES = frozenset({"about", "around", "approximately", "roughly", "nearly", "almost", "over", "under",
                     "some", "more", "less", "than", "at", "least", "most", "up", "to", "only", "just",
                     "a", "an", "the", "of", "per", "by", "and"})
_SUFFIX = {1: "st", 2: "nd", 3: "rd"}


def token_word(tok: Token) -> str:
    """The lower-cased lemma of a token (its lower-cased text when no lemmatizer ran)."""
    lemma = tok.lemma_
    return (lemma or tok.text).lower()


def covered_words(tokens: list[Token], covered: dict[int, str]) -> list[str]:
    """Words of ``tokens`` with each run of tokens inside one entity/value fact replaced by its key."""
    words: list[str] = []
    last_key = None
    for tok in tokens:
        key = covered.get(tok.i)
        if key is None:
            words.append(token_word(tok))
        elif key != last_key:
            words.append(key)
        last_key = key
    return words


def _is_number(tok: Token) -> bool:
    return tok.like_num or tok.lower_ in _SCALE_WORDS or parse_number(tok.lower_) is not None and tok.pos_ == "NUM"


def _counts(number: Token, noun: Token, parsed: bool) -> bool:
    """Whether ``number`` counts ``noun`` ("three ships"): from the parse, or by adjacency without one."""
    if noun.pos_ not in ("NOUN", "PROPN") or noun.i != number.i + 1:
        return False
    if parsed:
        return number.dep_ == "nummod" and number.head.i == noun.i
    return True


def _ordinal_key(value: float) -> str:
    n = int(value)
    suffix = "th" if 10 <= n % 100 <= 20 else _SUFFIX.get(n % 10, "th")
    return f"{n}{suffix}"


def _quantity(tokens: list[Token], label: str) -> tuple[str, str] | None:
    """``(key, unit)`` of a numeric span: number tokens joined and parsed, the unit beside them."""
    numbers: list[str] = []
    unit = ""
    rest: list[str] = []
    for tok in tokens:
        low = tok.lower_
        if low == "cent" and tok.i > 0 and tok.doc[tok.i - 1].lower_ == "per":  # "25 per cent"
            unit = "percent"
        elif low in CURRENCIES or tok.text in CURRENCIES:
            unit = unit or low
        elif low in ("%", "percent", "pct"):
            unit = "percent"
        elif _is_number(tok) and not (numbers and rest):
            numbers.append(low)
        elif low in _HEDGES or not any(c.isalnum() for c in low):
            continue
        else:
            rest.append(token_word(tok))
    if not unit and rest:
        unit = rest[-1] if label != "ORDINAL" else ""
    if label == "ORDINAL":
        value = parse_number(" ".join(numbers)) if numbers else None
        return (_ordinal_key(value), "ordinal") if value is not None else None
    if not numbers:
        return None
    return normalize_quantity(" ".join(numbers), unit)


def _date_key(span: Span) -> str:
    """ISO date, 24-hour time, or (for relative dates) the canonical words with numbers normalised."""
    text = span.text.strip()
    key = normalize_date(text) or normalize_time(text)
    if key:
        return key
    words = []
    for tok in span:
        value = parse_number(tok.lower_) if tok.like_num else None
        words.append(format_number(value) if value is not None else token_word(tok))
    return canonical_words(words)


def _extend_numeric(span: Span, parsed: bool) -> list[Token]:
    """The entity's tokens plus a currency symbol just before it and a unit noun just after it.

    The small English NER leaves "$" outside "4,000" and tags "4000" in "4000 dollars" without
    the unit; both carry the meaning of the value.
    """
    doc = span.doc
    tokens = list(span)
    if span.start > 0 and doc[span.start - 1].text in CURRENCIES and not doc[span.start - 1].is_alpha:
        tokens.insert(0, doc[span.start - 1])
    if span.label_ in ("CARDINAL", "MONEY", "QUANTITY") and span.end < len(doc):
        nxt = doc[span.end]
        last = span[-1]
        is_unit = nxt.lower_ in CURRENCIES or nxt.lower_ in ("%", "percent")
        modifies = _counts(last, nxt, parsed)
        if (is_unit or modifies) and not nxt.ent_type_:
            tokens.append(nxt)
    return tokens


def entity_facts(doc: Doc, kinds: frozenset[str], offset: int = 0) -> tuple[list[Fact], dict[int, str]]:
    """Entity, quantity and date facts of ``doc`` (spans shifted by ``offset``).

    Returns the facts and a map from token index to the key of the fact that covers it, so that
    relation arguments can reuse normalised values ("paid $4,000" -> object ``4000 usd``).
    """
    facts: list[Fact] = []
    covered: dict[int, str] = {}
    # both scan every token (Doc.text is rebuilt on each access): once per doc, not once per fact
    parsed = doc.has_annotation("DEP")
    text = doc.text
    for ent in doc.ents:
        label = ent.label_
        if label in QUANTITY_LABELS:
            kind = "quantity"
            tokens = _extend_numeric(ent, parsed)
            keyed = _quantity(tokens, label)
            if keyed is None:  # "hundreds", "several": keep the words
                keyed = (canonical_words([token_word(t) for t in tokens]), label.lower())
            key, fact_label = keyed
        elif label in DATE_LABELS:
            kind, tokens, key, fact_label = "date", list(ent), _date_key(ent), label
        else:
            kind, tokens, fact_label = "entity", list(ent), label
            key = canonical_words([token_word(t) for t in ent if t.dep_ != "case"])
        if not key:
            continue
        for tok in tokens:
            covered[tok.i] = key
        if kind in kinds:
            start, end = tokens[0].idx, tokens[-1].idx + len(tokens[-1])
            facts.append(Fact(kind, key, text[start:end], (start + offset, end + offset), fact_label))
    if "quantity" in kinds:
        facts.extend(_untagged_numbers(doc, text, covered, offset, parsed))
    return facts, covered


def _untagged_numbers(doc: Doc, text: str, covered: dict[int, str], offset: int, parsed: bool) -> list[Fact]:
    """Quantity facts for numbers the NER left untagged: digits, or number words modifying a noun."""
    facts = []
    i = 0
    while i < len(doc):
        tok = doc[i]
        if tok.i in covered or not tok.like_num or not (any(c.isdigit() for c in tok.text) or tok.dep_ == "nummod"):
            i += 1
            continue
        j = i
        while j + 1 < len(doc) and doc[j + 1].i not in covered and _is_number(doc[j + 1]):
            j += 1
        tokens = list(doc[i:j + 1])
        if i > 0 and doc[i - 1].text in CURRENCIES and not doc[i - 1].is_alpha and (i - 1) not in covered:
            tokens.insert(0, doc[i - 1])
        if j + 1 < len(doc) and (j + 1) not in covered:
            nxt = doc[j + 1]
            if nxt.lower_ in CURRENCIES or nxt.lower_ in ("%", "percent") or _counts(doc[j], nxt, parsed):
                tokens.append(nxt)
        keyed = _quantity(tokens, "CARDINAL")
        if keyed is not None:
            key, unit = keyed
            start, end = tokens[0].idx, tokens[-1].idx + len(tokens[-1])
            facts.append(Fact("quantity", key, text[start:end], (start + offset, end + offset), unit))
            for t in tokens:
                covered[t.i] = key
        i = tokens[-1].i + 1
    return facts
