"""The closing summary of an extraction run."""

from __future__ import annotations

import pytest

from infoextract import Extraction, Fact, format_summary, summarize_extractions


def _fact(kind: str, key: str, duplicate: bool = False) -> Fact:
    return Fact(kind, key, key, (0, len(key)), duplicate=duplicate)


def test_summary_counts_unique_facts_per_record_by_kind():
    extractions = [
        Extraction((_fact("entity", "paris"), _fact("entity", "paris", True), _fact("date", "1521"))),
        Extraction((_fact("relation", "a|b|c"),)),
        Extraction(()),
    ]
    summary = summarize_extractions(extractions)
    assert summary["records"] == 3
    assert summary["facts"] == 3
    assert summary["duplicates"] == 1
    assert summary["empty_records"] == 1
    assert summary["facts_per_record"] == pytest.approx(1.0)
    assert summary["per_record_by_kind"]["entity"] == pytest.approx(1 / 3)
    assert summary["by_kind"]["concept"] == 0
    text = format_summary(summary)
    assert "records: 3" in text and "entity 0.33" in text


def test_summary_of_nothing_is_zero():
    summary = summarize_extractions([])
    assert summary["records"] == 0 and summary["facts_per_record"] == 0.0
    assert "records: 0" in format_summary(summary)
