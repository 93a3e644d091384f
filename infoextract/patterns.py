"""Extra EntityRuler and Matcher patterns from a JSONL file.

One pattern a line::

    {"label": "SHIP", "pattern": "Space Cruiser"}                       # EntityRuler phrase
    {"label": "SHIP", "pattern": [{"LOWER": "cruiser"}, {"IS_DIGIT": true}]}  # EntityRuler tokens
    {"label": "weapon", "pattern": [{"LEMMA": "blaster"}], "kind": "concept"}  # Matcher -> a concept fact

Lines without ``kind`` (or with ``"kind": "entity"``) go to an EntityRuler placed before the
statistical NER, so the NER respects them and their label becomes an entity fact. Lines with
another fact kind go to a Matcher whose matches become facts of that kind, keyed by their lemmas.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from infoextract._spacy import Doc, Language, Matcher
from infoextract.entities import token_word
from infoextract.facts import FACT_KINDS, Fact
from infoextract.normalize import canonical_words

__all__ = ["PatternsError", "PatternSet", "load_patterns"]

RULER_NAME = "esfit_entity_ruler"


class PatternsError(ValueError):
    """The patterns file has bad lines; the message names each one."""


class PatternSet:
    """Parsed patterns: ``ruler`` lines for the EntityRuler, ``matcher`` lines per (kind, label)."""

    def __init__(self, ruler: list[dict[str, Any]], matcher: list[dict[str, Any]], digest: str):
        self.ruler = ruler
        self.matcher = matcher
        self.digest = digest  # part of the extractor signature: new patterns invalidate the cache
        self._matcher: Matcher | None = None
        self._kinds: dict[int, tuple[str, str]] = {}

    def install(self, nlp: Language) -> None:
        """Add the EntityRuler to ``nlp`` (before its NER) and build the Matcher on its vocab."""
        if self.ruler and RULER_NAME not in nlp.pipe_names:
            where = {"before": "ner"} if "ner" in nlp.pipe_names else {}
            ruler = nlp.add_pipe("entity_ruler", name=RULER_NAME, **where)
            ruler.add_patterns(self.ruler)
        if self.matcher:
            self._matcher = Matcher(nlp.vocab)
            for i, line in enumerate(self.matcher):
                pattern = line["pattern"]
                if isinstance(pattern, str):
                    pattern = [{"LOWER": w.lower()} for w in pattern.split()]
                match_id = f"esfit_{i}_{line['label']}"
                self._matcher.add(match_id, [pattern])
                self._kinds[nlp.vocab.strings[match_id]] = (line["kind"], line["label"])

    def facts(self, doc: Doc, kinds: frozenset[str], offset: int = 0) -> list[Fact]:
        """Facts from Matcher patterns in ``doc`` (EntityRuler matches arrive as entities)."""
        if self._matcher is None:
            return []
        out = []
        for match_id, start, end in self._matcher(doc):
            kind, label = self._kinds[match_id]
            if kind not in kinds:
                continue
            span = doc[start:end]
            key = canonical_words([token_word(t) for t in span])
            if key:
                out.append(Fact(kind, key, span.text, (span.start_char + offset, span.end_char + offset), label))
        return out


def load_patterns(path: str | os.PathLike) -> PatternSet:
    """Read and validate a patterns file; every bad line is reported at once."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"patterns file not found: {path} (pass a JSONL file of EntityRuler/Matcher patterns)")
    raw = path.read_bytes()
    ruler, matcher, problems = [], [], []
    for number, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            problems.append(f"  {path}:{number}: not a JSON object ({err})")
            continue
        problem = _check(obj)
        if problem:
            problems.append(f"  {path}:{number}: {problem}")
        elif obj.get("kind", "entity") == "entity":
            ruler.append({k: v for k, v in obj.items() if k in ("label", "pattern", "id")})
        else:
            matcher.append(obj)
    if problems:
        raise PatternsError(
            f"{len(problems)} bad line(s) in patterns file {path}:\n" + "\n".join(problems[:20])
            + '\nEach line must be {"label": str, "pattern": str or [token dicts], optional "kind": '
            f"one of {', '.join(FACT_KINDS)}}}."
        )
    return PatternSet(ruler, matcher, hashlib.sha256(raw).hexdigest()[:16])


def _check(obj: Any) -> str | None:
    if not isinstance(obj, dict):
        return f"expected a JSON object, got {type(obj).__name__}"
    if not isinstance(obj.get("label"), str) or not obj["label"]:
        return "missing or empty string field 'label'"
    pattern = obj.get("pattern")
    if not (isinstance(pattern, str) and pattern.strip()) and not (
        isinstance(pattern, list) and pattern and all(isinstance(t, dict) for t in pattern)
    ):
        return "field 'pattern' must be a non-empty string or a list of token-attribute objects"
    kind = obj.get("kind", "entity")
    if kind not in FACT_KINDS:
        return f"field 'kind' must be one of {', '.join(FACT_KINDS)}, got {kind!r}"
    return None
