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
]
