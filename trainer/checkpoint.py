"""Atomic checkpoints of an ES run: the centre model and the trainer state, resumable bit for bit.

A checkpoint is a folder ``<root>/gen-000012/`` holding the centre model written by
``save_pretrained`` (safetensors) and ``trainer_state.pt`` (the generation, the optimizer states,
the fp32 master weights of a half-precision model, the run seed and any extra state such as the
run's configuration). It is written into a hidden staging folder, flushed to disk and renamed
into place; then the ``latest`` file is replaced. A process killed at any moment therefore
leaves either the previous checkpoint or the new one, never a half-written folder that a resume
would read. Nothing else is needed to resume: the noise, the prompt sample and the sampling noise
of every generation are derived from (seed, generation), so a resumed run repeats exactly what an
uninterrupted run would have done.

Reading is careful too. ``trainer_state.pt`` holds plain data only (tensors, numbers, strings, lists,
dicts): it is read with ``torch.load(weights_only=True)`` and nothing in it is executed or imported.
A damaged checkpoint (a truncated or empty state file, a truncated safetensors file) raises a
:class:`CheckpointError` that names the damaged file and the newest intact checkpoint before it;
a resume never falls back on its own. A write that fails (a full disk) raises a
:class:`CheckpointWriteError` and leaves the previous checkpoint and the ``latest`` pointer as
they were.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["STATE_FILE", "CheckpointError", "CheckpointWriteError", "check_weights", "intact_before",
           "latest_checkpoint", "load_checkpoint", "load_trainer_state", "save_checkpoint", "verify_checkpoint"]

STATE_FILE = "trainer_state.pt"
LATEST_FILE = "latest"
FORMAT_VERSION = 1
_NAME = re.compile(r"^gen-(\d{6,})$")


class CheckpointError(ValueError):
    """A checkpoint that cannot be read. ``path`` is the damaged file, ``problem`` what is wrong with
    it ("is damaged: ..."), ``checkpoint`` its folder and ``previous`` the newest intact checkpoint
    before it (None when there is none)."""

    def __init__(self, path: Path, problem: str, *, checkpoint: Path, previous: Path | None):
        self.path, self.checkpoint, self.previous, self.problem = Path(path), Path(checkpoint), previous, problem
        if previous is not None:
            fix = f"the newest intact checkpoint before it is {previous}: resume from that folder instead"
        else:
            fix = f"no older intact checkpoint is left beside it in {Path(checkpoint).parent}: start the run again"
        super().__init__(f"{path} {problem}; {fix}")


class CheckpointWriteError(OSError):
    """Writing a checkpoint failed (e.g. the disk is full). Nothing was published: ``previous``
    (the checkpoint ``latest`` still names, None when there is none) is intact."""

    def __init__(self, checkpoint: Path, err: OSError, previous: Path | None):
        self.checkpoint, self.previous = Path(checkpoint), previous
        reason = err.strerror or str(err)
        kept = (f"the previous checkpoint {previous} is intact and still the latest" if previous is not None
                else "no earlier checkpoint exists")
        self.message = f"writing the checkpoint {checkpoint} failed ({reason}); nothing of it was kept and {kept}"
        super().__init__(err.errno, self.message)

    def __str__(self) -> str:
        return self.message


def _fsync_tree(folder: Path) -> None:
    """Flush every file of ``folder`` to disk, so that the rename below publishes complete files."""
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())


def _write_text_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_state(state: dict[str, Any], path: Path) -> None:
    """``torch.save`` of the trainer state (one function, so that tests can make it fail)."""
    torch.save(state, path)


def save_checkpoint(
    root: str | os.PathLike,
    model: nn.Module,
    es,
    *,
    tokenizer=None,
    extra: dict[str, Any] | None = None,
    keep: int = 0,
) -> Path:
    """Write ``<root>/gen-<es.generation>`` atomically and point ``<root>/latest`` at it.

    Args:
        root: the checkpoint folder of the run (created if needed).
        model: the centre model (its weights are the ES centre after ``tell``).
        es: the ``EvolutionStrategy`` whose ``state_dict()`` is saved.
        tokenizer: saved beside the model when given, so the folder loads on its own.
        extra: anything else ``torch.save`` can store with ``weights_only`` loading (plain
            Python values and tensors): the run configuration, the metrics so far.
        keep: keep only the ``keep`` most recent checkpoints up to this one (0 keeps all); a newer
            folder (left by a run that was resumed from an earlier checkpoint) is not counted.

    Returns the checkpoint folder.
    """
    if keep < 0:
        raise ValueError(f"keep={keep} must be ≥ 0 (0 keeps every checkpoint)")
    root = Path(root)
    name = f"gen-{es.generation:06d}"
    final = root / name
    previous = latest_checkpoint(root)
    staging = old = None
    try:
        root.mkdir(parents=True, exist_ok=True)
        for stale in root.glob(".staging-*"):  # left by a process killed while writing
            shutil.rmtree(stale, ignore_errors=True)
        staging = Path(tempfile.mkdtemp(prefix=f".staging-{name}-", dir=root))
        model.save_pretrained(staging, safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(staging)
        state = {
            "format_version": FORMAT_VERSION,
            "es": es.state_dict(),
            "extra": dict(extra or {}),
            "torch_rng": torch.get_rng_state(),
        }
        _write_state(state, staging / STATE_FILE)
        _fsync_tree(staging)
        if final.exists():  # the same generation written again (a re-run): replace it whole
            old = root / f".staging-old-{name}-{os.getpid()}"
            os.replace(final, old)
        os.replace(staging, final)
        _write_text_atomic(root / LATEST_FILE, name + "\n")
    except OSError as err:
        if old is not None and old.exists() and not final.exists():
            os.replace(old, final)  # the folder this write was to replace goes back into place
            old = None
        raise CheckpointWriteError(final, err, previous) from err
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    if keep:
        # only checkpoints up to this one count: newer folders (a run resumed from an earlier
        # checkpoint) never push out the one just written or the one it was resumed from
        mine = [c for c in _complete(root) if int(_NAME.match(c.name).group(1)) <= es.generation]
        for done in mine[:-keep]:
            shutil.rmtree(done, ignore_errors=True)
    return final


def _complete(root: Path) -> list[Path]:
    """Complete checkpoint folders under ``root``, oldest first."""
    found = [p for p in root.iterdir() if _NAME.match(p.name) and (p / STATE_FILE).is_file()] if root.is_dir() else []
    return sorted(found, key=lambda p: int(_NAME.match(p.name).group(1)))


def latest_checkpoint(path: str | os.PathLike) -> Path | None:
    """The checkpoint to resume from: ``path`` itself when it is a checkpoint folder, else the
    one ``path/latest`` names (or the newest complete one), searching ``path/checkpoints`` too.
    None when there is none. ``latest`` is trusted only when it holds a plain ``gen-NNNNNN`` name:
    an edited pointer cannot lead outside the folder."""
    path = Path(path)
    if (path / STATE_FILE).is_file():
        return path
    for root in (path, path / "checkpoints"):
        pointer = root / LATEST_FILE
        if pointer.is_file():
            try:
                name = pointer.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError):
                name = ""
            if _NAME.match(name) and (root / name / STATE_FILE).is_file():
                return root / name
        done = _complete(root)
        if done:
            return done[-1]
    return None


def intact_before(checkpoint: str | os.PathLike) -> Path | None:
    """The newest checkpoint beside ``checkpoint`` (same folder, older generation) that
    :func:`verify_checkpoint` accepts; None when there is none."""
    checkpoint = Path(checkpoint)
    match = _NAME.match(checkpoint.name)
    limit = int(match.group(1)) if match else None
    for candidate in reversed(_complete(checkpoint.parent)):
        if candidate == checkpoint or (limit is not None and int(_NAME.match(candidate.name).group(1)) >= limit):
            continue
        try:
            verify_checkpoint(candidate, _look_back=False)
        except CheckpointError:
            continue
        return candidate
    return None


def _damaged(path: Path, problem: str, checkpoint: Path, look_back: bool) -> CheckpointError:
    previous = intact_before(checkpoint) if look_back else None
    return CheckpointError(path, problem, checkpoint=checkpoint, previous=previous)


def _read_state(path: Path, checkpoint: Path, look_back: bool) -> dict[str, Any]:
    """The state file as plain data, or a :class:`CheckpointError` saying what is wrong with it."""
    if path.stat().st_size == 0:
        raise _damaged(path, "is damaged: the file is empty (0 bytes; the disk may have filled while it was "
                       "written)",
                       checkpoint, look_back)
    try:
        # weights_only: tensors and plain Python values only; no object is built and no code runs
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        if found:  # the weights-only unpickler met a class or function: code a full load would run
            raise _damaged(path, "holds objects other than plain data (tensors, numbers, strings, lists, dicts): "
                           f"{found.group(1)}; it was not loaded, and nothing in it ran; only a trainer_state.pt "
                           "written by save_checkpoint can be resumed", checkpoint, look_back) from None
        raise _damaged(path, "is damaged: it is not a readable torch file (its pickle data is broken)", checkpoint,
                       look_back) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, KeyError, AttributeError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise _damaged(path, f"is damaged: it is truncated or not a torch file ({type(err).__name__}: "
                       f"{reason[:200]})",
                       checkpoint, look_back) from None
    if not isinstance(state, dict) or not isinstance(state.get("es"), dict) or not isinstance(state.get("extra"), dict):
        raise _damaged(path, "is damaged: it does not hold a trainer state (a dict with 'es' and 'extra' "
                       "entries)", checkpoint, look_back)
    if state.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path} has checkpoint format {state.get('format_version')!r}; "
                         f"this version reads format {FORMAT_VERSION}")
    return state


def load_trainer_state(checkpoint: str | os.PathLike, *, _look_back: bool = True) -> dict[str, Any]:
    """The saved trainer state of a checkpoint folder: ``{"es", "extra", ...}``, plain data only.

    Raises ``FileNotFoundError`` for a folder without the state file and :class:`CheckpointError`
    for a damaged one (naming the newest intact checkpoint before it)."""
    checkpoint = Path(checkpoint)
    path = checkpoint / STATE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {checkpoint} is not a checkpoint folder written by save_checkpoint")
    return _read_state(path, checkpoint, _look_back)


def _weight_files(checkpoint: Path, look_back: bool) -> list[Path]:
    index = checkpoint / "model.safetensors.index.json"
    if index.is_file():  # a sharded save
        try:
            shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as err:
            raise _damaged(index, f"is damaged: it is not a safetensors index ({type(err).__name__}: {err})",
                           checkpoint, look_back) from None
        for shard in shards:  # plain names only: an edited index cannot point outside the folder
            if not isinstance(shard, str) or Path(shard).name != shard or not (checkpoint / shard).is_file():
                raise _damaged(index, f"is damaged: it names the shard {shard!r}, which is not a file of the "
                               "folder", checkpoint, look_back)
        return [checkpoint / shard for shard in shards]
    single = checkpoint / "model.safetensors"
    if not single.is_file():
        raise _damaged(single, "is missing: the checkpoint has no safetensors weights", checkpoint, look_back)
    return [single]


def check_weights(checkpoint: str | os.PathLike, *, _look_back: bool = True) -> list[Path]:
    """Check that every safetensors file of a checkpoint (or model) folder is complete, by reading
    its header (cheap: no tensor is loaded); returns the files. Raises :class:`CheckpointError`
    naming a missing, truncated or damaged file."""
    from safetensors import SafetensorError, safe_open

    checkpoint = Path(checkpoint)
    files = _weight_files(checkpoint, _look_back)
    for f in files:
        try:
            with safe_open(f, framework="pt") as handle:
                handle.keys()
        except (SafetensorError, OSError, ValueError) as err:
            reason = str(err).strip() or type(err).__name__
            raise _damaged(f, f"is damaged: it is truncated or not a safetensors file ({reason[:200]})", checkpoint,
                           _look_back) from None
    return files


def verify_checkpoint(checkpoint: str | os.PathLike, *, _look_back: bool = True) -> dict[str, Any]:
    """Check a checkpoint folder before a resume reads it: the state file loads as plain data and
    the safetensors files are complete. Returns the state; raises :class:`CheckpointError`
    naming the damaged file and the newest intact checkpoint before it."""
    state = load_trainer_state(checkpoint, _look_back=_look_back)
    check_weights(checkpoint, _look_back=_look_back)
    return state


def _read_weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    weights: dict[str, torch.Tensor] = {}
    for f in check_weights(checkpoint):
        weights.update(load_file(f))
    return weights


@torch.no_grad()
def load_checkpoint(checkpoint: str | os.PathLike, es, *, load_weights: bool = True) -> dict[str, Any]:
    """Restore ``es`` (and, with ``load_weights``, the weights of ``es.model``) from a checkpoint
    folder, or from the latest checkpoint under a run folder. Returns the saved ``extra`` dict.

    Weights that ``save_pretrained`` left out because they are tied to another (the output head
    tied to the embeddings) stay tied; any other missing or unexpected weight raises.
    """
    found = latest_checkpoint(checkpoint)
    if found is None:
        raise FileNotFoundError(f"no checkpoint in {checkpoint} (looked for gen-*/{STATE_FILE}, also under checkpoints/)")
    checkpoint = found
    state = load_trainer_state(checkpoint)
    if load_weights:
        model = es.model
        weights = _read_weights(checkpoint)
        missing, unexpected = model.load_state_dict(weights, strict=False)
        params = dict(model.named_parameters(remove_duplicate=False))
        loaded = {params[k].data_ptr() for k in weights if k in params}
        untied = [k for k in missing if k not in params or params[k].data_ptr() not in loaded]
        if untied or unexpected:
            raise ValueError(f"{checkpoint} does not match the model: missing {untied[:5]}, unexpected {unexpected[:5]}; "
                             "resume with the model the run was started with")
    es.load_state_dict(state["es"])
    return state["extra"]
