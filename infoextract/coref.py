"""Rule-based resolution of pronouns and short names inside one text.

No coreference model can be downloaded here, so mentions are resolved with a few rules over
spaCy's entities, morphology and parse (in the spirit of Hobbs, 1978, and of the "most recent
compatible antecedent" baselines of Lee et al., 2013, much reduced):

- *short names*: a PERSON (or ORG) entity whose words are a proper subset of an earlier entity's
  of the same label ("Carr" after "Kevin Carr", "United" after "Manchester United") takes that
  entity's key, and so does a lone proper noun the NER missed when exactly one earlier name
  contains it ("United" after "Manchester United");
- *personal pronouns* (he, him, his, she, her, ...): the most recent PERSON entity; in a text the
  NER gives no person (lower-cased texts often), the most recent proper-noun subject;
- *it / its*: the most recent subject that is neither a person nor a pronoun (an entity or a
  noun), in the same or the previous sentence;
- *they / them / their*: the most recent subject that is a plural noun or an ORG/NORP/GPE
  entity (or a short name of one).

The result maps token indices to the key of the antecedent; relation arguments and sentence words
then use the antecedent ("He paid $40" after "Harlan ..." gives ``harlan|pay|40 usd``). Wrong
resolutions cost a missed match, not a false one more often than not, because keys must still
agree with the other text; the measured effect is in the README (REALSumm SCU agreement).
"""

from __future__ import annotations

from infoextract._spacy import Doc, Token
from infoextract.facts import Fact

__all__ = ["resolve_mentions", "PERSONAL_PRONOUNS", "NEUTER_PRONOUNS", "PLURAL_PRONOUNS"]

PERSONAL_PRONOUNS = frozenset({"he", "him", "his", "himself", "she", "her", "hers", "herself"})
NEUTER_PRONOUNS = frozenset({"it", "its", "itself"})
PLURAL_PRONOUNS = frozenset({"they", "them", "their", "theirs", "themselves"})
_GROUP_LABELS = frozenset({"ORG", "NORP", "GPE"})
_SHORT_NAME_LABELS = frozenset({"PERSON", "ORG"})
_SUBJECT = frozenset({"nsubj", "nsubjpass"})


def _sentence_starts(doc: Doc) -> list[int]:
    """Sentence number of every token (all 0 without sentence boundaries)."""
    if not doc.has_annotation("SENT_START"):
        return [0] * len(doc)
    out, n = [], -1
    for tok in doc:
        if tok.is_sent_start or n < 0:
            n += 1
        out.append(n)
    return out


def _short_names(doc: Doc, facts: list[Fact], covered: dict[int, str], lone: dict[int, str]) -> dict[str, str]:
    """Short entity key -> the earlier full key it abbreviates (same label); lone proper nouns
    resolved to a name go to ``lone`` (token index -> the name's label)."""
    seen: list[tuple[str, str, frozenset[str]]] = []  # (label, key, words), in order of appearance
    rename: dict[str, str] = {}
    for ent in doc.ents:
        if ent.label_ not in _SHORT_NAME_LABELS:
            continue
        key = covered.get(ent[0].i)
        if not key:
            continue
        words = frozenset(key.split())
        full = next((k for lab, k, w in reversed(seen) if lab == ent.label_ and words < w), None)
        if full is not None:
            rename[key] = full
            for tok in ent:
                covered[tok.i] = full
        else:
            seen.append((ent.label_, key, words))
    if rename:
        for i, f in enumerate(facts):
            if f.kind == "entity" and f.key in rename and f.label in _SHORT_NAME_LABELS:
                facts[i] = Fact(f.kind, rename[f.key], f.text, f.span, f.label)
    # a lone proper noun the NER missed ("United scored" after "Manchester United") takes the
    # one earlier name that contains it; a word in two names ("Manchester") stays as it is
    for tok in doc:
        if tok.pos_ != "PROPN" or tok.i in covered:
            continue
        owners = {(lab, k) for lab, k, w in seen if tok.lower_ in w and len(w) > 1 and tok.i > 0}
        if len(owners) == 1:
            label, covered[tok.i] = owners.pop()
            lone[tok.i] = label
    return rename


def resolve_mentions(doc: Doc, facts: list[Fact], covered: dict[int, str], offset: int = 0,
                     *, arg_key=None) -> dict[int, str]:
    """Resolve pronouns and short names of ``doc`` in place.

    Args:
        doc: the parsed text (entities, morphology; the parse when present).
        facts: the doc's entity facts; short names get their full name's key (in place).
        covered: token index -> fact key (from :func:`infoextract.entities.entity_facts`);
            resolved tokens are added, so relation arguments use the antecedent.
        offset: character offset of ``doc`` in its text (unused; kept for symmetry with the
            other rule modules).
        arg_key: ``fn(token, covered) -> key`` for a noun antecedent that is not an entity
            (the relation rules' argument key).

    Returns:
        token index -> antecedent key, for every resolved pronoun.
    """
    lone: dict[int, str] = {}
    _short_names(doc, facts, covered, lone)
    labels = {tok.i: ent.label_ for ent in doc.ents for tok in ent} | lone
    sent = _sentence_starts(doc)
    parsed = doc.has_annotation("DEP")
    person: str | None = None
    person_subject: str | None = None  # fallback when the NER finds no person
    thing: tuple[int, str] | None = None  # (sentence, key)
    group: str | None = None
    resolved: dict[int, str] = {}

    def key_of(tok: Token) -> str | None:
        if tok.i in covered:
            return covered[tok.i]
        return arg_key(tok, covered) if arg_key is not None else None

    for tok in doc:
        low = tok.lower_
        if tok.pos_ == "PRON" or low in PERSONAL_PRONOUNS | NEUTER_PRONOUNS | PLURAL_PRONOUNS:
            target = None
            if low in PERSONAL_PRONOUNS:
                target = person or person_subject
            elif low in NEUTER_PRONOUNS and thing is not None and sent[tok.i] - thing[0] <= 1:
                target = thing[1]
            elif low in PLURAL_PRONOUNS:
                target = group
            if target:
                resolved[tok.i] = target
                covered.setdefault(tok.i, target)
            continue
        label = labels.get(tok.i)
        if label == "PERSON":
            person = covered.get(tok.i, person)
            continue
        if not parsed or tok.dep_ not in _SUBJECT:
            continue
        key = key_of(tok)
        if not key:
            continue
        # only subjects become antecedents of "it" and "they": the entity an answer talks about
        # is its subject far more often than its object ("United beat Liverpool. They ...")
        if label in _GROUP_LABELS or (tok.pos_ in ("NOUN", "PROPN") and "Plur" in tok.morph.get("Number")):
            group = key
        elif tok.pos_ == "PROPN" and label is None:
            person_subject = key
        elif tok.pos_ in ("NOUN", "PROPN"):
            thing = (sent[tok.i], key)
    return resolved
