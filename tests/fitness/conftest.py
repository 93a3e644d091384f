"""Fixtures for the fitness tests: a word-level fake extractor (fast, deterministic) and the real
extractor, loaded once per session."""

from __future__ import annotations

import re

import pytest

from infoextract import Extraction, Fact


class WordExtractor:
    """Every word of 3+ letters is an entity fact keyed by its lower-case form; records calls."""

    def __init__(self):
        self.calls = []

    def extract(self, texts, sources=None, *, progress=False):
        self.calls.append(list(texts))
        out = []
        for text in texts:
            seen, facts = set(), []
            for m in re.finditer(r"[A-Za-z]{3,}", text):
                key = m.group().lower()
                facts.append(Fact("entity", key, m.group(), m.span(), "X", duplicate=key in seen))
                seen.add(key)
            out.append(Extraction(tuple(facts)))
        return out


@pytest.fixture
def word_extractor():
    return WordExtractor()


@pytest.fixture(scope="session")
def real_extractor():
    from infoextract import Extractor

    return Extractor()
