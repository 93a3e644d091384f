"""`esfit train` and `esfit generate` through click's runner, on a tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from tinyrun import make_setup

from esfit.cli import main
from infoextract import read_records

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("tiny")
    paths = make_setup(folder)
    toml = folder / "train.toml"
    toml.write_text(
        'model = "model"\noutput_dir = "out"\ngenerations = 2\nthreads = 1\n'
        '[data]\ntrain_data = "train.jsonl"\neval_data = "heldout.jsonl"\n'
        '[fitness]\nspec = "f1_at_k:1 + w1_depth:-0.5"\n'
        '[es]\npopulation_size = 4\nsigma = 0.1\nlearning_rate = 0.05\n'
        '[rollout]\nmax_new_tokens = 5\nprompts_per_generation = 2\n'
        '[eval]\neval_every = 1\nsamples_shown = 1\n[checkpoint]\ncheckpoint_every = 1\n'
    )
    return {**paths, "toml": str(toml), "folder": str(folder)}


def _invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_train_then_resume_through_the_command(setup):
    out = Path(setup["folder"]) / "out"
    result = _invoke("train", "--config", setup["toml"], "--quiet")
    assert result.exit_code == 0, result.output
    assert "final checkpoint:" in result.output and "gen-000002" in result.output
    assert "held-out" in result.output and "before" in result.output  # the closing summary
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["generation"] for r in rows if r["kind"] == "train"] == [0, 1]
    assert set(rows[1]["components"]) == {"f1_at_k", "w1_depth"}
    # resume reads the run's own config from the checkpoint; --generations extends it
    result = _invoke("train", "--resume", str(out), "--generations", "3", "--quiet")
    assert result.exit_code == 0, result.output
    assert "resuming from" in result.output and "gen-000003" in result.output
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["generation"] for r in rows if r["kind"] == "train"] == [0, 1, 2]
    saved = json.loads((out / "config.json").read_text())
    assert saved["generations"] == 3 and saved["population_size"] == 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sigma", "-1"], "sigma=-1.0 must be > 0"),
        (["--set", "sigmaa=0.1"], "did you mean 'sigma'"),
        (["--population-size", "5"], "population_size=5 must be even when mirrored"),
        (["--set", "fitness=no_such:1"], "unknown fitness component 'no_such'"),
        (["--eval-data", "missing.jsonl"], "eval_data='missing.jsonl': file not found"),
        (["--model", "nowhere"], "model='nowhere' is neither an embedded model"),
    ],
)
def test_bad_settings_fail_before_any_model_loads_with_the_key_named(setup, args, message):
    result = CliRunner().invoke(main, ["train", "--config", setup["toml"], *args])
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output


def test_resume_without_a_checkpoint_says_so(tmp_path):
    result = CliRunner().invoke(main, ["train", "--resume", str(tmp_path)])
    assert result.exit_code == 1 and "no checkpoint found" in result.output


def test_target_modules_option_takes_a_list_or_a_regex(setup):
    from esfit.commands.train import build_config

    config = build_config(Path(setup["toml"]), {"target_modules": "q_proj,v_proj"}, ())
    assert config.target_modules == ("q_proj", "v_proj")
    config = build_config(Path(setup["toml"]), {"target_modules": r".*\.mlp\..*"}, ())
    assert config.target_modules == r".*\.mlp\..*"


def test_generate_writes_a_corpus_that_score_reads(setup, tmp_path):
    output = tmp_path / "corpus.jsonl"
    result = _invoke("generate", "--model", setup["model"], "--prompts", setup["eval_data"], "-o", str(output),
                     "--rollouts", "2", "--max-new-tokens", "5", "--seed", "3")
    assert result.exit_code == 0, result.output
    records = read_records(output)
    assert [r.prompt_id for r in records] == ["p4", "p4", "p5", "p5"]
    assert {r.author for r in records} == {"model"} and records[0].prompt == "what is 4?"
    again = tmp_path / "again.jsonl"
    _invoke("generate", "--model", setup["model"], "--prompts", setup["eval_data"], "-o", str(again),
            "--rollouts", "2", "--max-new-tokens", "5", "--seed", "3", "--batch-rows", "2")
    # the same seed gives the same corpus, however the prompts are batched
    assert [r.text for r in read_records(again)] == [r.text for r in records]


def test_generate_sampling_filters_reach_the_sampler(setup, tmp_path):
    """--top-k 1 keeps only the most likely token: the sampled corpus is the greedy one."""
    common = ["--model", setup["model"], "--prompts", setup["eval_data"], "--max-new-tokens", "6"]
    outputs = {}
    for name, extra in {"greedy": ["--greedy"], "top1": ["--top-k", "1", "--seed", "5"],
                        "nucleus": ["--top-p", "0.5", "--min-new-tokens", "2"]}.items():
        outputs[name] = tmp_path / f"{name}.jsonl"
        result = _invoke("generate", *common, "-o", str(outputs[name]), *extra)
        assert result.exit_code == 0, result.output
    texts = {name: [r.text for r in read_records(path)] for name, path in outputs.items()}
    assert texts["top1"] == texts["greedy"]
    assert len(texts["nucleus"]) == len(texts["greedy"])


def test_run_demo_compares_before_and_after_and_writes_the_report(setup, tmp_path):
    from esfit.demo import run_demo

    lines: list[str] = []
    result = run_demo(setup["toml"], overrides={"output_dir": str(tmp_path / "demo"), "generations": 1},
                      echo=lines.append, progress=False)
    text = "\n".join(lines)
    assert "held-out fitness before" in text and "before:" in text and "after:" in text
    assert result.report.is_file() and result.output_dir == tmp_path / "demo"
    page = result.report.read_text()
    assert "Sample answers before and after training" in page
    assert "before training" in page and "after 1 generations" in page  # both answer sets scored
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert (summary["before"]["fitness"], summary["after"]["fitness"]) == (result.before, result.after)


def test_demo_command_shows_the_facts_then_trains(setup, tmp_path):
    result = _invoke("demo", "--data-dir", setup["folder"], "--config", setup["toml"], "--generations", "1",
                     "--output-dir", str(tmp_path / "demo"), "--quiet")
    assert result.exit_code == 0, result.output
    step1, step2 = result.output.split("Step 2:")
    assert "Step 1: the facts in the references" in step1 and "distinct facts" in step1
    assert "held-out fitness before" in step2 and (tmp_path / "demo" / "report.html").is_file()
