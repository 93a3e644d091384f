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
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["STATE_FILE", "latest_checkpoint", "load_checkpoint", "load_trainer_state", "save_checkpoint"]

STATE_FILE = "trainer_state.pt"
LATEST_FILE = "latest"
FORMAT_VERSION = 1
_NAME = re.compile(r"^gen-(\d{6,})$")


def _fsync_tree(folder: Path) -> None:
    """Flush every file of ``folder`` to disk, so that the rename below publishes complete files."""
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())


def _write_text_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


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
        keep: keep only the ``keep`` most recent checkpoints (0 keeps all).

    Returns the checkpoint folder.
    """
    if keep < 0:
        raise ValueError(f"keep={keep} must be ≥ 0 (0 keeps every checkpoint)")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    name = f"gen-{es.generation:06d}"
    final = root / name
    for stale in root.glob(".staging-*"):  # left by a process killed while writing
        shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=f".staging-{name}-", dir=root))
    try:
        model.save_pretrained(staging, safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(staging)
        state = {
            "format_version": FORMAT_VERSION,
            "es": es.state_dict(),
            "extra": dict(extra or {}),
            "torch_rng": torch.get_rng_state(),
        }
        torch.save(state, staging / STATE_FILE)
        _fsync_tree(staging)
        if final.exists():  # the same generation written again (a re-run): replace it whole
            old = root / f".staging-old-{name}-{os.getpid()}"
            os.replace(final, old)
            shutil.rmtree(old, ignore_errors=True)
        os.replace(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _write_text_atomic(root / LATEST_FILE, name + "\n")
    if keep:
        for old in _complete(root)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def _complete(root: Path) -> list[Path]:
    """Complete checkpoint folders under ``root``, oldest first."""
    found = [p for p in root.iterdir() if _NAME.match(p.name) and (p / STATE_FILE).is_file()] if root.is_dir() else []
    return sorted(found, key=lambda p: int(_NAME.match(p.name).group(1)))


def latest_checkpoint(path: str | os.PathLike) -> Path | None:
    """The checkpoint to resume from: ``path`` itself when it is a checkpoint folder, else the
    one ``path/latest`` names (or the newest complete one), searching ``path/checkpoints`` too.
    None when there is none."""
    path = Path(path)
    if (path / STATE_FILE).is_file():
        return path
    for root in (path, path / "checkpoints"):
        pointer = root / LATEST_FILE
        if pointer.is_file():
            named = root / pointer.read_text(encoding="utf-8").strip()
            if (named / STATE_FILE).is_file():
                return named
        done = _complete(root)
        if done:
            return done[-1]
    return None


def load_trainer_state(checkpoint: str | os.PathLike) -> dict[str, Any]:
    """The saved trainer state of a checkpoint folder: ``{"es", "extra", ...}``."""
    path = Path(checkpoint) / STATE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {checkpoint} is not a checkpoint folder written by save_checkpoint")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path} has checkpoint format {state.get('format_version')!r}; "
                         f"this version reads format {FORMAT_VERSION}")
    return state


def _read_weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    index = checkpoint / "model.safetensors.index.json"
    if index.is_file():  # a sharded save
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        weights: dict[str, torch.Tensor] = {}
        for shard in shards:
            weights.update(load_file(checkpoint / shard))
        return weights
    single = checkpoint / "model.safetensors"
    if not single.is_file():
        raise FileNotFoundError(f"{single} not found: the checkpoint has no safetensors weights")
    return load_file(single)


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
