"""`esfit train --config train.toml [--KEY VALUE ...]`: train a model against a fitness with ES.

Every key of :class:`esfit.config.TrainConfig` is also an option, generated from the config's
fields (``--sigma 0.01``, ``--target-modules q_proj,v_proj``, ``--greedy/--no-greedy``), so none can
be missing; ``--set KEY=VALUE`` takes any key with a TOML value. The click layer only parses:
validation happens in the config before any model loads, resuming merges configs in
:func:`esfit.config.resume_config`, and the run is :func:`esfit.training.train`. Works under
``torchrun --nproc_per_node=N -m esfit train ...`` (the population is split across the ranks).
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

import click

from esfit.config import KEYS, ConfigError, TrainConfig, load_config, parse_override, resume_config

_CLICK_TYPES = {int: int, float: float, str: str}


def _base_type(hint: Any) -> Any:
    """int for ``int | None``, bool for ``bool | None``; str for anything else."""
    args = [a for a in typing.get_args(hint) if a is not type(None)] if typing.get_args(hint) else [hint]
    return args[0] if len(args) == 1 and args[0] in (int, float, str, bool) else str


def _field_options(command):
    """One click option per config key, default None so that only given options override."""
    for key in reversed(list(KEYS.values())):
        flag = "--" + key.name.replace("_", "-")
        help_text = f"[{key.table}] {key.help}"
        kind = _base_type(key.hint)
        if kind is bool:
            opt = click.option(f"{flag}/--no-{flag[2:]}", key.name, default=None, help=help_text)
        else:
            opt = click.option(flag, key.name, type=_CLICK_TYPES[kind], default=None, help=help_text,
                               metavar="LIST" if key.name in ("target_modules", "plugins") else None)
        command = opt(command)
    return command


def _option_value(key: str, value: str) -> Any:
    """``a,b`` -> a list of names for list keys; anything else (all-linear, a regex) stays a string."""
    if key in ("target_modules", "plugins") and isinstance(value, str) and "," in value \
            and not any(ch in value for ch in "()[]|*+?\\^$"):
        return [v.strip() for v in value.split(",") if v.strip()]
    return value


def _given(options: dict[str, Any], sets: tuple[str, ...]) -> dict[str, Any]:
    """``--set`` values, then explicit options (which win)."""
    overrides: dict[str, Any] = dict(parse_override(s) for s in sets)
    overrides.update({k: _option_value(k, v) for k, v in options.items() if v is not None})
    return overrides


def build_config(config_path: Path | None, options: dict[str, Any], sets: tuple[str, ...]) -> TrainConfig:
    """The validated config from the file, then ``--set`` values, then explicit options."""
    config = load_config(config_path, _given(options, sets))
    config.validate_paths()
    return config


@click.command("train", context_settings={"max_content_width": 110})
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="TOML file of settings (see datasets/demo/train.toml); options below override it.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override any key (repeatable).")
@click.option("--resume", type=click.Path(path_type=Path), default=None,
              help="Continue the run in this output folder (or from this checkpoint folder) with its saved "
                   "settings; options override them. Plugins are imported only when named again.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@_field_options
def train(config_path: Path | None, sets: tuple[str, ...], resume: Path | None, quiet: bool, **options: Any) -> None:
    """Train a causal LM so that its answers match reference answers under a fitness (ES)."""
    from trainer.checkpoint import latest_checkpoint, load_trainer_state

    try:
        if resume is not None and config_path is None:
            # the run's own configuration comes from its checkpoint; options still override it
            found = latest_checkpoint(resume)
            if found is None:
                raise click.ClickException(f"--resume {resume}: no checkpoint found (gen-*/trainer_state.pt)")
            saved = load_trainer_state(found)["extra"].get("config", {})
            run_dir = found.parent.parent if found.parent.name == "checkpoints" else resume
            config = resume_config(saved, run_dir, _given(options, sets))
            config.validate_paths()
        else:
            config = build_config(config_path, options, sets)
    except (ConfigError, FileNotFoundError) as err:
        raise click.ClickException(str(err)) from None

    from esfit.fitness_glue import FitnessError
    from esfit.training import train as run_training

    try:
        result = run_training(config, resume=str(resume) if resume else None, progress=not quiet)
    except FitnessError as err:
        raise click.ClickException(f"{err}\nThe last checkpoint is intact; fix the fitness and continue with "
                                   f"--resume {config.output_dir}") from None
    except (ConfigError, FileNotFoundError, ValueError) as err:
        raise click.ClickException(str(err)) from None
    except KeyboardInterrupt:
        raise click.ClickException(f"interrupted; continue with: esfit train --resume {config.output_dir}") from None
    if result.checkpoint is not None:
        click.echo(f"final checkpoint: {result.checkpoint}")
    if config.eval_data:
        click.echo(f"held-out completions: {Path(config.output_dir) / 'eval'} "
                   f"(score them with: esfit score --references {config.eval_data} "
                   f"--candidates <file> --report report.html)")
