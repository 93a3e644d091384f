"""The training configuration: the libraries' own config dataclasses, composed, read from TOML.

:class:`TrainConfig` is made of sections, one dataclass each, every field declared once with its
rule in the class that owns it: :class:`RunConfig`, :class:`DataConfig`, :class:`ScoringConfig`
(the ``fitness`` key and the ``[extraction]`` table), the trainer's :class:`~trainer.ESConfig` and
:class:`~trainer.RolloutConfig`, :class:`EvalConfig` and :class:`CheckpointConfig`. A TOML file may
write each key at the top level or inside its table (``[es]``, ``[rollout]``, ...; see
:data:`SECTIONS`); ``fitness`` may be a one-line spec or a ``[fitness]`` table in the fitness
library's TOML form. Keys are flat (``config.sigma`` is ``config.es.sigma``); command-line options
are generated from the same fields (:mod:`esfit.commands.train`). Choice lists come from the
registries (optimizers, shapers, schedules), so a newly registered one can be chosen at once.
Everything is checked before any model loads, and every error names the key, the rule, the value
and the fix.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import sys
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from trainer.es import ESConfig
from trainer.fields import config_field as _f
from trainer.rollout import RolloutConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["ConfigError", "KEYS", "SECTIONS", "SECTION_CLASSES", "CheckpointConfig", "DataConfig", "EvalConfig", "RunConfig", "ScoringConfig",
           "TrainConfig", "load_config", "parse_override", "parse_value", "reference_table", "resume_config"]

DTYPES = ("float32", "bfloat16", "float16")


class ConfigError(ValueError):
    """A bad configuration value; the message names the key, the rule, the value and the fix."""


def _rule(ok: bool, key: str, value: Any, rule: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value!r} must be {rule}")


def _at_least(obj: Any, names: Sequence[str], low: int) -> None:
    for name in names:
        value = getattr(obj, name)
        _rule(value >= low, name, value, "an integer ≥ 1" if low else "an integer ≥ 0 (0 switches it off)")


# --- the esfit sections -------------------------------------------------------------------------

@dataclass(frozen=True)
class RunConfig:
    """Which model, where the run writes, for how long."""

    model: str = _f("smollm2", "embedded model name (smollm2) or a save_pretrained directory")
    dtype: str = _f("float32", "float32, bfloat16 or float16 (ES keeps fp32 master weights)", choices=DTYPES)
    device: str = _f("auto", "auto (cuda when available, else cpu), cpu, cuda or cuda:N")
    output_dir: str = _f("runs/esfit", "where metrics, evaluations and checkpoints go")
    generations: int = _f(20, "ES generations to run (in total, counting resumed ones)")
    plugins: tuple[str, ...] = _f((), "modules (names or .py files) imported before the fitness is built: register "
                                  "your own fitness components there")
    threads: int = _f(0, "CPU threads per process for torch (0: torch's default); 1 is fastest on a busy machine")

    def __post_init__(self) -> None:
        plugins = self.plugins
        object.__setattr__(self, "plugins", ((plugins,) if plugins else ()) if isinstance(plugins, str) else tuple(plugins))
        _at_least(self, ("generations",), 1)
        _at_least(self, ("threads",), 0)
        _rule(self.dtype in DTYPES, "dtype", self.dtype, f"one of {', '.join(DTYPES)}")
        _rule(self.device == "auto" or self.device.split(":")[0] in ("cpu", "cuda", "mps"), "device", self.device,
              "auto, cpu, cuda or cuda:N")
        _rule(bool(self.output_dir), "output_dir", self.output_dir, "a directory path")


@dataclass(frozen=True)
class DataConfig:
    """The prompts and their references, and the message the model sees."""

    train_data: str = _f("", "JSONL corpus (or a public file, see data_format) of training prompts and references")
    eval_data: str = _f("", "held-out prompts and references (empty: no evaluation)")
    validation_data: str = _f("", "validation prompts for early stopping and choosing settings, never the held-out "
                              "ones (empty: none)")
    data_format: str = _f("jsonl", "jsonl, or a loader of `esfit convert` (squad, squality, multiref, ...)")
    prompt_template: str = _f("{source}\n\n{prompt}", "user message built from a record's {source} and {prompt}; "
                              "{prompt} alone when there is no source")
    system_prompt: str = _f("", "system message (empty: the chat template's default)")
    max_train_prompts: int = _f(0, "keep only the first N training prompts (0: all)")
    max_eval_prompts: int = _f(0, "keep only the first N held-out (and validation) prompts (0: all)")

    def __post_init__(self) -> None:
        from esfit.prompts import check_prompt_template

        _at_least(self, ("max_train_prompts", "max_eval_prompts"), 0)
        _rule("{prompt}" in self.prompt_template, "prompt_template", self.prompt_template,
              "a template containing {prompt} (and optionally {source})")
        try:
            check_prompt_template(self.prompt_template)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        _rule(bool(self.train_data), "train_data", self.train_data,
              "a path: set train_data in the config or pass --train-data corpus.jsonl")


@dataclass(frozen=True)
class ScoringConfig:
    """The fitness and the extraction it reads."""

    fitness: str | Mapping = _f("", "one-line fitness spec or a [fitness] table (fitness library TOML form); "
                                "empty: fitness.DEFAULT_SPEC", table="fitness")
    pipeline: str = _f("", "spaCy pipeline for extraction (empty: the embedded en_core_web_sm)", table="extraction")
    extraction_cache: str = _f("", "sqlite file caching extractions (empty: none)", table="extraction")


@dataclass(frozen=True)
class EvalConfig:
    """How often and how the centre model is evaluated."""

    eval_every: int = _f(5, "evaluate the centre model every N generations (0: only before and after)")
    eval_rollouts: int = _f(1, "completions per held-out prompt")
    samples_shown: int = _f(2, "sample completions printed per evaluation")
    early_stopping_patience: int = _f(0, "stop after this many validation evaluations without improvement and "
                                      "keep the best weights (0: off; needs validation_data)")

    def __post_init__(self) -> None:
        _at_least(self, ("eval_rollouts",), 1)
        _at_least(self, ("eval_every", "samples_shown", "early_stopping_patience"), 0)


@dataclass(frozen=True)
class CheckpointConfig:
    checkpoint_every: int = _f(5, "write a checkpoint every N generations (0: only at the end)")
    keep_checkpoints: int = _f(2, "how many recent checkpoints to keep (0: all)")

    def __post_init__(self) -> None:
        _at_least(self, ("checkpoint_every", "keep_checkpoints"), 0)


# where each section's keys sit in a TOML file; `table` metadata and TABLE_OF_KEY move single keys
_SECTION_TABLES = {"run": "run", "data": "data", "scoring": "fitness", "es": "es", "rollout": "rollout",
                   "eval": "eval", "checkpoint": "checkpoint"}
_MOVED = {"seed": "run"}  # the ES seed is the run's seed: noise, prompt sampling, sampling noise
# the command's defaults where they differ from the trainer library's (a short CPU run, EGGROLL groups)
_DEFAULTS = {"es": dict(population_size=16, group_by_prompt=True),
             "rollout": dict(max_new_tokens=48, greedy=True, temperature=0.7, prompts_per_generation=4)}
SECTION_CLASSES = {"run": RunConfig, "data": DataConfig, "scoring": ScoringConfig, "es": ESConfig,
                  "rollout": RolloutConfig, "eval": EvalConfig, "checkpoint": CheckpointConfig}


@dataclass(frozen=True)
class Key:
    """One configuration key: its section attribute, TOML table, dataclass field and type hint."""

    name: str
    section: str
    table: str
    field: dataclasses.Field
    hint: Any

    @property
    def help(self) -> str:
        return self.field.metadata.get("help", "")

    @property
    def none_as(self) -> Any:
        return self.field.metadata.get("none_as")

    @property
    def default(self) -> Any:
        if self.name in _DEFAULTS.get(self.section, {}):
            return _DEFAULTS[self.section][self.name]
        f = self.field
        return f.default_factory() if f.default is dataclasses.MISSING else f.default


def _keys() -> dict[str, Key]:
    keys: dict[str, Key] = {}
    for section, cls in SECTION_CLASSES.items():
        hints = typing.get_type_hints(cls)
        for f in fields(cls):
            if f.name in keys:  # pragma: no cover - a programming error in the sections
                raise RuntimeError(f"config key {f.name!r} is declared in two sections")
            table = _MOVED.get(f.name, f.metadata.get("table", _SECTION_TABLES[section]))
            keys[f.name] = Key(f.name, section, table, f, hints[f.name])
    return keys


KEYS: dict[str, Key] = _keys()
SECTIONS: dict[str, list[str]] = {}  # TOML table -> its keys, in declaration order
for _key in KEYS.values():
    SECTIONS.setdefault(_key.table, []).append(_key.name)


# --- values: types, TOML's missing null, paths --------------------------------------------------

def _type_ok(value: Any, hint: Any) -> tuple[bool, str]:
    """Whether ``value`` fits ``hint`` (the few types config fields use), and the type's name."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", ())):
        results = [_type_ok(value, a) for a in args if a is not type(None)]
        return (value is None and type(None) in args) or any(ok for ok, _ in results), " or ".join(n for _, n in results)
    if hint is bool:
        return isinstance(value, bool), "true or false"
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool), "an integer"
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool), "a number"
    if hint is str:
        return isinstance(value, str), "a string"
    if origin in (tuple, Sequence, list) or hint in (Sequence,):
        ok = isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
        return ok, "a list of strings"
    if origin in (Mapping, dict) or hint is Mapping:
        return isinstance(value, Mapping), "a table"
    return True, str(hint)


def _check_value(key: Key, value: Any) -> Any:
    """The value as the field takes it: TOML's stand-in for None converted; types checked."""
    if key.none_as is not None and value == key.none_as and not isinstance(value, bool):
        value = None
    if key.name == "plugins" and isinstance(value, str):
        value = [value] if value else []
    if key.name == "target_modules" and isinstance(value, (list, tuple)) and not value:
        raise ConfigError("target_modules=[] must name at least one layer (or be 'all-linear')")
    ok, expected = _type_ok(value, key.hint)
    if not ok:
        example = {"a number": "0.01", "an integer": "4", "true or false": "true"}.get(expected, '"..."')
        raise ConfigError(f"{key.name}={value!r} must be {expected} (got {type(value).__name__}); "
                          f"e.g. {key.name} = {example}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{key.name}={value!r} must be a finite number")
    return value


def _known_key(key: str, where: str) -> Key:
    if key not in KEYS:
        close = difflib.get_close_matches(key, list(KEYS), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(KEYS)}"
        raise ConfigError(f"unknown {where} key {key!r}{hint}")
    return KEYS[key]


# --- the whole configuration --------------------------------------------------------------------

@dataclass(frozen=True)
class TrainConfig:
    """Every setting of a training run, in sections; ``config.KEY`` reads any key of any section.

    Build it with :func:`load_config` (TOML and overrides, flat keys) or :meth:`from_flat`; the
    sections are the libraries' own dataclasses, so ``config.es`` is an :class:`~trainer.ESConfig`
    and ``config.rollout`` a :class:`~trainer.RolloutConfig`, ready for the trainer.
    """

    run: RunConfig = field(default_factory=RunConfig)
    data: DataConfig = field(default_factory=lambda: DataConfig())
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    es: ESConfig = field(default_factory=lambda: ESConfig(**_DEFAULTS["es"]))
    rollout: RolloutConfig = field(default_factory=lambda: RolloutConfig(**_DEFAULTS["rollout"]))
    eval: EvalConfig = field(default_factory=EvalConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)

    def __getattr__(self, name: str) -> Any:
        key = KEYS.get(name)
        if key is None:
            raise AttributeError(f"TrainConfig has no key {name!r}")
        return getattr(object.__getattribute__(self, key.section), name)

    @classmethod
    def from_flat(cls, flat: Mapping[str, Any]) -> TrainConfig:
        """A config from flat keys (missing keys take their defaults); every value checked."""
        per_section: dict[str, dict[str, Any]] = {s: dict(_DEFAULTS.get(s, {})) for s in SECTION_CLASSES}
        for name, value in flat.items():
            key = _known_key(name, "config")
            per_section[key.section][name] = _check_value(key, value)
        built = {}
        for section, cls_ in SECTION_CLASSES.items():
            try:
                built[section] = cls_(**per_section[section])
            except ConfigError:
                raise
            except (ValueError, TypeError) as err:  # the trainer's own rules
                raise ConfigError(str(err)) from None
        return cls(**built)

    def to_dict(self) -> dict[str, Any]:
        """Every key, flat, JSON-friendly (tuples as lists, None as its TOML stand-in)."""
        out = {}
        for name, key in KEYS.items():
            value = getattr(self, name)
            if value is None and key.none_as is not None:
                value = key.none_as
            out[name] = list(value) if isinstance(value, tuple) else value
        return out

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` (flat keys) applied and validated again."""
        return TrainConfig.from_flat({**self.to_dict(), **changes})

    def validate_paths(self) -> None:
        """Check the files the run reads exist and the fitness spec builds (no model is loaded)."""
        from esfit.models import EMBEDDED_MODELS
        from esfit.plugins import import_plugins

        for key in ("train_data", "eval_data", "validation_data"):
            value = getattr(self, key)
            if value and not Path(value).is_file():
                raise ConfigError(f"{key}={value!r}: file not found; give the path of a JSONL corpus "
                                  f"(relative paths are resolved from {os.getcwd()})")
        if self.model not in EMBEDDED_MODELS and not Path(self.model).is_dir():
            raise ConfigError(f"model={self.model!r} is neither an embedded model ({', '.join(EMBEDDED_MODELS)}) nor a "
                              "directory; pass smollm2 or a folder written by save_pretrained (nothing is downloaded)")
        if self.data_format != "jsonl":
            from infoextract.loaders import LOADERS

            choices = ("jsonl", *sorted(LOADERS))
            _rule(self.data_format in choices, "data_format", self.data_format, f"one of {', '.join(choices)}")
        if self.early_stopping_patience and not self.validation_data:
            raise ConfigError(f"early_stopping_patience={self.early_stopping_patience} needs validation_data: set it "
                              "to a corpus of validation prompts (never the held-out ones), or set the patience to 0")
        from fitness import build_fitness

        try:
            import_plugins(self.plugins)
        except ValueError as err:  # esfit.plugins.PluginError: names the plugin, the problem and the fix
            raise ConfigError(f"plugins: importing {getattr(err, 'plugin', '?')!r} failed: {err}") from None
        try:
            build_fitness(self.fitness or None)
        except (ValueError, KeyError, TypeError, FileNotFoundError) as err:
            raise ConfigError(f"fitness={self.fitness!r} does not build: {err}") from None


# --- TOML, overrides, resume ---------------------------------------------------------------------

def _flatten(data: Mapping[str, Any], origin: str) -> dict[str, Any]:
    """Top-level keys and section tables -> key -> value, refusing unknown keys and wrong tables."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if key == "fitness":
            flat["fitness"] = dict(value) if isinstance(value, Mapping) else value
        elif key in SECTIONS and isinstance(value, Mapping):
            for sub, sub_value in value.items():
                if sub not in SECTIONS[key]:
                    where = _known_key(sub, f"{origin} [{key}]").table  # raises for an unknown key
                    raise ConfigError(f"{origin}: key {sub!r} does not belong in [{key}]; "
                                      f"move it to [{where}] or the top level")
                flat[sub] = sub_value
        else:
            _known_key(key, origin)
            flat[key] = value
    return flat


def _resolve_relative(flat: dict[str, Any], base: Path) -> None:
    """Paths in a config file are relative to the file, so a config works from any directory."""
    plugins = flat.get("plugins")
    if isinstance(plugins, (list, str)):
        flat["plugins"] = [str(base / p) if p.endswith(".py") and not Path(p).is_absolute() else p
                           for p in ([plugins] if isinstance(plugins, str) else plugins)]
    for key in ("train_data", "eval_data", "validation_data", "extraction_cache", "output_dir"):
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
    return key, parse_value(raw)


def parse_value(raw: str) -> Any:
    """A command-line value read as a TOML value (``3e-3``, ``true``, ``"rank"``), else the bare string."""
    raw = raw.strip()
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def load_config(path: str | os.PathLike | None = None, overrides: Mapping[str, Any] | None = None) -> TrainConfig:
    """A validated :class:`TrainConfig` from an optional TOML file and ``overrides`` (key -> value).

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
        except UnicodeDecodeError as err:
            raise ConfigError(f"{path}: not UTF-8 text ({err}); save the file as UTF-8") from None
        flat = _flatten(data, origin)
        _resolve_relative(flat, path.parent)
    for key, value in (overrides or {}).items():
        _known_key(key, "override")
        flat[key] = value
    try:
        return TrainConfig.from_flat(flat)
    except ConfigError as err:
        raise ConfigError(f"{origin}: {err}") from None


def resume_config(saved: Mapping[str, Any], run_dir: str | os.PathLike, overrides: Mapping[str, Any] | None = None,
                  ) -> TrainConfig:
    """The configuration of a resumed run: the run's saved settings, then ``overrides``.

    Two saved values are never trusted: the output folder is the folder being resumed
    (``run_dir``), wherever the run first wrote, and plugins (code) are imported only when the
    user names them again in ``overrides``.
    """
    known = {k: v for k, v in saved.items() if k in KEYS and k not in ("output_dir", "plugins")}
    return load_config(None, {**known, "output_dir": str(run_dir), **dict(overrides or {})})


def reference_table() -> str:
    """The README's "Configuration reference" table, generated from the fields."""
    rows = ["| section | key | default | meaning |", "|---|---|---|---|"]
    for table, names in SECTIONS.items():
        for name in names:
            key = KEYS[name]
            default = key.default
            if default is None and key.none_as is not None:
                default = key.none_as
            shown = (repr(default).replace("'", '"') if isinstance(default, str) else
                     str(default).lower() if isinstance(default, bool) else
                     "[]" if default == () else "unset" if default is None else repr(default))
            rows.append(f"| `[{table}]` | `{name}` | `{shown}` | {key.help} |")
    return "\n".join(rows)
