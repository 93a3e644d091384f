"""Output paths checked before any work, and files written as results come, atomically.

A command that reads files and writes one must never destroy what it reads, and must find out that
it cannot write before it spends minutes working, not after. :func:`check_output_file` and
:func:`check_output_dir` apply the same rules everywhere (``esfit convert``, ``extract``, ``score``,
``generate``, ``train``); :class:`AtomicWriter` appends to a temporary file beside the target as
results come and renames it into place at the end, so the target is either the old file or the
whole new one, and a run that fails half-way leaves its partial results in a file it names.

Missing parent folders are created (like ``mkdir -p``) when the file is written, never by the
checks: a command refused later leaves no empty folders behind.

No click here: commands turn :class:`OutputError` into a click error; the training code calls the
same functions.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO

__all__ = ["AtomicWriter", "OutputError", "check_output_dir", "check_output_file"]

PathLike = str | os.PathLike
# inputs: option name -> path, or (option name, path) pairs, or bare paths; None paths are ignored
Inputs = Mapping[str, PathLike | None] | Iterable[PathLike | tuple[str, PathLike | None] | None]


class OutputError(ValueError):
    """An output path that must not or cannot be written. The message names the option, the path,
    the rule and the fix; ``option`` and ``path`` are kept for callers."""

    def __init__(self, option: str, path: PathLike, problem: str, fix: str):
        self.option, self.path = option, str(path)
        super().__init__(f"{option} {self.path}: {problem}; {fix}")


def _named_inputs(inputs: Inputs) -> list[tuple[str, str]]:
    if isinstance(inputs, Mapping):
        items = list(inputs.items())
    else:
        items = [p if isinstance(p, tuple) else ("an input", p) for p in inputs]
    return [(name, os.fspath(p)) for name, p in items if p is not None and os.fspath(p) != ""]


def _same(a: Path, b: str) -> bool:
    """``a`` (resolved) and ``b`` are the same file: same resolved path, or one file under two
    names (a hard link, a case-insensitive file system)."""
    other = Path(b).resolve()
    if a == other:
        return True
    try:
        return os.path.samefile(a, other)
    except OSError:  # one of them does not exist
        return False


def _nearest_existing(path: Path) -> Path:
    for folder in path.parents:
        if folder.exists():
            return folder
    return Path(path.anchor or ".")


def _check_parents(option: str, shown: str, resolved: Path, what: str) -> None:
    """Refuse a path under a file, or in a folder this process cannot write."""
    for folder in resolved.parents:
        if folder.exists():
            if not folder.is_dir():
                raise OutputError(option, shown, f"{folder} is a file, not a folder, so nothing can be written under it",
                                  f"give a {what} outside it, or move that file away")
            break
    _check_writable(option, shown, _nearest_existing(resolved), what)


def _check_writable(option: str, shown: str, folder: Path, what: str) -> None:
    """Refuse a folder this process cannot create files in. ``os.access`` alone is not enough: it
    says yes to root everywhere, also where nothing can be created (``/proc``), so a probe file is
    created and removed."""
    problem = None if os.access(folder, os.W_OK | os.X_OK) else "permission denied"
    if problem is None:
        try:
            fd, probe = tempfile.mkstemp(prefix=".esfit-probe-", dir=folder)
        except OSError as err:
            problem = err.strerror or str(err)
        else:
            os.close(fd)
            os.unlink(probe)
    if problem is not None:
        raise OutputError(option, shown, f"nothing can be created in the folder {folder} ({problem})",
                          f"give a {what} in a folder you can write to")


def _check_inputs(option: str, shown: str, resolved: Path, inputs: Inputs, what: str) -> None:
    for name, given in _named_inputs(inputs):
        if _same(resolved, given):
            where = f"the input {given}" if name == "an input" else f"{name} {given}"
            kind = "path" if what == "folder" else "file"
            raise OutputError(option, shown, f"is the same {kind} as {where}, which the command reads; writing it "
                              "would destroy that input", f"give another {what}")


def check_output_file(path: PathLike, *, inputs: Inputs = (), option: str = "-o", example: str = "out.jsonl") -> Path:
    """Check, before any work, that ``path`` is a file this command may and can write; return it
    resolved (absolute, symlinks followed).

    Refused, with an :class:`OutputError` naming ``option``: a path that is one of ``inputs`` (a
    mapping of option name -> path, or paths; compared after resolving, hard links included); a path
    ending in a separator or naming an existing folder (``example`` is the file name the message
    suggests inside it); something that exists and is not a regular file (``/dev/null``: the final
    rename would replace it); a read-only file; a path under a file; a folder where this user
    cannot create a file (probed). Missing parent folders are fine (the writer creates them).
    """
    raw = os.fspath(path)
    if not raw.strip():
        raise OutputError(option, repr(raw), "is empty", f"give a file path such as {example}")
    seps = tuple(s for s in (os.sep, os.altsep) if s)
    if raw.endswith(seps):
        raise OutputError(option, raw, "ends with a path separator, so it names a folder, not a file",
                          f"give a file path such as {raw.rstrip(''.join(seps)) or ''}{os.sep}{example}")
    resolved = Path(raw).resolve()
    _check_inputs(option, raw, resolved, inputs, "output file")
    if resolved.is_dir():
        raise OutputError(option, raw, "is a folder, not a file", f"give a file path such as {Path(raw) / example}")
    if resolved.exists() and not resolved.is_file():
        raise OutputError(option, raw, "exists and is not a regular file (a device, pipe or socket); "
                          "the output would replace it", "give the path of a regular file")
    if resolved.is_file() and not os.access(resolved, os.W_OK):
        raise OutputError(option, raw, "is read-only", "make it writable (chmod u+w) or give another path")
    _check_parents(option, raw, resolved, "file path")
    return resolved


def check_output_dir(path: PathLike, *, inputs: Inputs = (), option: str = "--output-dir") -> Path:
    """Check, before any work, that ``path`` is a folder that exists or can be created, and that
    this user can write in it; return it resolved.

    Refused, with an :class:`OutputError` naming ``option``: a path that is one of ``inputs`` (see
    :func:`check_output_file`), an existing file, a path under a file, a folder (or its nearest
    existing parent) this user cannot write. Nothing is created.
    """
    raw = os.fspath(path)
    if not raw.strip():
        raise OutputError(option, repr(raw), "is empty", "give a folder path such as runs/esfit")
    resolved = Path(raw).resolve()
    _check_inputs(option, raw, resolved, inputs, "folder")
    if resolved.exists() and not resolved.is_dir():
        raise OutputError(option, raw, "is a file, not a folder", "give a folder path, or move that file away")
    if resolved.is_dir():
        _check_writable(option, raw, resolved, "folder")
        return resolved
    _check_parents(option, raw, resolved, "folder")
    return resolved


class AtomicWriter:
    """Write a text file as results come, and atomically.

    Text goes to a temporary file beside ``path`` (``NAME.XXXXXXXX.partial``, same folder, so the
    final :func:`os.replace` is atomic); :meth:`flush` pushes it to the OS so another process (or a
    user after a crash) can read it. :meth:`commit` renames it over ``path``. Used as a context
    manager, a clean exit commits; an exception keeps the partial file, sets :attr:`partial`, adds a
    note naming it to the exception (Python 3.11+) and lets the exception go on. Missing parent
    folders are created when the file opens. ``errors="backslashreplace"`` (the default) writes a
    lone surrogate (from a JSON ``"\\ud800"`` escape) back as that same JSON escape instead of
    failing half-way through a file.

    >>> with AtomicWriter("out.jsonl") as out:          # doctest: +SKIP
    ...     for line in produce():
    ...         out.write(line + "\\n")
    ...         out.flush()
    """

    def __init__(self, path: PathLike, *, encoding: str = "utf-8", errors: str = "backslashreplace"):
        self.path = Path(path)
        self.encoding, self.errors = encoding, errors
        self.temp: Path | None = None  # the temporary file while open
        self.partial: Path | None = None  # set when a failure left a partial file
        self.writes = 0  # calls to write()
        self._fh: IO[str] | None = None

    def open(self) -> AtomicWriter:
        """Create the parent folders and the temporary file; returns self."""
        if self._fh is not None:
            raise RuntimeError(f"AtomicWriter for {self.path} is already open")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:  # "x": never clobber another run's partial file; the mode follows the umask
            temp = self.path.with_name(f"{self.path.name}.{secrets.token_hex(4)}.partial")
            try:
                # closed by commit() or abort(), which the with block calls
                self._fh = open(temp, "x", encoding=self.encoding, errors=self.errors)  # noqa: SIM115
                break
            except FileExistsError:
                continue
        self.temp = temp
        return self

    def write(self, text: str) -> None:
        """Append ``text`` to the temporary file."""
        if self._fh is None:
            raise RuntimeError(f"AtomicWriter for {self.path} is not open: use it in a with block or call open()")
        self._fh.write(text)
        self.writes += 1

    def write_json_line(self, obj: object) -> None:
        """Append ``obj`` as one line of JSON (JSONL), non-ASCII characters as they are."""
        self.write(json.dumps(obj, ensure_ascii=False) + "\n")

    def flush(self) -> None:
        """Hand what was written to the OS: it survives a crash of this process."""
        if self._fh is not None:
            self._fh.flush()

    def commit(self) -> Path:
        """Close the temporary file and rename it over ``path``; returns ``path``."""
        if self._fh is None or self.temp is None:
            raise RuntimeError(f"AtomicWriter for {self.path} is not open")
        self._fh.close()
        self._fh = None
        os.replace(self.temp, self.path)
        self.temp = None
        return self.path

    def abort(self, *, keep: bool = True) -> Path | None:
        """Close without renaming. ``keep``: leave the partial file (returned) for the user to
        read; else delete it (returns None)."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        temp, self.temp = self.temp, None
        if temp is None:
            return None
        if keep and temp.exists():
            self.partial = temp
            return temp
        temp.unlink(missing_ok=True)
        return None

    def __enter__(self) -> AtomicWriter:
        return self.open()

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is None:
            self.commit()
            return
        kept = self.abort(keep=self.writes > 0)
        if kept is not None and hasattr(exc, "add_note"):
            exc.add_note(f"the output written so far is in {kept} (not renamed to {self.path})")
