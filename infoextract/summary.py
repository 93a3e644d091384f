"""The closing summary of an extraction run: records, facts, and facts per record by kind."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from infoextract.facts import FACT_KINDS, Extraction

__all__ = ["summarize_extractions", "format_summary", "shared_facts"]


def summarize_extractions(extractions: Iterable[Extraction]) -> dict[str, Any]:
    """Counts over a set of extractions.

    Returns a dict with ``records``, ``facts`` (unique facts, i.e. the summed depth),
    ``duplicates`` (repeated facts), ``empty_records`` (records with no fact), ``facts_per_record``
    (mean depth), ``per_record_by_kind`` (mean unique facts per record for each kind) and
    ``by_kind`` (total unique facts per kind). Kinds outside :data:`FACT_KINDS` are counted too.
    """
    records = facts = duplicates = empty = 0
    by_kind: dict[str, int] = {kind: 0 for kind in FACT_KINDS}
    for extraction in extractions:
        records += 1
        unique = extraction.unique_facts
        facts += len(unique)
        duplicates += len(extraction.facts) - len(unique)
        empty += not unique
        for fact in unique:
            by_kind[fact.kind] = by_kind.get(fact.kind, 0) + 1
    per = {kind: (count / records if records else 0.0) for kind, count in by_kind.items()}
    return {
        "records": records,
        "facts": facts,
        "duplicates": duplicates,
        "empty_records": empty,
        "facts_per_record": facts / records if records else 0.0,
        "per_record_by_kind": per,
        "by_kind": by_kind,
    }


def format_summary(summary: dict[str, Any]) -> str:
    """A few human-readable lines for :func:`summarize_extractions`'s result."""
    lines = [
        f"records: {summary['records']}   facts: {summary['facts']} unique "
        f"(+{summary['duplicates']} repeated)   records with no fact: {summary['empty_records']}",
        f"facts per record: {summary['facts_per_record']:.2f}",
    ]
    per = summary["per_record_by_kind"]
    lines.append("  by kind: " + "   ".join(f"{kind} {value:.2f}" for kind, value in per.items()))
    return "\n".join(lines)


def _kind_rank(kind: str) -> int:
    return FACT_KINDS.index(kind) if kind in FACT_KINDS else len(FACT_KINDS)


def shared_facts(extractions: Sequence[Extraction], *, min_count: int = 2) -> list[tuple[str, str, str, int]]:
    """Facts found in at least ``min_count`` of the given texts' extractions: what several answers
    to one prompt agree on.

    Returns ``(kind, key, surface text, count)`` tuples, most shared first (ties: in the order of
    :data:`FACT_KINDS`, then by key). Each text counts a fact once, however often it repeats it.
    """
    if min_count < 1:
        raise ValueError(f"min_count must be >= 1, got {min_count}")
    counts: Counter[tuple[str, str]] = Counter()
    surface: dict[tuple[str, str], str] = {}
    for extraction in extractions:
        counts.update(extraction.keys)
        for fact in extraction.unique_facts:
            surface.setdefault((fact.kind, fact.key), fact.text)
    return sorted(
        ((kind, key, surface.get((kind, key), key), n) for (kind, key), n in counts.items() if n >= min_count),
        key=lambda t: (-t[3], _kind_rank(t[0]), t[1]),
    )
