"""`esfit train --config train.toml [--KEY VALUE ...]`: train a model against a fitness with ES.

Every field of :class:`esfit.config.TrainConfig` is also an option (``--sigma 0.01``,
``--target-modules q_proj,v_proj``, ``--greedy/--no-greedy``); ``--set KEY=VALUE`` takes any key
with a TOML value. The click layer only parses: validation happens in ``TrainConfig`` before any
model loads, and the run is :func:`esfit.training.train`. Works under
``torchrun --nproc_per_node=N -m esfit train ...`` (the population is split across the ranks).
"""

from __future__ import annotations

import typing
from dataclasses import fields
from pathlib import Path
from typing import Any

import click

from esfit.config import ConfigError, TrainConfig, load_config, parse_override

_CLICK_TYPES = {int: int, float: float, str: str}


def _field_options(command):
    """One click option per config field, default None so that only given options override."""
    hints = typing.get_type_hints(TrainConfig)
    for f in reversed(fields(TrainConfig)):
        flag = "--" + f.name.replace("_", "-")
        help_text = f"[{f.metadata['section']}] {f.metadata['help']}"
        if hints[f.name] is bool:
            opt = click.option(f"{flag}/--no-{flag[2:]}", f.name, default=None, help=help_text)
        else:
            opt = click.option(flag, f.name, type=_CLICK_TYPES.get(hints[f.name], str), default=None,
                               help=help_text, metavar="LIST" if f.name == "target_modules" else None)
        command = opt(command)
    return command


def _target_modules(value: str) -> Any:
    """``a,b`` -> a list of names; anything else (all-linear, a regex) stays a string."""
    if "," in value and not any(ch in value for ch in "()[]|*+?\\^$"):
        return [v.strip() for v in value.split(",") if v.strip()]
    return value


def build_config(config_path: Path | None, options: dict[str, Any], sets: tuple[str, ...]) -> TrainConfig:
    """The validated config from the file, then ``--set`` values, then explicit options."""
    overrides: dict[str, Any] = dict(parse_override(s) for s in sets)
    for key, value in options.items():
        if value is not None:
            overrides[key] = _target_modules(value) if key == "target_modules" else value
    config = load_config(config_path, overrides)
    config.validate_paths()
    return config


@click.command("train", context_settings={"max_content_width": 110})
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="TOML file of settings (see datasets/demo/train.toml); options below override it.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override any key (repeatable).")
@click.option("--resume", type=click.Path(path_type=Path), default=None,
              help="Continue from an output folder's latest checkpoint, or from a checkpoint folder.")
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
            given = {k: v for k, v in options.items() if v is not None}
            given.update(dict(parse_override(s) for s in sets))
            config = load_config(None, {**saved, **given})
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
        click.echo(f"held-out completions: {Path(config.output_dir) / 'eval'} "
                   f"(score them with: esfit score --references {config.eval_data or config.train_data} "
                   f"--candidates <file> --report report.html)")
