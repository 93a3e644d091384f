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

__all__ = ["CacheError", "ExtractionCache", "content_key"]

_SCHEMA = "CREATE TABLE IF NOT EXISTS extractions (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
# Layout of a stored value (see _encode). Bump it whenever that layout changes: a file written in
# another layout is emptied on open (it is only a cache) instead of failing on read.
_FORMAT = 3
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
    return json.dumps([rows, [" ".join(s) for s in extraction.sentences]], ensure_ascii=False,
                      separators=(",", ":"))


def _decode(value: str) -> Extraction:
    rows, sentences = json.loads(value)
    return Extraction(tuple(Fact(k, key, text, (start, end), label, source, dup)
                            for k, key, text, start, end, label, source, dup in rows),
                      tuple(tuple(s.split()) for s in sentences))


class CacheError(ValueError):
    """The cache path cannot be used as a cache; the message names the file and the fix."""


_SQLITE_HEADER = b"SQLite format 3\x00"  # the first 16 bytes of every sqlite 3 database file


def _first_existing(path: Path) -> Path:
    for folder in path.parents:
        if folder.exists():
            return folder
    return path.parent


class ExtractionCache:
    """Extractions keyed by :func:`content_key`, stored in one sqlite file.

    Args:
        path: the database file (created with its folder when missing). An existing file must be
            an sqlite database holding nothing but this cache's table: anything else (a corpus
            passed by mistake, another program's database) raises :class:`CacheError` untouched.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        shown = f"cache={str(self.path)!r}"
        if self.path.is_dir():
            raise CacheError(f"{shown} is a folder; pass a file path such as facts-cache.sqlite")
        if self.path.exists() and not self.path.is_file():
            raise CacheError(f"{shown} is not a regular file; pass a file path such as facts-cache.sqlite")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise CacheError(f"{shown} is under {_first_existing(self.path)}, which is a file, not a folder; "
                             "pass a path in a folder") from None
        except OSError as err:
            raise CacheError(f"{shown}: its folder {self.path.parent} cannot be created ({err.strerror}); "
                             "pass a path in a folder you can write to") from None
        self._check_header(shown)
        try:
            self._conn = sqlite3.connect(str(self.path), timeout=30)
        except sqlite3.Error as err:
            raise CacheError(f"{shown} cannot be opened ({err}); check that its folder is writable, "
                             "or pass another path") from None
        try:
            self._check_tables(shown)  # before anything writes: another program's database stays as it was
            self._conn.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
            self._conn.execute(_SCHEMA)
            if self._conn.execute("PRAGMA user_version").fetchone()[0] != _FORMAT:
                self._conn.execute("DELETE FROM extractions")
                self._conn.execute(f"PRAGMA user_version={_FORMAT}")
            self._conn.commit()
        except CacheError:
            self._conn.close()
            raise
        except sqlite3.OperationalError as err:  # read-only file or folder, locked, disk full
            self._conn.close()
            raise CacheError(f"{shown} cannot be written ({err}); make the file and its folder writable, "
                             "or pass another path") from None
        except sqlite3.DatabaseError as err:
            self._conn.close()
            raise CacheError(f"{shown} is not a usable sqlite database ({err}); delete it (it is only a cache) "
                             "or pass another path") from None

    def _check_header(self, shown: str) -> None:
        """Refuse, without opening it with sqlite, an existing file that is not an sqlite database."""
        try:
            with self.path.open("rb") as fh:
                head = fh.read(len(_SQLITE_HEADER))
        except FileNotFoundError:
            return
        except OSError as err:
            raise CacheError(f"{shown} cannot be read ({err.strerror}); fix its permissions or pass another path") from None
        if head and head != _SQLITE_HEADER:  # an empty file is a new, empty database to sqlite
            raise CacheError(f"{shown} is not a usable sqlite database: it is not sqlite at all (it starts "
                             f"with {head[:8]!r}) and was left untouched; if it is an old cache, delete it, "
                             "else pass another path such as facts-cache.sqlite")

    def _check_tables(self, shown: str) -> None:
        tables = sorted(name for (name,) in self._conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"))
        columns = [row[1] for row in self._conn.execute("PRAGMA table_info(extractions)")]
        if [t for t in tables if t != "extractions"] or (tables and columns != ["key", "value"]):
            raise CacheError(f"{shown} is an sqlite database but not an extraction cache (tables: "
                             f"{', '.join(tables)}); it was left untouched: pass another path such as "
                             "facts-cache.sqlite")

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
