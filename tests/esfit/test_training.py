"""esfit.training on a tiny model: outputs of a run, batched extraction, faults and SIGKILL resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tinyrun import WordExtractor, base_overrides, letter_share, make_setup

from esfit.config import load_config
from esfit.fitness_glue import FitnessError, PopulationFitness, TimedExtractor
from esfit.prompts import load_prompt_set
from esfit.training import train
from fitness import TextFitness
from infoextract import read_records
from trainer.checkpoint import latest_checkpoint, load_trainer_state

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


pytestmark = pytest.mark.usefixtures("one_thread")


def _weights(run_dir: Path, generation: int) -> dict[str, torch.Tensor]:
    return load_file(Path(run_dir) / "checkpoints" / f"gen-{generation:06d}" / "model.safetensors")


def _train_rows(run_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r["kind"] == "train"]


def test_a_run_writes_metrics_evaluations_checkpoints_and_a_summary(tmp_path):
    config = load_config(overrides=base_overrides(tmp_path))
    lines: list[str] = []
    result = train(config, fitness=letter_share, progress=False, echo=lines.append)
    out = Path(config.output_dir)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if r["kind"] == "train"]
    assert [r["generation"] for r in train_rows] == [0, 1, 2, 3]
    for key in ("fitness_mean", "fitness_max", "fitness_std", "update_norm", "tokens_per_s", "rollout_s",
                "extraction_s", "fitness_s", "update_s", "components"):
        assert key in train_rows[0], key
    assert [r["after_generations"] for r in rows if r["kind"] == "eval"] == [0, 2, 4]
    assert any(r["update_norm"] > 0 for r in train_rows)  # the fitness had signal: weights moved
    # held-out completions are a corpus that `esfit score` reads, one per prompt and rollout
    evals = sorted((out / "eval").glob("gen-*.jsonl"))
    assert [p.name for p in evals] == ["gen-000000.jsonl", "gen-000002.jsonl", "gen-000004.jsonl"]
    records = read_records(evals[-1])
    assert [r.prompt_id for r in records] == ["p4", "p5"] and {r.author for r in records} == {"model"}
    assert records[0].prompt == "what is 4?" and records[0].source == "passage 4 says 4."
    summary = json.loads((out / "summary.json").read_text())
    assert summary["before"]["after_generations"] == 0 and summary["after"]["after_generations"] == 4
    assert result.after.fitness == summary["after"]["fitness"]
    assert latest_checkpoint(out) == out / "checkpoints" / "gen-000004"
    assert any(line.startswith("gen 4/4  fitness") for line in lines)
    assert any("held-out" in line and "before" in line for line in lines)  # the closing summary


def test_extraction_is_one_batched_call_per_generation(tmp_path):
    overrides = base_overrides(tmp_path, eval_data="", generations=3, checkpoint_every=0)
    config = load_config(overrides=overrides)
    prompts = load_prompt_set(config.train_data)
    extractor = WordExtractor()
    text_fitness = TextFitness("f1_at_k:1 + js_facts:-0.5", prompts.references, extractor=TimedExtractor(extractor))
    scorer = PopulationFitness(text_fitness, text_fitness.extractor)
    result = train(config, fitness=scorer, progress=False, echo=lambda s: None)
    # per generation: one call holding every member's completions (deduplicated), plus one call
    # the first time a prompt's references are seen
    population_calls = [n for n in extractor.calls if n <= config.population_size * config.prompts_per_generation]
    assert len(result.history) == 3
    assert len(extractor.calls) <= 3 + 3  # 3 generations + reference batches of new prompts
    assert len(population_calls) >= 3
    assert set(result.history[0]["components"]) == {"f1_at_k", "js_facts"}
    assert result.history[0]["extraction_s"] >= 0.0


def test_a_raising_fitness_names_member_and_prompt_and_keeps_the_last_checkpoint(tmp_path):
    config = load_config(overrides=base_overrides(tmp_path, eval_data="", generations=6))
    calls = {"n": 0}
    per_generation = config.population_size * config.prompts_per_generation

    def fragile(groups, prompt_ids):
        calls["n"] += 1
        if calls["n"] == 3 * per_generation + 6:  # member 2's second prompt of generation 4
            raise ZeroDivisionError("boom")
        return letter_share(groups, prompt_ids)

    with pytest.raises(FitnessError, match=r"member 2 on prompt 'p\d'.*ZeroDivisionError\('boom'\)") as info:
        train(config, fitness=fragile, progress=False, echo=lambda s: None)
    assert info.value.member == 2 and info.value.prompt_id in {"p0", "p1", "p2", "p3"}
    latest = latest_checkpoint(config.output_dir)
    assert latest.name == "gen-000002"  # written after generation 2; generation 3 finished unsaved
    assert load_trainer_state(latest)["es"]["generation"] == 2
    assert load_file(latest / "model.safetensors")  # complete and readable


def test_spec_fitness_errors_locate_member_and_prompt(tmp_path):
    config = load_config(overrides=base_overrides(tmp_path))
    prompts = load_prompt_set(config.train_data)

    class Exploding(WordExtractor):
        def extract(self, texts, sources=None, *, progress=False):
            if any("boom" in t for t in texts):
                raise RuntimeError("cannot parse")
            return super().extract(texts, sources, progress=progress)

    scorer = PopulationFitness(TextFitness("f1_at_k", prompts.references, extractor=Exploding()))
    texts = [[["fine"], ["fine"]], [["fine"], ["a boom here"]]]
    with pytest.raises(FitnessError, match=r"member 7 on prompt 'p1'.*cannot parse") as info:
        scorer.score(texts, ["p0", "p1"], [6, 7])
    assert (info.value.member, info.value.prompt_id) == (7, "p1")


KILL_SCRIPT = textwrap.dedent("""
    import json, os, signal, sys
    sys.path.insert(0, {here!r})
    from tinyrun import letter_share
    from esfit.config import load_config
    from esfit.training import train

    kill_at = int(os.environ.get("KILL_AT_CALL", "0"))
    calls = 0

    def fitness(groups, prompt_ids):
        global calls
        calls += 1
        if calls == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)  # dies mid-generation, as a machine would
        return letter_share(groups, prompt_ids)

    config = load_config(overrides=json.loads(sys.argv[1]))
    train(config, fitness=fitness, resume=sys.argv[2] if len(sys.argv) > 2 else None, progress=False)
""")


def test_sigkill_mid_generation_then_resume_is_bit_identical(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(KILL_SCRIPT.format(here=str(HERE)))
    straight = base_overrides(tmp_path, output_dir=str(tmp_path / "straight"), generations=5)
    killed = dict(straight, output_dir=str(tmp_path / "killed"))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    per_generation = straight["population_size"] * straight["prompts_per_generation"]

    train(load_config(overrides=straight), fitness=letter_share, progress=False, echo=lambda s: None)
    # killed in the fitness of the third generation (evaluations call it too): the last checkpoint
    # is the one written after generation 2
    kill_env = {**env, "KILL_AT_CALL": str(3 * per_generation + 3)}
    run = subprocess.run([sys.executable, str(script), json.dumps(killed)], env=kill_env, capture_output=True, text=True)
    assert run.returncode == -9, run.stderr[-2000:]
    assert latest_checkpoint(killed["output_dir"]).name == "gen-000002"
    # the resume can run in this process: nothing of the killed process survives but its files
    train(load_config(overrides=killed), fitness=letter_share, resume=killed["output_dir"], progress=False,
          echo=lambda s: None)

    a, b = _weights(straight["output_dir"], 5), _weights(killed["output_dir"], 5)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["model.layers.0.mlp.up_proj.weight"],
                           _weights(straight["output_dir"], 2)["model.layers.0.mlp.up_proj.weight"])  # it trained
    # the resumed run's log reads like one uninterrupted run
    fa = [(r["generation"], r["fitness_mean"]) for r in _train_rows(straight["output_dir"])]
    fb = [(r["generation"], r["fitness_mean"]) for r in _train_rows(killed["output_dir"])]
    assert fa == fb and len(fa) == 5


@pytest.mark.slow
def test_the_real_embedded_model_trains_with_the_demo_settings(tmp_path):
    """One short generation of SmolLM2-135M-Instruct with the demo config and its spaCy fitness."""
    from esfit.demo import DEMO_CONFIG

    overrides = dict(output_dir=str(tmp_path / "real"), generations=1, population_size=2, prompts_per_generation=1,
                     max_new_tokens=8, max_eval_prompts=1, threads=1, checkpoint_every=0)
    config = load_config(DEMO_CONFIG, overrides)
    result = train(config, progress=False, echo=lambda s: None)
    metrics = result.history[0]
    assert metrics["update_norm"] >= 0 and metrics["tokens_per_s"] > 0
    assert "f1_at_k" in metrics["components"]  # the precision side of the demo fitness
    answer = result.before.texts[0][0]
    assert len(answer.split()) >= 3  # the chat template and the passage produce a real answer
    assert (Path(config.output_dir) / "checkpoints" / "gen-000001" / "model.safetensors").is_file()


def test_early_stopping_weighs_the_final_generation_and_ends_on_the_best_weights(tmp_path):
    make_setup(tmp_path)
    validation = tmp_path / "validation.jsonl"
    validation.write_text("".join(json.dumps({"prompt_id": f"p{i}", "text": f"a answer {i}", "prompt": f"what is {i}?",
                                              "source": f"passage {i} says {i}."}) + "\n" for i in (6, 7)))
    overrides = base_overrides(tmp_path, generations=3, validation_data=str(validation), early_stopping_patience=5)
    result = train(load_config(overrides=overrides), fitness=letter_share, progress=False, echo=lambda s: None)
    out = Path(overrides["output_dir"])
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    evaluated = [(r["after_generations"], r["fitness"]) for r in rows if r["kind"] == "validation"]
    assert [g for g, _ in evaluated] == [0, 2, 3]  # the final generation is evaluated, once
    best = max(evaluated, key=lambda gv: gv[1])[0]
    # the held-out evaluation after training and the last checkpoint are of the best weights
    assert result.after.after_generations == best
    assert latest_checkpoint(out) == out / "checkpoints" / "gen-000003"
    if best != 3:
        saved = _weights(out, 3)
        assert all(torch.equal(saved[k], v) for k, v in _weights(out, best).items())


def test_extra_callbacks_run_after_the_built_in_ones(tmp_path):
    from trainer.callbacks import Checkpointing, TrainerCallback

    class Recorder(TrainerCallback):
        def __init__(self):
            self.events: list[tuple] = []

        def on_train_begin(self, trainer):
            self.events.append(("begin", [type(c).__name__ for c in trainer.callbacks.callbacks]))

        def on_step_end(self, trainer, metrics):
            self.events.append(("step", metrics["generation"]))

        def on_save(self, trainer, path):
            self.events.append(("save", path.name, path.is_dir()))

    config = load_config(overrides=base_overrides(tmp_path, eval_data="", generations=2, checkpoint_every=1))
    recorder = Recorder()
    train(config, fitness=letter_share, progress=False, echo=lambda s: None, callbacks=[recorder])
    names = recorder.events[0][1]
    assert names[-1] == "Recorder" and Checkpointing.__name__ in names[:-1]
    # after the built-ins: by the time its on_step_end runs, that step's checkpoint is written
    assert recorder.events[1:] == [("save", "gen-000001", True), ("step", 0), ("step", 1),
                                   ("save", "gen-000002", True)]


def test_a_used_output_folder_is_refused_unless_overwrite_output_dir(tmp_path):
    from esfit.outputs import OutputError

    config = load_config(overrides=base_overrides(tmp_path, eval_data="", generations=2))
    train(config, fitness=letter_share, progress=False, echo=lambda s: None)
    metrics = (Path(config.output_dir) / "metrics.jsonl").read_bytes()
    with pytest.raises(OutputError, match="holds another run"):
        train(config, fitness=letter_share, progress=False, echo=lambda s: None)
    assert (Path(config.output_dir) / "metrics.jsonl").read_bytes() == metrics
    result = train(config.replace(generations=1), fitness=letter_share, progress=False, echo=lambda s: None,
                   overwrite_output_dir=True)
    assert result.checkpoint.name == "gen-000001" and latest_checkpoint(config.output_dir) == result.checkpoint
    assert not (Path(config.output_dir) / "checkpoints" / "gen-000002").exists()
