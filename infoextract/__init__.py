"""infoextract: turn answers (human or model) into structured, matchable facts.

Imports neither torch nor transformers.
"""

from infoextract.facts import FACT_KINDS, Extraction, Fact
from infoextract.loaders import LOADERS, FormatError, load_corpus
from infoextract.records import (
    CorpusError,
    Record,
    group_by_prompt,
    iter_records,
    read_records,
    write_records,
)
from infoextract.summary import format_summary, summarize_extractions

__all__ = [
    "FACT_KINDS",
    "CorpusError",
    "Extraction",
    "Fact",
    "Record",
    "group_by_prompt",
    "iter_records",
    "read_records",
    "write_records",
    "LOADERS",
    "FormatError",
    "load_corpus",
    "Extractor",
    "PipelineNotFoundError",
    "load_pipeline",
    "summarize_extractions",
    "format_summary",
]

# The extractor needs spaCy (about a second to import): load it on first use, so that reading
# records or summaries stays instant and `import infoextract` imports neither spaCy nor torch.
_LAZY = {
    "Extractor": "infoextract.extractor",
    "PipelineNotFoundError": "infoextract.pipeline",
    "load_pipeline": "infoextract.pipeline",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'infoextract' has no attribute {name!r}")
