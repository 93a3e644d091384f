"""The training configuration: one typed dataclass, validated on construction, read from TOML.

``TrainConfig`` holds every setting of ``esfit train``. A TOML file may write each key at the top
level or inside the table of its section (``[es]``, ``[rollout]``, ...; see :data:`SECTIONS`), and
``fitness`` may be a one-line spec or a ``[fitness]`` table in the fitness library's TOML form.
Command-line overrides are field names (``--sigma 0.01`` or ``--set sigma=0.01``). Everything is
checked before any model loads, and every error names the key, the rule, the value and the fix.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import sys
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["ConfigError", "SECTIONS", "TrainConfig", "import_plugins", "load_config", "parse_override"]

class ConfigError(ValueError):
    """A bad configuration value; the message names the key, the rule, the value and the fix."""


def _f(default, section: str, help: str, **kw):
    return field(default=default, metadata={"section": section, "help": help}, **kw)


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of a training run. See the README's "Configuration reference"."""

    # -- run
    model: str = _f("smollm2", "run", "embedded model name (smollm2) or a save_pretrained directory")
    dtype: str = _f("float32", "run", "float32, bfloat16 or float16 (ES keeps fp32 master weights)")
    device: str = _f("auto", "run", "auto (cuda when available, else cpu), cpu, cuda or cuda:N")
    output_dir: str = _f("runs/esfit", "run", "where metrics, evaluations and checkpoints go")
    generations: int = _f(20, "run", "ES generations to run (in total, counting resumed ones)")
    seed: int = _f(0, "run", "run seed: noise, prompt sampling and sampling noise derive from it")
    plugins: Any = _f((), "run", "modules (names or .py files) imported before the fitness is built: register your "
                      "own fitness components there")
    threads: int = _f(0, "run", "CPU threads per process for torch (0: torch's default); 1 is fastest on a busy machine")
    # -- data
    train_data: str = _f("", "data", "JSONL corpus (or a public file, see data_format) of training prompts and references")
    eval_data: str = _f("", "data", "held-out prompts and references (empty: no evaluation)")
    data_format: str = _f("jsonl", "data", "jsonl, or a loader of `esfit convert` (squad, squality, multiref, ...)")
    prompt_template: str = _f("{source}\n\n{prompt}", "data",
                              "user message built from a record's {source} and {prompt}; {prompt} alone when there is no source")
    system_prompt: str = _f("", "data", "system message (empty: the chat template's default)")
    max_train_prompts: int = _f(0, "data", "keep only the first N training prompts (0: all)")
    max_eval_prompts: int = _f(0, "data", "keep only the first N held-out prompts (0: all)")
    # -- fitness
    fitness: Any = _f("", "fitness", "one-line fitness spec or a [fitness] table (fitness library TOML form); "
                      "empty: fitness.DEFAULT_SPEC")
    pipeline: str = _f("", "extraction", "spaCy pipeline for extraction (empty: the embedded en_core_web_sm)")
    extraction_cache: str = _f("", "extraction", "sqlite file caching extractions (empty: none)")
    group_by_prompt: bool = _f(True, "es", "shape with one fitness per (member, prompt): a per-prompt mean (EGGROLL)")
    # -- es
    population_size: int = _f(16, "es", "members per generation (even when mirrored)")
    rank: int = _f(1, "es", "rank r of each member's perturbation A Bᵀ")
    sigma: float = _f(1e-3, "es", "noise scale per weight entry")
    learning_rate: float = _f(1e-3, "es", "step size on the gradient estimate")
    optimizer: str = _f("sgd", "es", "sgd or adam")
    momentum: float = _f(0.0, "es", "SGD momentum")
    weight_decay: float = _f(0.0, "es", "weight decay of the optimizer")
    shaping: str = _f("zscore", "es", "fitness shaping: zscore, rank or raw")
    mirrored: bool = _f(True, "es", "mirrored pairs (+E, −E)")
    target_modules: Any = _f("all-linear", "es", "layers to perturb: all-linear, a regex, or a list of names")
    # -- rollout
    rollouts_per_prompt: int = _f(1, "rollout", "completions per prompt and member")
    prompts_per_generation: int = _f(4, "rollout", "training prompts per generation, the same for every member (0: all)")
    max_new_tokens: int = _f(48, "rollout", "longest completion in tokens")
    greedy: bool = _f(True, "rollout", "argmax decoding; false samples at temperature with common random numbers")
    temperature: float = _f(0.7, "rollout", "sampling temperature (when greedy is false)")
    top_k: int = _f(0, "rollout", "top-k filter when sampling (0: off)")
    top_p: float = _f(1.0, "rollout", "nucleus filter when sampling (1: off)")
    max_rows: int = _f(0, "rollout", "most rows in one generate call (0: the whole population at once)")
    # -- eval
    eval_every: int = _f(5, "eval", "evaluate the centre model every N generations (0: only before and after)")
    eval_rollouts: int = _f(1, "eval", "completions per held-out prompt")
    samples_shown: int = _f(2, "eval", "sample completions printed per evaluation")
    # -- checkpoint
    checkpoint_every: int = _f(5, "checkpoint", "write a checkpoint every N generations (0: only at the end)")
    keep_checkpoints: int = _f(2, "checkpoint", "how many recent checkpoints to keep (0: all)")

    def __post_init__(self) -> None:
        for f in fields(self):
            _check_type(f.name, getattr(self, f.name), _hints()[f.name])
        if isinstance(self.target_modules, list):
            object.__setattr__(self, "target_modules", tuple(self.target_modules))
        if isinstance(self.plugins, str):
            object.__setattr__(self, "plugins", (self.plugins,) if self.plugins else ())
        object.__setattr__(self, "plugins", tuple(self.plugins))
        positive = ("generations", "population_size", "rank", "rollouts_per_prompt", "max_new_tokens", "eval_rollouts")
        for name in positive:
            _rule(getattr(self, name) >= 1, name, getattr(self, name), "an integer ≥ 1")
        non_negative = ("max_train_prompts", "max_eval_prompts", "prompts_per_generation", "top_k", "max_rows",
                        "eval_every", "samples_shown", "checkpoint_every", "keep_checkpoints", "seed", "threads")
        for name in non_negative:
            _rule(getattr(self, name) >= 0, name, getattr(self, name), "an integer ≥ 0 (0 switches it off)")
        _rule(self.sigma > 0, "sigma", self.sigma, "> 0 (typical 1e-3 to 3e-2)")
        _rule(self.learning_rate > 0, "learning_rate", self.learning_rate, "> 0")
        _rule(self.temperature > 0, "temperature", self.temperature, "> 0 (set greedy = true for argmax decoding)")
        _rule(0 < self.top_p <= 1, "top_p", self.top_p, "in (0, 1]")
        _rule(0 <= self.momentum < 1, "momentum", self.momentum, "in [0, 1)")
        _rule(self.weight_decay >= 0, "weight_decay", self.weight_decay, "≥ 0")
        _choice("dtype", self.dtype, ("float32", "bfloat16", "float16"))
        _choice("optimizer", self.optimizer, ("sgd", "adam"))
        _choice("shaping", self.shaping, ("zscore", "rank", "raw"))
        _rule(self.device == "auto" or self.device.split(":")[0] in ("cpu", "cuda", "mps"), "device", self.device,
              "auto, cpu, cuda or cuda:N")
        _rule(not self.mirrored or self.population_size % 2 == 0, "population_size", self.population_size,
              "even when mirrored = true (members come in ±E pairs); use an even number or mirrored = false")
        _rule("{prompt}" in self.prompt_template, "prompt_template", self.prompt_template,
              "a template containing {prompt} (and optionally {source})")
        _rule(bool(self.train_data), "train_data", self.train_data,
              "a path: set train_data in the config or pass --train-data corpus.jsonl")
        _rule(bool(self.output_dir), "output_dir", self.output_dir, "a directory path")

    # -- derived views -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON/TOML-friendly dict of every field (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` applied (validated again); unknown keys raise a ConfigError."""
        for key in changes:
            _known_key(key, "override")
        return dataclasses.replace(self, **changes)

    def validate_paths(self) -> None:
        """Check the files the run reads exist and the fitness spec builds (no model is loaded)."""
        from esfit.models import EMBEDDED_MODELS

        for key in ("train_data", "eval_data"):
            value = getattr(self, key)
            if value and not Path(value).is_file():
                raise ConfigError(f"{key}={value!r}: file not found; give the path of a JSONL corpus "
                                  f"(relative paths are resolved from {os.getcwd()})")
        if self.model not in EMBEDDED_MODELS and not Path(self.model).is_dir():
            raise ConfigError(f"model={self.model!r} is neither an embedded model ({', '.join(EMBEDDED_MODELS)}) nor a "
                              "directory; pass smollm2 or a folder written by save_pretrained (nothing is downloaded)")
        if self.data_format != "jsonl":
            from infoextract.loaders import LOADERS

            _choice("data_format", self.data_format, ("jsonl", *sorted(LOADERS)))
        from fitness import build_fitness

        import_plugins(self.plugins)
        try:
            build_fitness(self.fitness or None)
        except (ValueError, KeyError, TypeError, FileNotFoundError) as err:
            raise ConfigError(f"fitness={self.fitness!r} does not build: {err}") from None


def import_plugins(plugins: tuple[str, ...]) -> None:
    """Import each plugin (a module name, or a path to a ``.py`` file) once, so that the fitness
    components it registers exist before the fitness spec is built."""
    import importlib
    import importlib.util

    for plugin in plugins:
        try:
            if plugin.endswith(".py"):
                path = Path(plugin)
                name = f"esfit_plugin_{path.stem}"
                if name in sys.modules:
                    continue
                spec = importlib.util.spec_from_file_location(name, path)
                if spec is None or not path.is_file():
                    raise FileNotFoundError(f"no such file: {path}")
                module = importlib.util.module_from_spec(spec)
                sys.modules[name] = module
                spec.loader.exec_module(module)
            else:
                importlib.import_module(plugin)
        except Exception as err:
            raise ConfigError(f"plugins: importing {plugin!r} failed ({err!r}); give a module name on the "
                              "Python path or a path to a .py file") from None


# --- validation helpers -------------------------------------------------------------------------

def _hints() -> dict[str, Any]:
    return typing.get_type_hints(TrainConfig)


def _rule(ok: bool, key: str, value: Any, rule: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value!r} must be {rule}")


def _choice(key: str, value: Any, choices: tuple[str, ...]) -> None:
    _rule(value in choices, key, value, f"one of {', '.join(choices)}")


def _check_type(key: str, value: Any, hint: Any) -> None:
    if hint is Any:
        ok = key != "target_modules" or isinstance(value, str) or (
            isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value))
        ok = ok and (key != "fitness" or isinstance(value, (str, Mapping)))
        ok = ok and (key != "plugins" or isinstance(value, str) or (
            isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)))
        expected = "a string or a table" if key == "fitness" else "a string or a list of strings"
    elif hint is float:
        ok, expected = isinstance(value, (int, float)) and not isinstance(value, bool), "a number"
    elif hint is int:
        ok, expected = isinstance(value, int) and not isinstance(value, bool), "an integer"
    else:
        ok, expected = isinstance(value, hint), {bool: "true or false", str: "a string"}.get(hint, str(hint))
    if not ok:
        example = {"a number": "0.01", "an integer": "4", "true or false": "true"}.get(expected, '"..."')
        raise ConfigError(f"{key}={value!r} must be {expected} (got {type(value).__name__}); e.g. {key} = {example}")


def _known_key(key: str, where: str) -> None:
    names = [f.name for f in fields(TrainConfig)]
    if key not in names:
        close = difflib.get_close_matches(key, names, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(names)}"
        raise ConfigError(f"unknown {where} key {key!r}{hint}")


SECTIONS: dict[str, list[str]] = {}
for _field in fields(TrainConfig):
    SECTIONS.setdefault(_field.metadata["section"], []).append(_field.name)


# --- TOML and overrides ------------------------------------------------------------------------

def _flatten(data: Mapping[str, Any], origin: str) -> dict[str, Any]:
    """Top-level keys and section tables -> field name -> value, refusing unknown keys."""
    flat: dict[str, Any] = {}
    names = {f.name for f in fields(TrainConfig)}
    for key, value in data.items():
        if key == "fitness":
            flat["fitness"] = dict(value) if isinstance(value, Mapping) else value
        elif key in SECTIONS and isinstance(value, Mapping):
            for sub, sub_value in value.items():
                if sub not in SECTIONS[key]:
                    where = next((s for s, keys in SECTIONS.items() if sub in keys), None)
                    if where is None:
                        _known_key(sub, f"{origin} [{key}]")  # raises, suggesting a close name
                    raise ConfigError(f"{origin}: key {sub!r} does not belong in [{key}]; "
                                      f"move it to [{where}] or the top level")
                flat[sub] = sub_value
        elif key in names:
            flat[key] = value
        else:
            _known_key(key, origin)
    return flat


def _resolve_relative(flat: dict[str, Any], base: Path) -> None:
    """Paths in a config file are relative to the file, so a config works from any directory."""
    plugins = flat.get("plugins")
    if isinstance(plugins, (list, str)):
        flat["plugins"] = [str(base / p) if p.endswith(".py") and not Path(p).is_absolute() else p
                           for p in ([plugins] if isinstance(plugins, str) else plugins)]
    for key in ("train_data", "eval_data", "extraction_cache", "output_dir"):
        value = flat.get(key)
        if isinstance(value, str) and value and not Path(value).is_absolute():
            flat[key] = os.path.normpath(base / value)
    model = flat.get("model")
    if isinstance(model, str) and (base / model).is_dir():
        flat["model"] = str(base / model)
    fit = flat.get("fitness")
    if isinstance(fit, str) and fit.strip().endswith(".toml") and not Path(fit).is_absolute():
        flat["fitness"] = str(base / fit)


def parse_override(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` (VALUE read as a TOML value, else as a bare string) -> ``(key, value)``."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must be KEY=VALUE, e.g. sigma=0.01")
    key, raw = (s.strip() for s in text.split("=", 1))
    key = key.replace("-", "_")
    _known_key(key, "override")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key, value


def load_config(path: str | os.PathLike | None = None, overrides: Mapping[str, Any] | None = None) -> TrainConfig:
    """A validated :class:`TrainConfig` from an optional TOML file and ``overrides`` (field -> value).

    Paths inside the file are relative to the file; overrides are taken as given (relative to the
    working directory). Raises :class:`ConfigError` naming the file and key.
    """
    flat: dict[str, Any] = {}
    origin = "config"
    if path is not None:
        path = Path(path)
        origin = str(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} not found; pass --config train.toml (see datasets/demo/train.toml)")
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{path}: invalid TOML ({err}); fix the line it names") from None
        flat = _flatten(data, origin)
        _resolve_relative(flat, path.parent)
    for key, value in (overrides or {}).items():
        _known_key(key, "override")
        flat[key] = value
    try:
        return TrainConfig(**flat)
    except ConfigError as err:
        raise ConfigError(f"{origin}: {err}") from None
