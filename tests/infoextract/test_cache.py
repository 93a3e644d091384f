"""ExtractionCache on paths that are not a cache: one CacheError (a ValueError) naming the file and
the fix, and the file left exactly as it was."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from infoextract.cache import CacheError, ExtractionCache
from infoextract.facts import Extraction, Fact


def _snapshot(path: Path) -> tuple[bytes, int]:
    return path.read_bytes(), path.stat().st_mtime_ns


def test_a_new_cache_round_trips(tmp_path):
    path = tmp_path / "sub" / "facts.sqlite"
    fact = Fact("entity", "paris", "Paris", (0, 5), "GPE")
    with ExtractionCache(path) as cache:
        cache.put_many([("k", Extraction((fact,)))])
    with ExtractionCache(path) as cache:
        assert cache.get_many(["k", "other"])["k"].facts == (fact,)


def test_an_empty_file_is_a_new_cache(tmp_path):
    path = tmp_path / "facts.sqlite"
    path.touch()
    with ExtractionCache(path) as cache:
        assert len(cache) == 0


@pytest.mark.parametrize("content", [
    b'{"prompt_id": "q1", "text": "a corpus passed as --cache by mistake"}\n',
    bytes(range(256)),  # a binary file
    b"SQLite format 2\x00 but not really",
])
def test_a_file_that_is_not_sqlite_is_refused_untouched(tmp_path, content):
    path = tmp_path / "corpus.jsonl"
    path.write_bytes(content)
    before = _snapshot(path)
    with pytest.raises(CacheError, match=r"cache='.*corpus\.jsonl' is not a usable sqlite database: it is not sqlite at all.*delete it.*another path"):
        ExtractionCache(path)
    assert _snapshot(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.jsonl"]  # no -wal / -shm beside it


def test_a_truncated_database_is_a_clear_error(tmp_path):
    path = tmp_path / "facts.sqlite"
    path.write_bytes(b"SQLite format 3\x00" + b"\xff" * 40)  # the header, then garbage
    with pytest.raises(ValueError, match=r"cache='.*facts\.sqlite' is not a usable sqlite database.*delete it"):
        ExtractionCache(path)


def test_another_programs_database_is_refused_untouched(tmp_path):
    path = tmp_path / "app.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE users (name TEXT)")
    conn.execute("INSERT INTO users VALUES ('ada')")
    conn.commit()
    conn.close()
    before = _snapshot(path)
    with pytest.raises(CacheError, match=r"app\.db' is an sqlite database but not an extraction cache \(tables: users\)"):
        ExtractionCache(path)
    assert _snapshot(path) == before
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # not switched to WAL
    assert conn.execute("SELECT name FROM users").fetchall() == [("ada",)]
    conn.close()


def test_a_table_named_extractions_of_another_shape_is_refused(tmp_path):
    path = tmp_path / "app.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE extractions (id INTEGER, payload BLOB)")
    conn.execute("INSERT INTO extractions VALUES (1, x'00')")
    conn.commit()
    conn.close()
    with pytest.raises(CacheError, match="not an extraction cache"):
        ExtractionCache(path)
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT COUNT(*) FROM extractions").fetchone()[0] == 1  # not emptied
    conn.close()


def test_a_folder_is_refused(tmp_path):
    with pytest.raises(CacheError, match=r"is a folder; pass a file path such as facts-cache\.sqlite"):
        ExtractionCache(tmp_path)


@pytest.mark.parametrize("below", ["c.sqlite", "deeper/c.sqlite"])
def test_a_path_under_a_file_is_refused(tmp_path, below):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    with pytest.raises(CacheError, match=r"is under .*afile, which is a file, not a folder"):
        ExtractionCache(blocker / below)
    assert blocker.read_text() == "x"


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc, where even root cannot create files")
def test_an_unwritable_place_is_a_clear_error():
    with pytest.raises(CacheError, match=r"cache='/proc/esfit-cache-test\.sqlite' cannot be (opened|written).*another path"):
        ExtractionCache("/proc/esfit-cache-test.sqlite")
