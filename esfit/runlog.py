"""The run folder: which folder a training run may write, its lock, and what it writes and prints.

``metrics.jsonl`` in the output folder gets one object per generation (``"kind": "train"``) and
per evaluation (``"kind": "eval"``). When the ``tensorboard`` package is importable the same
scalars go to ``<output>/tensorboard``. A resumed run first drops the lines of generations after
its checkpoint, so the file reads like one uninterrupted run.

The folder rules (:func:`check_run_dir`), checked before any model loads: the folder must be
writable (:func:`esfit.outputs.check_output_dir`); a fresh run refuses a folder that holds another
run (a ``config.json``, ``metrics.jsonl`` or ``checkpoints/``) unless told to overwrite it, and then
deletes only esfit's own files there (:data:`RUN_FILES`), never an input of the run nor anything
else; and one run at a time holds a folder (:class:`RunLock`, ``fcntl.flock`` on ``.esfit.lock``,
whose text names the holder).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import socket
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from esfit.outputs import OutputError, check_output_dir

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: runs are not locked
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_FILE", "RUN_FILES", "RUN_MARKERS", "Resume", "RunLock", "RunLog", "check_resume_folder",
           "check_run_dir", "clear_run", "find_resume", "format_metrics", "run_inputs", "run_markers"]

# what esfit train (and the demo) write into an output folder; --overwrite-output-dir deletes these only
RUN_FILES = ("checkpoints", "eval", "metrics.jsonl", "summary.json", "config.json", "tensorboard", "report.html")
# a folder holding any of these holds a run
RUN_MARKERS = ("config.json", "metrics.jsonl", "checkpoints")
LOCK_FILE = ".esfit.lock"
_OPTION = "--output-dir"

_TIMES = (("rollout_s", "roll"), ("extraction_s", "extract"), ("fitness_s", "fitness"), ("update_s", "update"))


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    return value


def format_metrics(m: dict[str, Any], generations: int) -> str:
    """One line per generation: fitness mean/max/std, components, update norm, speed, time split."""
    comps = " ".join(f"{k}={v:.3f}" for k, v in m.get("components", {}).items())
    total = m.get("generation_s", 0.0) or 1e-9
    split = " ".join(f"{label} {m.get(key, 0.0):.1f}s ({100 * m.get(key, 0.0) / total:.0f}%)" for key, label in _TIMES)
    return (f"gen {m['generation'] + 1}/{generations}  fitness {m['fitness_mean']:.4f} "
            f"(max {m['fitness_max']:.4f}, std {m['fitness_std']:.4f})  {comps}  "
            f"|update| {m['update_norm']:.3g}  {m.get('tokens_per_s', 0.0):.0f} tok/s  {split}")


class RunLog:
    """Appends metrics to ``<output>/metrics.jsonl`` and, if available, TensorBoard."""

    def __init__(self, output_dir: str | Path, *, resume_generation: int | None = None):
        self.path = Path(output_dir) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_generation is not None and self.path.is_file():
            self._truncate(resume_generation)
        elif resume_generation is None and self.path.is_file():
            self.path.unlink()  # a fresh run in a used folder starts a fresh log
        self.writer = None
        try:
            from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package
        except ImportError:
            pass
        else:
            self.writer = SummaryWriter(str(Path(output_dir) / "tensorboard"))

    def _truncate(self, generation: int) -> None:
        kept = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by the kill
            done = row.get("generation", -1) + 1 if row.get("kind") == "train" else row.get("after_generations", 0)
            if done <= generation:
                kept.append(line)
        self.path.write_text("".join(k + "\n" for k in kept), encoding="utf-8")

    def write(self, row: dict[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(_clean(row), ensure_ascii=False) + "\n")
        if self.writer is not None:
            step = row.get("generation", row.get("after_generations", 0))
            prefix = row.get("kind", "train")
            for key, value in row.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "generation":
                    self.writer.add_scalar(f"{prefix}/{key}", value, step)
            for key, value in row.get("components", {}).items():
                self.writer.add_scalar(f"{prefix}/components/{key}", value, step)
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


# --- the folder rules ------------------------------------------------------------------------------

def run_markers(folder: str | os.PathLike) -> list[str]:
    """The files of :data:`RUN_MARKERS` present in ``folder`` (a run's traces)."""
    folder = Path(folder)
    return [name for name in RUN_MARKERS if (folder / name).exists()]


def _is_run_config(path: Path) -> bool:
    """Whether ``path`` is the config.json esfit train writes (not, say, a model's)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(data, dict) and {"output_dir", "generations", "train_data"} <= data.keys()


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_run_dir(path: str | os.PathLike, *, inputs: Iterable[tuple[str, str | os.PathLike | None]] = (),
                  fresh: bool = True, overwrite: bool = False) -> Path:
    """Check, before any model loads, that a training run may write into ``path``; returns it resolved.

    Refused with an :class:`~esfit.outputs.OutputError` naming ``--output-dir``: what
    :func:`~esfit.outputs.check_output_dir` refuses (a file, a path under a file, a folder this user
    cannot write, an input of the run); a folder another run holds now (its lock, naming the
    holder); and for a ``fresh`` run a folder that holds another run, unless ``overwrite`` — then
    also when the deletion would touch an input (``inputs``: option name, path) or a
    ``config.json`` that is not esfit's. Nothing is created or deleted here.
    """
    inputs = [(name, p) for name, p in inputs if p]
    folder = check_output_dir(path, inputs=dict(inputs), option=_OPTION)
    holder = RunLock(folder).holder()
    if holder is not None:
        raise OutputError(_OPTION, path, f"is in use by another esfit run ({holder})",
                          "wait for that run to finish (or stop it), or give another --output-dir")
    if not fresh or not folder.is_dir():
        return folder
    markers = run_markers(folder)
    config = folder / "config.json"
    foreign = config.is_file() and not _is_run_config(config)
    if markers and not overwrite:
        what = ("a config.json that is not an esfit run's (a model folder?)" if foreign and markers == ["config.json"]
                else f"another run ({', '.join(markers)})")
        raise OutputError(_OPTION, path, f"holds {what}; a fresh run there would mix with it or delete its "
                          "checkpoints", f"continue that run with --resume {path}, start over with "
                          "--overwrite-output-dir (deletes esfit's files there: " + ", ".join(RUN_FILES) + "), or "
                          "give another --output-dir")
    if overwrite:
        if foreign:
            raise OutputError(_OPTION, path, "holds a config.json that is not an esfit run's (a model folder?), which "
                              "--overwrite-output-dir would delete", "give another --output-dir")
        for name in RUN_FILES:
            entry = folder / name
            for option, given in inputs:
                if entry.exists() and _inside(Path(given).resolve(), entry.resolve()):
                    raise OutputError(_OPTION, path, f"--overwrite-output-dir would delete {entry}, which holds "
                                      f"{option} {given}, an input of this run",
                                      "copy that input out of the folder first, or give another --output-dir")
    return folder


def clear_run(folder: str | os.PathLike) -> list[str]:
    """Delete what an earlier run left in ``folder``: the entries of :data:`RUN_FILES` and nothing
    else (check with :func:`check_run_dir` first). Returns the names deleted."""
    folder = Path(folder)
    removed = []
    for name in RUN_FILES:
        entry = folder / name
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        elif entry.exists() or entry.is_symlink():
            entry.unlink()
        else:
            continue
        removed.append(name)
    return removed


# --- resuming ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Resume:
    """What ``--resume PATH`` continues: the checkpoint (checked intact), its saved state, and the
    run folder it belongs to (None for a checkpoint folder outside a run's ``checkpoints/``)."""

    given: Path
    checkpoint: Path
    run_dir: Path | None
    state: dict[str, Any]

    @property
    def saved_config(self) -> dict[str, Any]:
        """The run's saved settings (plain data; checked by :func:`esfit.config.resume_config`)."""
        from esfit.config import ConfigError

        saved = self.state["extra"].get("config") or {}
        if not isinstance(saved, dict):
            raise ConfigError(f"{self.checkpoint / 'trainer_state.pt'}: the saved configuration is a "
                              f"{type(saved).__name__}, not a table; resume with --config FILE to give the settings")
        return saved


def find_resume(path: str | os.PathLike) -> Resume:
    """The checkpoint that resuming ``path`` (a run folder, its ``checkpoints/`` or a checkpoint
    folder) continues, verified before anything loads (:func:`trainer.checkpoint.verify_checkpoint`:
    the state is plain data, the weights complete). Raises ``FileNotFoundError`` when there is none
    and :class:`trainer.checkpoint.CheckpointError` naming a damaged file and the newest intact
    checkpoint before it (a resume never falls back on its own: the user decides)."""
    from trainer.checkpoint import latest_checkpoint, verify_checkpoint

    given = Path(path)
    checkpoint = latest_checkpoint(given)
    if checkpoint is None:
        raise FileNotFoundError(f"--resume {path}: no checkpoint found there (looked for gen-*/ folders with "
                                "trainer_state.pt, also under checkpoints/)")
    state = verify_checkpoint(checkpoint)
    run_dir = checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else None
    return Resume(given, checkpoint, run_dir, state)


def run_inputs(config, resume: Resume | None) -> list[tuple[str, str]]:
    """What the run reads (option name, path): an output folder must not be or hold one of them."""
    found = [(key, getattr(config, key)) for key in ("train_data", "eval_data", "validation_data", "extraction_cache")]
    found.append(("model", config.model if Path(config.model).is_dir() else ""))
    found += [("plugins", p) for p in config.plugins if p.endswith(".py")]
    if resume is not None:
        found.append(("--resume", str(resume.checkpoint)))
    return [(k, str(v)) for k, v in found if v]


def check_resume_folder(config, resume: Resume, overwrite: bool) -> None:
    """A resumed run writes only into the run folder it resumes; a lone checkpoint needs a new one."""
    from esfit.config import ConfigError  # here: this module stays light (no torch) for the lock

    out = Path(config.output_dir).resolve()
    if resume.run_dir is not None:
        if out != resume.run_dir.resolve():
            raise ConfigError(f"output_dir={config.output_dir!r}, but --resume {resume.given} continues the run in "
                              f"{resume.run_dir}: a resumed run writes only into the folder it resumes; leave "
                              f"--output-dir out, or copy the run first (cp -a {resume.run_dir} NEW, then esfit train "
                              "--resume NEW)")
        if overwrite:
            raise ConfigError(f"--overwrite-output-dir would delete the run that --resume {resume.given} continues; "
                              "give one of them")
    elif out == resume.checkpoint.resolve() or resume.checkpoint.resolve() in out.parents:
        raise ConfigError(f"output_dir={config.output_dir!r} is inside the checkpoint folder {resume.checkpoint} "
                          "that --resume reads; give a new --output-dir for the continued run")


# --- one run at a time ------------------------------------------------------------------------------

class RunLock:
    """An exclusive lock on a run folder, held while a run writes there.

    ``fcntl.flock`` on ``<folder>/.esfit.lock``: the kernel drops it when the process ends however
    it ends (SIGKILL included), so a stale file never blocks a later run. The file holds the
    holder's pid, host, start time and command line, which the error of a second run shows. On
    release the file is deleted while still locked; :meth:`acquire` checks that the file it locked
    is still the one at the path, so that a run racing that deletion does not hold a lock on a
    deleted file.
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self._fd: int | None = None
        self._created = False  # acquire() made the folder: release() removes it again when left empty

    @staticmethod
    def _describe(text: str) -> str:
        try:
            info = json.loads(text)
            return (f"pid {info['pid']} on host {info['host']}, started {info['started']}; "
                    f"command: {info.get('command', '?')}")
        except (ValueError, KeyError, TypeError):
            return "a process whose details could not be read"

    def holder(self) -> str | None:
        """Who holds the lock now (pid, host, start time, and the lock file), or None; creates nothing."""
        if fcntl is None or not self.path.is_file():
            return None
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                with open(self.path, encoding="utf-8", errors="replace") as fh:
                    return f"{self._describe(fh.read())}; lock file {self.path}"
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    def acquire(self, *, create: bool = False) -> RunLock:
        """Take the lock or raise an :class:`~esfit.outputs.OutputError` naming the holder. With
        ``create`` a missing folder is created, and removed on release if nothing was written there."""
        if self._fd is not None:
            return self
        if create and not self.folder.exists():
            self.folder.mkdir(parents=True)
            self._created = True
        if fcntl is None:
            return self
        try:
            self._lock()
        except BaseException:
            self._remove_if_empty()
            raise
        return self

    def _remove_if_empty(self) -> None:
        if self._created:
            with contextlib.suppress(OSError):
                self.folder.rmdir()  # only an empty folder: what a run refused before writing anything leaves
            self._created = False

    def _lock(self) -> None:
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                holder = self.holder() or "a process that has just released it"
                raise OutputError(_OPTION, self.folder, f"is in use by another esfit run ({holder})",
                                  "wait for that run to finish (or stop it), or give another --output-dir") from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # locked a file its holder deleted on release: lock the new one
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "started": time.strftime("%Y-%m-%d %H:%M:%S %z"), "command": " ".join(sys.argv)[:500]}
        os.ftruncate(fd, 0)
        os.write(fd, (json.dumps(info) + "\n").encode())
        self._fd = fd

    def release(self) -> None:
        """Delete the lock file and drop the lock (a no-op when not held); remove the folder when
        :meth:`acquire` created it and it is still empty."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                if os.fstat(self._fd).st_ino == os.stat(self.path).st_ino:
                    self.path.unlink()
            os.close(self._fd)
            self._fd = None
        self._remove_if_empty()

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
