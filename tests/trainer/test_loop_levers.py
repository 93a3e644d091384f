"""The one loop's collaborators and the levers against drift: anchored weight decay, schedules,
noise reuse, the Scorer protocol, and the Evaluation / Checkpointing / EarlyStopping callbacks."""

from __future__ import annotations

import math

import pytest
import torch

from trainer import (
    Checkpointing,
    EarlyStopping,
    ESConfig,
    ESTrainer,
    Evaluation,
    EvolutionStrategy,
    FitnessError,
    NonFiniteUpdateError,
    RolloutConfig,
    Scores,
    TrainerCallback,
)
from trainer.checkpoint import latest_checkpoint
from trainer.optim import schedule_factor
from trainer.testing import tiny_llama

PROMPTS = ["one", "two", "three"]


def _master(es):
    return es.masters[es.targets[0].name].detach().clone()


def test_anchored_weight_decay_pulls_towards_the_starting_weights():
    es = EvolutionStrategy(tiny_llama(), ESConfig(population_size=4, sigma=0.05, learning_rate=0.05, anchor_decay=0.25))
    theta0 = _master(es)
    es.tell([1.0, -1.0, 0.5, -0.5])  # a real step away from θ0, then the anchor pulls back a quarter
    moved = _master(es)
    assert not torch.equal(moved, theta0)
    es.tell([1.0, 1.0, 1.0, 1.0])  # no signal: only the anchor acts
    torch.testing.assert_close(_master(es), moved - 0.25 * (moved - theta0))
    # without the anchor the same no-signal step leaves the weights where they are
    plain = EvolutionStrategy(tiny_llama(), ESConfig(population_size=4, sigma=0.05, learning_rate=0.05))
    plain.tell([1.0, -1.0, 0.5, -0.5])
    w = _master(plain)
    plain.tell([1.0, 1.0, 1.0, 1.0])
    assert torch.equal(_master(plain), w)


def test_set_anchor_replaces_theta0_and_checks_every_target():
    es = EvolutionStrategy(tiny_llama(), ESConfig(population_size=4, anchor_decay=0.5))
    zero = {t.name: torch.zeros_like(t.weight) for t in es.targets}
    es.set_anchor(zero)
    w = _master(es)
    es.tell([1.0, 1.0, 1.0, 1.0])
    torch.testing.assert_close(_master(es), w * 0.5)
    with pytest.raises(ValueError, match="no weight for target"):
        es.set_anchor({})


def test_schedules_decay_learning_rate_and_sigma_to_their_final_fractions():
    assert schedule_factor("cosine", 0, 10, 0.2) == 1.0
    assert schedule_factor("cosine", 10, 10, 0.2) == pytest.approx(0.2)
    assert schedule_factor("cosine", 50, 10, 0.2) == pytest.approx(0.2)
    assert schedule_factor("linear", 5, 10, 0.0) == pytest.approx(0.5)
    assert schedule_factor("linear", 5, 0, 0.0) == 1.0  # no horizon: no decay
    config = ESConfig(population_size=4, sigma=0.1, learning_rate=0.01, schedule="linear", schedule_generations=4,
                      final_lr_fraction=0.5, final_sigma_fraction=0.25)
    assert config.learning_rate_at(2) == pytest.approx(0.0075) and config.sigma_at(4) == pytest.approx(0.025)
    es = EvolutionStrategy(tiny_llama(), config)
    m0 = es.tell([1.0, 0.0, 0.0, 0.0])
    m1 = es.tell([1.0, 0.0, 0.0, 0.0])
    assert (m0["learning_rate"], m0["sigma"]) == (0.01, 0.1)
    assert m1["learning_rate"] == pytest.approx(0.01 * (1 - 0.5 / 4)) and m1["sigma"] == pytest.approx(0.1 * (1 - 0.75 / 4))
    with pytest.raises(ValueError, match="schedule='fancy' must be one of"):
        ESConfig(schedule="fancy")


def test_noise_reuse_keeps_the_directions_for_k_generations():
    es = EvolutionStrategy(tiny_llama(), ESConfig(population_size=4, noise_reuse=2))
    name = es.targets[0].name
    first = es.ask().factors[name][0].clone()
    es.tell([0.0, 0.0, 0.0, 0.0])
    assert torch.equal(es.ask().factors[name][0], first)  # generation 1: same block as 0
    es.tell([0.0, 0.0, 0.0, 0.0])
    assert not torch.equal(es.ask().factors[name][0], first)  # generation 2: fresh noise


def test_an_update_that_would_not_be_finite_stops_before_touching_the_weights():
    # a NaN or infinite fitness is a missing value (ranked worst, with a warning); a huge finite one
    # under raw shaping divides by P·σ into infinity: the update is refused, the weights untouched
    es = EvolutionStrategy(tiny_llama(), ESConfig(population_size=4, shaping="raw"))
    before = {t.name: t.weight.detach().clone() for t in es.targets}
    with pytest.raises(NonFiniteUpdateError, match="not finite"):
        es.tell([1e308, 0.0, 0.0, 0.0])
    assert all(torch.equal(t.weight, before[t.name]) for t in es.targets)
    with pytest.warns(RuntimeWarning, match="NaN, infinite or missing"):
        es.tell([1.0, math.inf, math.nan, 0.0])


class LengthScorer:
    """A Scorer: each member's fitness per prompt is the mean length of its rollouts."""

    component_names = ["length"]

    def __init__(self):
        self.calls = []

    def score(self, texts, prompt_ids, members):
        self.calls.append((len(texts), list(prompt_ids), list(members)))
        by_prompt = torch.tensor([[sum(map(len, g)) / len(g) for g in groups] for groups in texts], dtype=torch.float64)
        return Scores(by_prompt, by_prompt.mean(1, keepdim=True), ["length"])


def _trainer(tokenizer, scorer, callbacks=(), **es):
    config = ESConfig(population_size=4, sigma=0.05, learning_rate=0.02, group_by_prompt=True, **es)
    return ESTrainer(tiny_llama(), tokenizer, PROMPTS, scorer, es=config, callbacks=callbacks,
                     rollout=RolloutConfig(max_new_tokens=4, rollouts_per_prompt=2, prompts_per_generation=2))


def test_a_scorer_object_drives_the_loop_with_one_call_per_generation(tokenizer):
    scorer = LengthScorer()
    trainer = _trainer(tokenizer, scorer)
    history = trainer.train(2)
    assert [m["generation"] for m in history] == [0, 1]
    assert [c[0] for c in scorer.calls] == [4, 4] and all(len(c[1]) == 2 for c in scorer.calls)
    assert history[0]["components"].keys() == {"length"} and history[0]["new_tokens"] > 0
    value, rollouts = trainer.evaluate()
    assert len(rollouts.texts) == 1 and len(rollouts.texts[0]) == len(PROMPTS) and value >= 0


def test_a_fitness_that_returns_a_string_is_a_clear_error(tokenizer):
    trainer = ESTrainer(tiny_llama(), tokenizer, PROMPTS, lambda groups, ids: "0.5",
                        es=ESConfig(population_size=4), rollout=RolloutConfig(max_new_tokens=2))
    with pytest.raises(FitnessError, match=r"returned '0.5' \(str\) for member 0.*return a float"):
        trainer.step()


class Recorder(TrainerCallback):
    def __init__(self):
        self.events = []

    def on_train_begin(self, trainer):
        self.events.append("begin")

    def on_step_end(self, trainer, metrics):
        self.events.append(f"step{metrics['generation']}")

    def on_evaluate(self, trainer, result):
        self.events.append(f"eval{result.after_generations}")

    def on_save(self, trainer, path):
        self.events.append(f"save{trainer.generation}")

    def on_train_end(self, trainer):
        self.events.append("end")


def test_callbacks_evaluate_and_checkpoint_on_schedule(tokenizer, tmp_path):
    recorder = Recorder()
    evaluation = Evaluation(["four"], ["four"], every=2)
    checkpoints = Checkpointing(tmp_path / "ckpt", every=2, keep=0)
    trainer = _trainer(tokenizer, LengthScorer(), [recorder, evaluation, checkpoints])
    trainer.train(3)
    assert recorder.events == ["begin", "eval0", "step0", "step1", "eval2", "save2", "step2", "end", "eval3", "save3"]
    assert [r.after_generations for r in evaluation.results] == [0, 2, 3]
    assert latest_checkpoint(tmp_path / "ckpt").name == "gen-000003"


def test_early_stopping_stops_and_restores_the_best_weights(tokenizer):
    values = iter([0.5, 0.9, 0.7, 0.6, 0.1, 0.0])  # best after 1 generation, then worse twice

    stop = EarlyStopping("validation", patience=2, metric=lambda r: next(values))
    evaluation = Evaluation(["four"], ["four"], name="validation", every=1)
    trainer = _trainer(tokenizer, LengthScorer(), [stop, evaluation])
    weights = {}

    class Snapshot(TrainerCallback):
        def on_step_end(self, trainer, metrics):
            weights[trainer.generation] = {t.name: t.weight.detach().clone() for t in trainer.es.targets}

    trainer.callbacks.add(Snapshot())
    history = trainer.train(10)
    assert len(history) == 3  # evaluations after 1 (best), 2 and 3 (no better): stop after 3
    assert stop.best_generation == 1 and trainer.weights_generation == 1
    assert all(torch.equal(t.weight, weights[1][t.name]) for t in trainer.es.targets)
    # the final evaluation is of the restored weights, under their generation's number
    assert evaluation.results[-1].after_generations == 1
    with pytest.raises(ValueError, match="patience=0 must be"):
        EarlyStopping(patience=0)


@pytest.mark.parametrize("early_first", [True, False])
def test_early_stopping_evaluates_the_final_generation_before_restoring(tokenizer, early_first):
    # the final generation is not one of the periodic evaluations (it is at_end's): it must still
    # compete, or the last generations of every run that reaches its end would be thrown away
    values = iter([0.5, 0.6, 0.9, 0.0])  # start, after 1, after 2 (the end): the end is the best
    stop = EarlyStopping("validation", patience=2, metric=lambda r: next(values))
    evaluation = Evaluation(["four"], ["four"], name="validation", every=1)
    trainer = _trainer(tokenizer, LengthScorer(), [stop, evaluation] if early_first else [evaluation, stop])
    trainer.train(2)
    assert stop.best_generation == 2 and trainer.weights_generation == 2
    assert [r.after_generations for r in evaluation.results] == [0, 1, 2]  # each generation once

    values = iter([0.5, 0.9, 0.6, 0.0])  # the end is worse than generation 1: restored
    stop = EarlyStopping("validation", patience=2, metric=lambda r: next(values))
    evaluation = Evaluation(["four"], ["four"], name="validation", every=1)
    trainer = _trainer(tokenizer, LengthScorer(), [stop, evaluation] if early_first else [evaluation, stop])
    trainer.train(2)
    assert stop.best_generation == 1 and trainer.weights_generation == 1
    assert [r.after_generations for r in evaluation.results][:3] == [0, 1, 2]
