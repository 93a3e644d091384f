"""Is a candidate fact supported by the references? Exact key, numeric tolerance, fuzzy match.

Three tests, tried in order, each only against reference facts of the same kind:

1. exact: the canonical ``(kind, key)`` pair appears in the references;
2. numeric: for quantities, the first number in the key is within a relative tolerance of a
   reference number with the same unit label ("3.1 million km" vs "3 million km"); for dates the
   numbers must be equal (1989 is 0.1 % away from 1987 and still the wrong year);
3. fuzzy: the keys are similar strings (rapidfuzz ``token_sort_ratio`` at or above a threshold),
   which absorbs word-order and small wording differences that canonicalisation leaves
   ("steffens|find|robot" vs "steffens|discover|robot" is *not* matched at the default 88).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from rapidfuzz import fuzz, process

from infoextract import Fact

__all__ = ["SupportIndex", "supported"]

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def _first_number(key: str) -> float | None:
    m = _NUMBER.search(key.replace(",", ""))
    return float(m.group()) if m else None


@dataclass(frozen=True)
class SupportIndex:
    """The reference facts of one prompt, indexed for support queries.

    Build once per prompt (:meth:`build`) and query every candidate answer against it.
    """

    exact: frozenset[tuple[str, str]]
    by_kind: dict[str, list[str]]
    numbers: dict[tuple[str, str], np.ndarray]  # (kind, unit label) -> reference numbers
    numeric_tolerance: float = 0.05
    fuzzy_threshold: float = 88.0

    @classmethod
    def build(
        cls, facts: Iterable[Fact], *, numeric_tolerance: float = 0.05, fuzzy_threshold: float = 88.0
    ) -> SupportIndex:
        """Index reference facts. ``fuzzy_threshold`` in [0, 100] (100 disables fuzzy matching in
        effect); ``numeric_tolerance`` is relative (0.05 = 5 %, 0 requires equality)."""
        if not 0 <= fuzzy_threshold <= 100:
            raise ValueError(f"fuzzy_threshold must be in [0, 100] (a rapidfuzz score), got {fuzzy_threshold!r}")
        if not numeric_tolerance >= 0:
            raise ValueError(f"numeric_tolerance must be >= 0 (a relative tolerance), got {numeric_tolerance!r}")
        exact: set[tuple[str, str]] = set()
        by_kind: dict[str, set[str]] = {}
        numbers: dict[tuple[str, str], list[float]] = {}
        for f in facts:
            exact.add((f.kind, f.key))
            by_kind.setdefault(f.kind, set()).add(f.key)
            if f.kind in ("quantity", "date"):
                x = _first_number(f.key)
                if x is not None:
                    numbers.setdefault((f.kind, f.label), []).append(x)
        return cls(
            exact=frozenset(exact),
            by_kind={k: sorted(v) for k, v in by_kind.items()},
            numbers={k: np.array(v) for k, v in numbers.items()},
            numeric_tolerance=numeric_tolerance,
            fuzzy_threshold=fuzzy_threshold,
        )

    def supports(self, facts: Iterable[Fact]) -> np.ndarray:
        """A boolean per fact: is it supported by the indexed references?"""
        facts = list(facts)
        out = np.zeros(len(facts), dtype=bool)
        fuzzy_todo: dict[str, list[int]] = {}
        for i, f in enumerate(facts):
            if (f.kind, f.key) in self.exact:
                out[i] = True
                continue
            if f.kind in ("quantity", "date"):
                ref = self.numbers.get((f.kind, f.label))
                x = _first_number(f.key)
                if ref is not None and x is not None:
                    scale = np.maximum(np.abs(ref), abs(x))
                    tol = self.numeric_tolerance if f.kind == "quantity" else 0.0
                    if np.any(np.abs(ref - x) <= tol * np.where(scale > 0, scale, 1)):
                        out[i] = True
                        continue
                    # a number that does not match any reference number is a wrong number, not a
                    # paraphrase: skip the fuzzy test ("1987" vs "1989" are 75 % similar strings)
                    continue
            if self.fuzzy_threshold < 100 and self.by_kind.get(f.kind):
                fuzzy_todo.setdefault(f.kind, []).append(i)
        for kind, idx in fuzzy_todo.items():
            # one vectorised call per kind: a (candidates x references) similarity matrix
            scores = process.cdist(
                [facts[i].key for i in idx], self.by_kind[kind], scorer=fuzz.token_sort_ratio,
                score_cutoff=self.fuzzy_threshold, workers=1,
            )
            out[np.array(idx)] = scores.max(axis=1) >= self.fuzzy_threshold
        return out


def supported(candidate: Iterable[Fact], references: Iterable[Fact], **options) -> np.ndarray:
    """Convenience: which ``candidate`` facts are supported by ``references`` (see :class:`SupportIndex`)."""
    return SupportIndex.build(references, **options).supports(candidate)
