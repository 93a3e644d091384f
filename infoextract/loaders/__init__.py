"""Loaders from public corpus formats to records.

>>> from infoextract.loaders import load_corpus
>>> records = load_corpus("squad", "dev-v1.1.json")          # doctest: +SKIP
>>> records = load_corpus("squality-eval", "all-responses.jsonl", stories="test.jsonl")  # doctest: +SKIP

Formats: ``squad`` (SQuAD v1.1 JSON), ``squality`` (SQuALITY story files), ``squality-eval``
(SQuALITY human-eval responses with ratings), ``mgtbench`` (MGTBench-style CSV), ``multiref``
(generic multi-reference JSON/JSONL), ``realsumm`` (REALSumm scores, SCUs and annotations). Add one with :func:`register`.
"""

# importing the format modules registers them
from infoextract.loaders import mgtbench, multiref, realsumm, squad, squality  # noqa: F401
from infoextract.loaders.base import LOADERS, FormatError, load_corpus, loader_options, register

__all__ = ["LOADERS", "FormatError", "load_corpus", "loader_options", "register"]
