"""TrainConfig: TOML sections, overrides, and errors that name the key and the fix."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from esfit.config import (
    KEYS,
    SECTION_CLASSES,
    SECTIONS,
    ConfigError,
    TrainConfig,
    load_config,
    parse_override,
)

REPO = Path(__file__).resolve().parents[2]
DEMO_TOML = REPO / "datasets" / "demo" / "train.toml"


def _write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "train.jsonl").write_text('{"prompt_id": "a", "text": "x", "prompt": "q?"}\n')
    path = tmp_path / "train.toml"
    path.write_text(text)
    return path


def test_demo_config_loads_and_resolves_paths_from_the_file():
    config = load_config(DEMO_TOML)
    config.validate_paths()
    assert Path(config.train_data).resolve() == (DEMO_TOML.parent / "train.jsonl").resolve()
    assert Path(config.eval_data).is_file()
    assert config.greedy is True and config.population_size % 2 == 0


def test_sections_and_top_level_keys_are_the_same_fields(tmp_path):
    path = _write(tmp_path, 'train_data = "train.jsonl"\nsigma = 0.02\n[es]\nrank = 2\n[rollout]\nmax_new_tokens = 9\n')
    config = load_config(path)
    assert (config.sigma, config.rank, config.max_new_tokens) == (0.02, 2, 9)
    assert config.train_data == str(tmp_path / "train.jsonl")


def test_overrides_win_over_the_file_and_are_validated(tmp_path):
    path = _write(tmp_path, 'train_data = "train.jsonl"\nsigma = 0.02\n')
    assert load_config(path, {"sigma": 0.5}).sigma == 0.5
    with pytest.raises(ConfigError, match=r"sigma=-1.*> 0"):
        load_config(path, {"sigma": -1})


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("sigmaa = 0.1", r"unknown .*'sigmaa'; did you mean 'sigma'"),
        ("[es]\nmax_new_tokens = 4", r"'max_new_tokens' does not belong in \[es\]; move it to \[rollout\]"),
        ("population_size = 7", r"population_size=7 must be even when mirrored"),
        ("population_size = 'x'", r"population_size='x' must be an integer .*e\.g\. population_size = 4"),
        ("greedy = 1", r"greedy=1 must be true or false"),
        ("optimizer = 'rmsprop'", r"optimizer='rmsprop' must be one of sgd, adam"),
        ("prompt_template = '{source}'", r"prompt_template=.*must be a template containing \{prompt\}"),
        ("sigma = ", r"invalid TOML"),
    ],
)
def test_bad_values_name_the_key_and_the_fix(tmp_path, toml, message):
    path = _write(tmp_path, 'train_data = "train.jsonl"\n' + toml + "\n")
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_error_names_the_config_file(tmp_path):
    path = _write(tmp_path, 'train_data = "train.jsonl"\nrank = 0\n')
    with pytest.raises(ConfigError, match=rf"{path.name}: rank=0 must be an integer ≥ 1"):
        load_config(path)


def test_missing_train_data_says_how_to_give_it():
    with pytest.raises(ConfigError, match=r"train_data=.*--train-data"):
        TrainConfig()


def test_validate_paths_checks_files_model_and_fitness_without_loading_a_model(tmp_path):
    path = _write(tmp_path, 'train_data = "train.jsonl"\n')
    with pytest.raises(ConfigError, match=r"eval_data=.*file not found"):
        load_config(path, {"eval_data": str(tmp_path / "nope.jsonl")}).validate_paths()
    with pytest.raises(ConfigError, match=r"model='no-such-model' is neither an embedded model"):
        load_config(path, {"model": "no-such-model"}).validate_paths()
    with pytest.raises(ConfigError, match=r"fitness=.*does not build.*unknown fitness component"):
        load_config(path, {"fitness": "no_such_component:1"}).validate_paths()


def test_fitness_table_is_passed_to_the_fitness_library(tmp_path):
    path = _write(tmp_path, 'train_data = "train.jsonl"\n[fitness.components.f1]\ncomponent = "f1_at_k"\nweight = 1.0\n')
    config = load_config(path)
    config.validate_paths()
    assert config.fitness == {"components": {"f1": {"component": "f1_at_k", "weight": 1.0}}}


def test_parse_override_reads_toml_values_and_bare_strings():
    assert parse_override("sigma=0.01") == ("sigma", 0.01)
    assert parse_override("greedy=false") == ("greedy", False)
    assert parse_override('target_modules=["q_proj", "v_proj"]') == ("target_modules", ["q_proj", "v_proj"])
    assert parse_override("fitness=f1_at_k:1 + w1_depth:-0.25") == ("fitness", "f1_at_k:1 + w1_depth:-0.25")
    assert parse_override("max-new-tokens=8") == ("max_new_tokens", 8)
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_override("sigma")


def test_every_field_has_a_section_and_help():
    # the keys are the fields of the section dataclasses (the trainer's ESConfig and RolloutConfig among them)
    names = [n for keys in SECTIONS.values() for n in keys]
    assert [f.name for f in dataclasses.fields(TrainConfig)] == list(SECTION_CLASSES)
    fields = [f for cls in SECTION_CLASSES.values() for f in dataclasses.fields(cls)]
    assert sorted(names) == sorted(f.name for f in fields) == sorted(KEYS)
    for f in fields:
        assert f.metadata["help"]


def test_replace_revalidates_and_refuses_unknown_keys(tmp_path):
    config = load_config(_write(tmp_path, 'train_data = "train.jsonl"\n'))
    assert config.replace(rank=3).rank == 3
    with pytest.raises(ConfigError, match="rank=0"):
        config.replace(rank=0)
    with pytest.raises(ConfigError, match="did you mean 'rank'"):
        config.replace(rnak=3)


def test_plugins_register_components_before_the_fitness_builds(tmp_path):
    plugin = tmp_path / "my_components.py"
    plugin.write_text(
        "from fitness import register\n\n"
        "@register('answer_count_cfgtest', higher_is_better=True)\n"
        "def answer_count(*, cap: int = 4):\n"
        "    return lambda ctx: min(len(ctx.candidates), cap) / cap\n"
    )
    path = _write(tmp_path, 'train_data = "train.jsonl"\nplugins = ["my_components.py"]\n'
                            'fitness = "f1_at_k:1 + answer_count_cfgtest(cap=2):0.5"\n')
    config = load_config(path)
    assert config.plugins == (str(tmp_path / "my_components.py"),)
    config.validate_paths()  # imports the plugin, then builds the fitness that uses it
    with pytest.raises(ConfigError, match=r"plugins: importing 'no_such_module_x' failed"):
        config.replace(plugins=["no_such_module_x"]).validate_paths()
