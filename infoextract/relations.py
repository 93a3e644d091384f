"""Relation triples ``subject | predicate | object`` from a dependency parse.

Plain subject-verb-object extraction misses most of what answers say. The rules here also cover:

- copular clauses: "Luther is a monk" -> ``luther | be | monk`` (attr/acomp of "be");
- prepositional objects: "born in Hawaii" -> ``obama | bear in | hawaii``;
- passives: with an agent the triple is turned active ("the bill was signed by the president"
  and "the president signed the bill" share ``president | sign | bill``);
- conjunctions: conjoined subjects, objects and verbs each give a triple (shared subjects are
  inherited by conjoined verbs);
- relative clauses and participles: the modified noun is the subject ("the man who lives in
  Paris" -> ``man | live in | paris``);
- negation is part of the predicate (``cat | not be | dog``; "he has no money" ->
  ``he | not have | money``), so a negated fact never matches its affirmation.

Arguments are keyed by the entity or normalised value that covers them when there is one, else
by the lemmas of the head noun and its compound/adjective modifiers.
"""

from __future__ import annotations

from infoextract._spacy import Doc, Token
from infoextract.entities import covered_words, token_word
from infoextract.facts import Fact
from infoextract.normalize import canonical_words

__all__ = ["relation_facts", "arg_key"]

_SUBJ = ("nsubj", "nsubjpass", "csubj", "csubjpass")
_OBJ = ("dobj", "attr", "acomp", "oprd", "dative", "obj")
_MODIFIERS = ("compound", "amod", "nmod", "nummod", "poss")
_RELATIVE = frozenset({"who", "which", "that", "whom", "whose"})
_NEGATIONS = frozenset({"not", "n't", "never", "no"})
_PARTITIVES = frozenset({"one", "some", "many", "most", "all", "each", "several", "few", "none", "both",
                         "part", "half", "rest"})


def _conjuncts(tok: Token) -> list[Token]:
    return [tok, *tok.conjuncts]


def _partitive(tok: Token) -> Token:
    """"one of the knights", "most of the crew": the group is the argument, not the quantifier."""
    if tok.lower_ in _PARTITIVES:
        for prep in tok.children:
            if prep.dep_ == "prep" and prep.lower_ == "of":
                pobj = next((c for c in prep.children if c.dep_ == "pobj"), None)
                if pobj is not None:
                    return pobj
    return tok


def arg_key(tok: Token, covered: dict[int, str]) -> str:
    """Canonical key of an argument headed by ``tok``."""
    tok = _partitive(tok)
    if tok.i in covered:
        return covered[tok.i]
    tokens = []
    for child in tok.lefts:
        if child.dep_ in _MODIFIERS and not child.is_punct:
            tokens.extend(t for t in child.subtree if t.i < tok.i and not t.is_punct)
    tokens.append(tok)
    key = canonical_words(covered_words(tokens, covered))
    return key or token_word(tok)


def _subjects(verb: Token, depth: int = 0) -> list[Token]:
    """Subject heads of ``verb``, inherited from the head verb (conj/xcomp) or noun (relcl/acl)."""
    subjects = [c for c in verb.children if c.dep_ in _SUBJ]
    if subjects:
        out = []
        for subj in subjects:
            if subj.lower_ in _RELATIVE and subj.tag_ in ("WDT", "WP", "IN"):
                # "the man who lives": the relative clause (maybe a few verbs up) modifies a noun
                clause = next((v for v in [verb, *verb.ancestors] if v.dep_ == "relcl"), None)
                if clause is not None and clause.head.pos_ in ("NOUN", "PROPN", "PRON"):
                    out.append(clause.head)
            else:
                out.extend(_conjuncts(subj))
        return out
    if depth > 5:  # malformed parses can chain; a subject five hops away is no longer reliable
        return []
    if verb.dep_ in ("conj", "xcomp", "advcl") and verb.head.pos_ in ("VERB", "AUX"):
        return _subjects(verb.head, depth + 1)
    if verb.dep_ in ("relcl", "acl") and verb.head.pos_ in ("NOUN", "PROPN"):
        return [verb.head]
    return []


def _is_passive(verb: Token) -> bool:
    if any(c.dep_ in ("nsubjpass", "auxpass", "csubjpass") for c in verb.children):
        return True
    return verb.dep_ == "acl" and verb.tag_ == "VBN"  # "a city located in France"


def _predicate(verb: Token) -> str:
    words = [token_word(verb)]
    words.extend(token_word(c) for c in verb.children if c.dep_ == "prt")
    negated = any(c.dep_ == "neg" or (c.lower_ in _NEGATIONS and c.dep_ == "advmod") for c in verb.children)
    return ("not " if negated else "") + " ".join(words)


def _negated_by_object(pred: str, obj: Token) -> str:
    """"He has no money" negates the predicate through the object's determiner."""
    if not pred.startswith("not ") and any(c.dep_ == "det" and c.lower_ in ("no", "neither") for c in obj.children):
        return "not " + pred
    return pred


def relation_facts(doc: Doc, covered: dict[int, str], offset: int = 0) -> list[Fact]:
    """The relation triples of ``doc``; spans cover subject, verb and object (shifted by ``offset``)."""
    facts: list[Fact] = []
    text = doc.text  # Doc.text is rebuilt from the tokens on every access
    for verb in doc:
        if verb.pos_ not in ("VERB", "AUX"):
            continue
        if verb.pos_ == "AUX" and verb.dep_ in ("aux", "auxpass"):
            continue  # an auxiliary of another verb, not a predicate of its own
        subjects = _subjects(verb)
        if not subjects:
            continue
        pred = _predicate(verb)
        passive = _is_passive(verb)
        pairs: list[tuple[str, Token | None]] = []  # (predicate, object head)
        agents: list[Token] = []
        for child in verb.children:
            if child.dep_ in _OBJ:
                pairs.extend((_negated_by_object(pred, o), o) for o in _conjuncts(child))
            elif child.dep_ == "agent" and passive:
                agents.extend(o for p in child.children if p.dep_ == "pobj" for o in _conjuncts(p))
            elif child.dep_ == "prep":
                for prep in _conjuncts(child):
                    objects = [o for p in prep.children if p.dep_ == "pobj" for o in _conjuncts(p)]
                    pairs.extend((_negated_by_object(f"{pred} {prep.lower_}", o), o) for o in objects)
        # "tried to escape", "said that ...": the content is in the complement clause, which
        # gives its own triple; "he|try|" alone says nothing
        clausal = any(c.dep_ in ("xcomp", "ccomp") for c in verb.children)
        triples: list[tuple[Token, str, Token | None]] = []
        for subj in subjects:
            if agents:  # passive with an agent: state it actively
                triples.extend((agent, pred, subj) for agent in agents)
            triples.extend((subj, p, o) for p, o in pairs)
            if not agents and not pairs and not clausal:  # intransitive ("the king died")
                triples.append((subj, pred, None))
        for subj, p, obj in triples:
            if obj is not None and obj.lower_ in _RELATIVE and verb.dep_ == "relcl":
                obj = verb.head  # "the book that he wrote" -> he | write | book
            subj_key = arg_key(subj, covered)
            obj_key = arg_key(obj, covered) if obj is not None else ""
            tokens = [t for t in (subj, verb, obj) if t is not None]
            start = min(t.idx for t in tokens)
            end = max(t.idx + len(t) for t in tokens)
            facts.append(Fact("relation", f"{subj_key}|{p}|{obj_key}", text[start:end],
                              (start + offset, end + offset), p))
    return facts
