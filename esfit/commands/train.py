"""`esfit train --config train.toml [--KEY VALUE ...]`: train a model against a fitness with ES.

Every key of :class:`esfit.config.TrainConfig` is also an option, generated from the config's
fields (``--sigma 0.01``, ``--target-modules q_proj,v_proj``, ``--greedy/--no-greedy``), so none can
be missing; ``--set KEY=VALUE`` takes any key with a TOML value. The click layer only parses:
validation happens in the config before any model loads, resuming merges configs in
:func:`esfit.config.resume_config` (the checkpoint checked intact first, its saved output folder and
plugins never trusted), and the run is :func:`esfit.training.train`, which checks and locks the
output folder (``--overwrite-output-dir`` to start over in one that holds another run). Works under
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


def _resume_config(resume: Path, config_path: Path | None, given: dict[str, Any]):
    """The configuration of ``--resume``: the run's saved settings (or ``--config``), then the
    options; the output folder is the run folder being resumed. Returns (config, what was resumed)."""
    from esfit.runlog import find_resume

    found = find_resume(resume)  # checked intact before anything loads
    out = str(found.run_dir) if found.run_dir is not None else given.get("output_dir")
    if out is None:
        raise ConfigError(f"--resume {resume}: {found.checkpoint} is a checkpoint folder outside a run's checkpoints/ "
                          "folder, so there is no run folder to continue in; give --output-dir NEW (a folder that "
                          "holds no other run) for the continued run")
    if config_path is not None:
        config = load_config(config_path, {"output_dir": out, **given})
    else:
        saved = found.saved_config
        try:
            config = resume_config(saved, out, given)
        except ConfigError as err:
            raise ConfigError(f"--resume {resume}: the settings saved in {found.checkpoint / 'trainer_state.pt'} do "
                              f"not load ({err}); override the key with its option") from None
        plugins = saved.get("plugins") or []
        if plugins and "plugins" not in given:
            try:
                config.validate_paths()
            except ConfigError as err:
                if "does not build" not in str(err):
                    raise
                names = " ".join(str(p) for p in (plugins if isinstance(plugins, list) else [plugins]))
                raise ConfigError(f"{err}\nThe run was started with plugins {plugins!r}, which --resume does not "
                                  f"import: a checkpoint is data, and plugins are code. If you trust them, name them "
                                  f"again: --plugins {names}") from None
    config.validate_paths()
    return config, found


def _after_failure(output_dir: str) -> str:
    """What is left after a failed run, and how to go on."""
    from trainer.checkpoint import latest_checkpoint

    out = Path(output_dir)
    latest = latest_checkpoint(out / "checkpoints")
    if latest is not None:
        return f"The last checkpoint {latest} is intact; fix the cause and continue with: esfit train --resume {out}"
    if (out / "config.json").is_file():
        return ("No checkpoint was written; fix the cause and start again with --overwrite-output-dir "
                f"(the folder {out} now holds this run's first files)")
    return "No checkpoint was written; fix the cause and start again"


@click.command("train", context_settings={"max_content_width": 110})
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="TOML file of settings (see datasets/demo/train.toml); options below override it.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override any key (repeatable).")
@click.option("--resume", type=click.Path(path_type=Path), default=None,
              help="Continue the run in this output folder (or from this checkpoint folder) with its saved "
                   "settings; options override them. It writes only into that run folder. Plugins are imported "
                   "only when named again.")
@click.option("--overwrite-output-dir", is_flag=True,
              help="Start a fresh run in an output folder that holds another run: esfit's files there "
                   "(checkpoints/, eval/, metrics.jsonl, summary.json, config.json, tensorboard/, report.html) are "
                   "deleted first; nothing else is touched.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@_field_options
def train(config_path: Path | None, sets: tuple[str, ...], resume: Path | None, overwrite_output_dir: bool,
          quiet: bool, **options: Any) -> None:
    """Train a causal LM so that its answers match reference answers under a fitness (ES)."""
    from esfit.outputs import OutputError
    from trainer.checkpoint import CheckpointError

    try:
        if resume is not None:
            config, _ = _resume_config(resume, config_path, _given(options, sets))
        else:
            config = build_config(config_path, options, sets)
    except CheckpointError as err:
        hint = f"\n  esfit train --resume {err.previous}" if err.previous is not None else ""
        raise click.ClickException(f"{err}{hint}") from None
    except (ConfigError, FileNotFoundError, OutputError) as err:
        raise click.ClickException(str(err)) from None

    from esfit.fitness_glue import FitnessError
    from esfit.training import train as run_training
    from trainer import NonFiniteUpdateError
    from trainer.checkpoint import CheckpointWriteError
    from trainer.distributed import PeerFailure

    try:
        result = run_training(config, resume=resume, progress=not quiet, overwrite_output_dir=overwrite_output_dir)
    except CheckpointWriteError as err:
        if err.previous is None:
            raise click.ClickException(f"{err}\n{_after_failure(config.output_dir)}") from None
        raise click.ClickException(f"{err}; free some space and continue with: esfit train --resume "
                                   f"{config.output_dir}") from None
    except (FitnessError, NonFiniteUpdateError) as err:
        raise click.ClickException(f"{err}\n{_after_failure(config.output_dir)}") from None
    except (ConfigError, FileNotFoundError, ValueError, PeerFailure) as err:  # ModelError, OutputError, CheckpointError
        raise click.ClickException(str(err)) from None
    except OSError as err:  # a disk that fills while metrics or evaluations are written, a folder removed
        raise click.ClickException(f"{err}\n{_after_failure(config.output_dir)}") from None
    except KeyboardInterrupt:
        raise click.ClickException(f"interrupted. {_after_failure(config.output_dir)}") from None
    if result.checkpoint is not None:
        click.echo(f"final checkpoint: {result.checkpoint}")
    evals = sorted((Path(config.output_dir) / "eval").glob("gen-*.jsonl"))
    if config.eval_data and evals:
        click.echo(f"held-out completions: {evals[0].parent} (score the last ones with: esfit score --references "
                   f"{config.eval_data} --candidates {evals[-1]} --report report.html)")
