"""trainer.checkpoint: atomic checkpoints, and a resumed ES run equal bit for bit to an uninterrupted one."""

from __future__ import annotations

import pytest
import torch

from trainer import ESConfig, EvolutionStrategy
from trainer.checkpoint import (
    STATE_FILE,
    latest_checkpoint,
    load_checkpoint,
    load_trainer_state,
    save_checkpoint,
)
from trainer.testing import char_tokenizer, tiny_llama

INPUT = torch.tensor([[1, 10, 11, 12, 13, 14]])  # (1, T) token ids of a fixed prompt


pytestmark = pytest.mark.usefixtures("one_thread")


def _fitness(es: EvolutionStrategy) -> list[float]:
    """One value per member from a batched patched forward pass: the last-position logit of one
    token (a smooth, deterministic fitness that needs no generate call)."""
    population = es.ask()
    with es.patch, es.patch.members(population):
        logits = es.model(INPUT.repeat(population.size, 1)).logits  # (P, T, V)
    return logits[:, -1, 20].tolist()


def _es(dtype=torch.float32, **overrides) -> EvolutionStrategy:
    model = tiny_llama(seed=1).to(dtype)
    config = dict(population_size=6, rank=2, sigma=0.05, learning_rate=0.02, optimizer="adam", seed=3)
    config.update(overrides)
    return EvolutionStrategy(model, ESConfig(**config))


def _run(es: EvolutionStrategy, generations: int) -> None:
    for _ in range(generations):
        es.tell(_fitness(es))


def _weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_resumed_run_is_bit_identical_to_an_uninterrupted_one(tmp_path, dtype):
    straight = _es(dtype)
    _run(straight, 4)

    first = _es(dtype)
    _run(first, 2)
    path = save_checkpoint(tmp_path, first.model, first, tokenizer=char_tokenizer(), extra={"note": "x"})
    _run(first, 1)  # work after the checkpoint that a crash loses

    resumed = _es(dtype)  # a fresh process: base weights, fresh optimizers
    extra = load_checkpoint(latest_checkpoint(tmp_path), resumed)
    assert extra == {"note": "x"} and resumed.generation == 2 and path.name == "gen-000002"
    _run(resumed, 2)
    a, b = _weights(straight.model), _weights(resumed.model)
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    if dtype != torch.float32:  # the fp32 masters carry on too, not a rounded copy of the weights
        for name, master in straight.masters.items():
            assert torch.equal(master, resumed.masters[name]), name


def test_momentum_sgd_state_is_part_of_the_checkpoint(tmp_path):
    es = _es(optimizer="sgd", momentum=0.9)
    _run(es, 2)
    save_checkpoint(tmp_path, es.model, es)
    without_state = _es(optimizer="sgd", momentum=0.9)
    without_state.model.load_state_dict(es.model.state_dict())
    without_state.generation = 2
    with_state = _es(optimizer="sgd", momentum=0.9)
    load_checkpoint(tmp_path, with_state)
    _run(es, 1)
    _run(with_state, 1)
    _run(without_state, 1)
    w = _weights(es.model)
    assert all(torch.equal(w[k], v) for k, v in _weights(with_state.model).items())
    assert not all(torch.equal(w[k], v) for k, v in _weights(without_state.model).items())


def test_a_write_killed_midway_leaves_the_previous_checkpoint(tmp_path):
    es = _es()
    _run(es, 1)
    good = save_checkpoint(tmp_path, es.model, es)
    # what a process killed while writing generation 2 leaves: a staging folder, no pointer change
    staging = tmp_path / ".staging-gen-000002-abc"
    staging.mkdir()
    (staging / "model.safetensors").write_bytes(b"half a file")
    assert latest_checkpoint(tmp_path) == good
    _run(es, 1)
    newer = save_checkpoint(tmp_path, es.model, es)
    assert not staging.exists() and latest_checkpoint(tmp_path) == newer
    assert (tmp_path / "latest").read_text().strip() == "gen-000002"


def test_keep_prunes_old_checkpoints_and_latest_finds_them_under_checkpoints(tmp_path):
    es = _es()
    root = tmp_path / "checkpoints"
    for _ in range(3):
        _run(es, 1)
        save_checkpoint(root, es.model, es, keep=2)
    assert sorted(p.name for p in root.glob("gen-*")) == ["gen-000002", "gen-000003"]
    assert latest_checkpoint(tmp_path) == root / "gen-000003"
    assert latest_checkpoint(tmp_path / "elsewhere") is None
    (root / "latest").unlink()  # the pointer lost: the newest complete folder is used
    assert latest_checkpoint(root) == root / "gen-000003"


def test_state_holds_generation_config_and_optimizer_state(tmp_path):
    es = _es()
    _run(es, 2)
    path = save_checkpoint(tmp_path, es.model, es, extra={"config": {"sigma": 0.05}})
    state = load_trainer_state(path)
    assert state["es"]["generation"] == 2
    assert state["es"]["config"]["sigma"] == 0.05 and state["es"]["config"]["seed"] == 3
    assert state["extra"]["config"] == {"sigma": 0.05}
    assert all(s["state"] for s in state["es"]["optimizers"].values())  # Adam moments are saved
    assert (path / "model.safetensors").is_file() and (path / STATE_FILE).is_file()


def test_errors_name_the_folder_and_the_mismatch(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a checkpoint folder"):
        load_trainer_state(tmp_path)
    with pytest.raises(FileNotFoundError, match="no checkpoint in"):
        load_checkpoint(tmp_path, _es())
    es = _es()
    path = save_checkpoint(tmp_path, es.model, es)
    other = EvolutionStrategy(tiny_llama(hidden_size=16, intermediate_size=32), ESConfig(population_size=6))
    with pytest.raises((ValueError, RuntimeError), match="size mismatch|does not match"):
        load_checkpoint(path, other)
    with pytest.raises(ValueError, match="keep=-1"):
        save_checkpoint(tmp_path, es.model, es, keep=-1)
