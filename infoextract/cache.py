"""A content-hash cache of extractions on disk (sqlite).

The key is a SHA-256 of the extractor signature (pipeline name and version, kinds, patterns,
rule version), the text and its source, so a changed setting never returns stale facts and a
text seen before costs one indexed lookup. sqlite gives atomic writes and safe concurrent readers
for free; values are compact JSON, one array per fact.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path

from infoextract.facts import Extraction, Fact

__all__ = ["ExtractionCache", "content_key"]

_SCHEMA = "CREATE TABLE IF NOT EXISTS extractions (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
# Layout of a stored value (see _encode). Bump it whenever that layout changes: a file written in
# another layout is emptied on open (it is only a cache) instead of failing on read.
_FORMAT = 2
_CHUNK = 500  # sqlite limits host parameters per statement (999 on old builds)


def content_key(signature: str, text: str, source: str | None = None) -> str:
    """Hex SHA-256 of signature, text and source, separated so that no two inputs collide."""
    digest = hashlib.sha256()
    for part in (signature, text, "" if source is None else source):
        data = part.encode("utf-8", "surrogatepass")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    digest.update(b"\x01" if source is not None else b"\x00")
    return digest.hexdigest()


def _encode(extraction: Extraction) -> str:
    # one JSON array per fact, fields in Fact order: about three times faster to read back than
    # Extraction.to_dict's objects, which matters when a cached pass should cost ~nothing
    rows = [[f.kind, f.key, f.text, f.span[0], f.span[1], f.label, f.source_index, f.duplicate]
            for f in extraction.facts]
    return json.dumps(rows, ensure_ascii=False, separators=(",", ":"))


def _decode(value: str) -> Extraction:
    return Extraction(tuple(Fact(k, key, text, (start, end), label, source, dup)
                            for k, key, text, start, end, label, source, dup in json.loads(value)))


class ExtractionCache:
    """Extractions keyed by :func:`content_key`, stored in one sqlite file.

    Args:
        path: the database file (created with its folder when missing).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if self.path.exists() and self.path.is_dir():
            raise IsADirectoryError(f"cache={str(self.path)!r} is a folder; pass a file path such as facts-cache.sqlite")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = sqlite3.connect(str(self.path), timeout=30)
            self._conn.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
            self._conn.execute(_SCHEMA)
            if self._conn.execute("PRAGMA user_version").fetchone()[0] != _FORMAT:
                self._conn.execute("DELETE FROM extractions")
                self._conn.execute(f"PRAGMA user_version={_FORMAT}")
            self._conn.commit()
        except sqlite3.DatabaseError as err:
            raise ValueError(
                f"cache={str(self.path)!r} is not a usable sqlite database ({err}); "
                "delete it or pass another path"
            ) from None

    def get_many(self, keys: Sequence[str]) -> dict[str, Extraction]:
        """The cached extractions among ``keys`` (missing keys are absent from the result)."""
        found: dict[str, Extraction] = {}
        unique = list(dict.fromkeys(keys))
        for i in range(0, len(unique), _CHUNK):
            part = unique[i:i + _CHUNK]
            marks = ",".join("?" * len(part))
            rows = self._conn.execute(f"SELECT key, value FROM extractions WHERE key IN ({marks})", part)
            for key, value in rows:
                found[key] = _decode(value)
        return found

    def put_many(self, items: Iterable[tuple[str, Extraction]]) -> None:
        """Store extractions (one transaction; an existing key is overwritten)."""
        rows = [(key, _encode(ex)) for key, ex in items]
        with self._conn:
            self._conn.executemany("INSERT OR REPLACE INTO extractions (key, value) VALUES (?, ?)", rows)

    def __len__(self) -> int:
        return self._conn.execute("SELECT COUNT(*) FROM extractions").fetchone()[0]

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> ExtractionCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
