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


# --- a full disk, damaged files, edited files ----------------------------------------------------

def _full_disk(*args, **kwargs):
    import errno

    raise OSError(errno.ENOSPC, "No space left on device")


def _listing(root) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("where", ["_write_state", "_write_text_atomic"])
def test_a_full_disk_while_saving_leaves_the_previous_checkpoint(tmp_path, monkeypatch, where):
    import trainer.checkpoint as checkpoint
    from trainer.checkpoint import CheckpointWriteError

    es = _es()
    _run(es, 1)
    good = save_checkpoint(tmp_path, es.model, es, keep=1)
    listing = _listing(tmp_path)
    state = (good / STATE_FILE).read_bytes()
    _run(es, 1)
    monkeypatch.setattr(checkpoint, where, _full_disk)
    with pytest.raises(CheckpointWriteError, match=rf"gen-000002 failed \(No space left on device\).*"
                       rf"previous checkpoint {good} is intact") as info:
        save_checkpoint(tmp_path, es.model, es, keep=1)
    assert info.value.previous == good and isinstance(info.value, OSError)
    assert latest_checkpoint(tmp_path) == good and (good / STATE_FILE).read_bytes() == state
    if where == "_write_state":
        assert _listing(tmp_path) == listing  # no staging folder, no half checkpoint
    else:  # the folder was renamed into place, but `latest` still names the previous, intact one
        assert (tmp_path / "latest").read_text().strip() == "gen-000001"
        assert not list(tmp_path.glob(".latest-*"))
    monkeypatch.undo()
    assert save_checkpoint(tmp_path, es.model, es, keep=1).name == "gen-000002"  # space freed: it works again
    assert latest_checkpoint(tmp_path).name == "gen-000002"


def test_rewriting_a_generation_that_fails_puts_the_old_folder_back(tmp_path, monkeypatch):
    import trainer.checkpoint as checkpoint
    from trainer.checkpoint import CheckpointWriteError

    es = _es()
    _run(es, 1)
    first = save_checkpoint(tmp_path, es.model, es)
    weights = (first / "model.safetensors").read_bytes()
    real = checkpoint.os.replace

    def fail_publishing(src, dst):
        if str(src).startswith(str(tmp_path / ".staging-gen")):
            raise OSError(28, "No space left on device")
        real(src, dst)

    monkeypatch.setattr(checkpoint.os, "replace", fail_publishing)
    with pytest.raises(CheckpointWriteError):
        save_checkpoint(tmp_path, es.model, es)  # the same generation again
    monkeypatch.undo()
    assert (first / "model.safetensors").read_bytes() == weights and latest_checkpoint(tmp_path) == first


@pytest.fixture
def two_checkpoints(tmp_path):
    es = _es()
    paths = []
    for _ in range(2):
        _run(es, 1)
        paths.append(save_checkpoint(tmp_path, es.model, es, tokenizer=char_tokenizer(), extra={"config": {}}))
    return paths


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize(("damage", "file", "message"), [
    (_truncate, STATE_FILE, "is damaged: it is truncated or not a torch file"),
    (lambda p: p.write_bytes(b""), STATE_FILE, "is damaged: the file is empty"),
    (lambda p: p.write_bytes(b"not a zip"), STATE_FILE, "is damaged"),
    (lambda p: torch.save([1, 2], p), STATE_FILE, "does not hold a trainer state"),
    (_truncate, "model.safetensors", "is damaged: it is truncated or not a safetensors file"),
    (lambda p: p.unlink(), "model.safetensors", "is missing"),
])
def test_a_damaged_checkpoint_names_the_file_and_the_previous_intact_one(two_checkpoints, damage, file, message):
    from trainer.checkpoint import CheckpointError, verify_checkpoint

    first, second = two_checkpoints
    damage(second / file)
    with pytest.raises(CheckpointError, match=message) as info:
        verify_checkpoint(second)
    err = info.value
    assert err.path == second / file and err.previous == first
    assert str(err).startswith(str(second / file)) and f"the newest intact checkpoint before it is {first}" in str(err)
    damage(first / file)  # both damaged: nothing to go back to
    with pytest.raises(CheckpointError, match="no older intact checkpoint") as info:
        verify_checkpoint(second)
    assert info.value.previous is None


class _Payload:
    def __reduce__(self):
        return (exec, ("import builtins; builtins.PAYLOAD_RAN = True",))


def test_a_state_file_holding_objects_is_refused_and_runs_nothing(two_checkpoints):
    import builtins

    from trainer.checkpoint import CheckpointError

    first, second = two_checkpoints
    state = load_trainer_state(second)
    state["extra"]["hook"] = _Payload()
    torch.save(state, second / STATE_FILE)
    with pytest.raises(CheckpointError, match=r"other than plain data.*nothing in it ran") as info:
        load_trainer_state(second)
    assert info.value.previous == first and not hasattr(builtins, "PAYLOAD_RAN")


def test_edited_pointers_and_indexes_cannot_lead_outside_the_folder(two_checkpoints, tmp_path):
    import json

    from trainer.checkpoint import CheckpointError, check_weights

    first, second = two_checkpoints
    elsewhere = tmp_path.parent / f"{tmp_path.name}-elsewhere"
    elsewhere.mkdir()
    save_checkpoint(elsewhere, _es().model, _es())
    (tmp_path / "latest").write_text(f"../{elsewhere.name}/gen-000000\n")
    assert latest_checkpoint(tmp_path) == second  # the pointer is ignored: the newest complete one
    (second / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"w": "../gen-000001/x"}}))
    with pytest.raises(CheckpointError, match="names the shard '../gen-000001/x'"):
        check_weights(second)


def test_rotation_never_deletes_the_new_checkpoint_for_newer_leftovers(tmp_path):
    es = _es()
    for _ in range(4):
        _run(es, 1)
        save_checkpoint(tmp_path, es.model, es, keep=2)  # gen-3, gen-4 kept
    resumed = _es()
    load_checkpoint(tmp_path / "gen-000003", resumed)  # back to generation 3 ...
    (tmp_path / "gen-000004" / STATE_FILE).write_bytes(b"")  # ... because gen-4 is damaged
    path = save_checkpoint(tmp_path, resumed.model, resumed, keep=1)  # generation 3 again
    assert path.is_dir() and latest_checkpoint(tmp_path) == path
    _run(resumed, 1)
    assert save_checkpoint(tmp_path, resumed.model, resumed, keep=1).name == "gen-000004"  # replaces the damaged one
    assert sorted(p.name for p in tmp_path.glob("gen-*")) == ["gen-000004"]
    assert load_trainer_state(tmp_path / "gen-000004")["es"]["generation"] == 4
