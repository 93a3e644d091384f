"""`esfit train` loses nothing and runs nothing it was not asked to (issue 13): used output folders,
resumed copies, edited checkpoints, the run lock, a full disk, a non-finite update, a failing
evaluation. Each test runs the command through click's runner on the tiny model."""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file
from tinyrun import letter_share, make_setup

from esfit.cli import main
from esfit.runlog import LOCK_FILE, RunLock
from trainer.checkpoint import latest_checkpoint, verify_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict[str, str]:
    return make_setup(tmp_path_factory.mktemp("tiny"))


def _args(setup, out: Path, *more: str, eval_data: bool = True) -> list[str]:
    args = ["train", "--model", setup["model"], "--train-data", setup["train_data"], "--population-size", "4",
            "--sigma", "0.1", "--learning-rate", "0.05", "--max-new-tokens", "4", "--prompts-per-generation", "2",
            "--threads", "1", "--samples-shown", "0", "--eval-every", "2", "--checkpoint-every", "2",
            "--keep-checkpoints", "2", "--no-greedy", "--output-dir", str(out), "--quiet",
            "--set", 'fitness="f1_at_k:1"']
    if eval_data:
        args += ["--eval-data", setup["eval_data"]]
    return [*args, *more]


def _run(args: list[str], ok: bool = True):
    result = CliRunner().invoke(main, args)
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert (result.exit_code == 0) == ok, result.output
    return result


def _snapshot(root: Path) -> dict[str, tuple[bytes, int] | None]:
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns) if p.is_file() else None
            for p in sorted(root.rglob("*"))}


def _generations(out: Path) -> list[int]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [r["generation"] for r in rows if r["kind"] == "train"]


# --- item 1: a fresh run in a used output folder -------------------------------------------------

def test_a_fresh_run_in_a_used_folder_is_refused_and_overwrite_starts_clean(setup, tmp_path):
    out = tmp_path / "R"
    _run(_args(setup, out, "--generations", "6"))
    assert sorted(p.name for p in (out / "checkpoints").glob("gen-*")) == ["gen-000004", "gen-000006"]
    (out / "notes.txt").write_text("mine\n")
    before = _snapshot(out)
    refused = _run(_args(setup, out, "--generations", "2"), ok=False)
    assert f"--output-dir {out}: holds another run" in refused.output and "--overwrite-output-dir" in refused.output
    assert _snapshot(out) == before  # nothing of the old run touched, metrics.jsonl included

    fresh = _run(_args(setup, out, "--generations", "2", "--overwrite-output-dir"))
    final = out / "checkpoints" / "gen-000002"
    assert f"final checkpoint: {final}" in fresh.output and final.is_dir()
    assert sorted(p.name for p in (out / "checkpoints").glob("gen-*")) == ["gen-000002"]  # the old run's gone
    assert (out / "checkpoints" / "latest").read_text().strip() == "gen-000002"
    assert json.loads((out / "summary.json").read_text())["checkpoint"] == str(final)
    assert _generations(out) == [0, 1]
    assert (out / "notes.txt").read_text() == "mine\n"  # only esfit's files are deleted
    assert not (out / LOCK_FILE).exists()
    # a later resume continues the new run, not the old one
    resumed = _run(["train", "--resume", str(out), "--generations", "3", "--quiet"])
    assert f"resuming from {final} at generation 2" in resumed.output
    assert _generations(out) == [0, 1, 2]


# --- item 2: --resume writes only into the folder it resumes ------------------------------------

def test_resuming_a_copied_run_writes_only_into_the_copy(setup, tmp_path):
    a, b = tmp_path / "A", tmp_path / "B"
    _run(_args(setup, a, "--generations", "4", "--checkpoint-every", "1", "--keep-checkpoints", "2"))
    shutil.copytree(a, b, symlinks=True)
    before = _snapshot(a)
    _run(["train", "--resume", str(b), "--generations", "5", "--quiet"])
    _run(["train", "--resume", str(b / "checkpoints" / "gen-000005"), "--generations", "6", "--quiet"])
    # settings from a file whose output_dir is the original: the resumed folder still wins
    toml = tmp_path / "a.toml"
    toml.write_text(f'output_dir = "A"\nmodel = {setup["model"]!r}\ntrain_data = {setup["train_data"]!r}\n'
                    'population_size = 4\nmax_new_tokens = 4\nthreads = 1\nfitness = "f1_at_k:1"\n')
    _run(["train", "--config", str(toml), "--resume", str(b), "--generations", "7", "--quiet"])
    assert _snapshot(a) == before  # the original run: no file written, none deleted
    assert sorted(p.name for p in (b / "checkpoints").glob("gen-*")) == ["gen-000006", "gen-000007"]
    assert json.loads((b / "config.json").read_text())["output_dir"] == str(b)
    assert _generations(b) == [0, 1, 2, 3, 4, 5, 6]


def test_an_edited_trainer_state_imports_no_plugin_and_writes_nowhere_else(setup, tmp_path):
    a, b = tmp_path / "A", tmp_path / "B"
    _run(_args(setup, a, "--generations", "2"))
    shutil.copytree(a, b)
    marker = tmp_path / "EVIL_RAN"
    evil = tmp_path / "evil.py"
    evil.write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    state_file = b / "checkpoints" / "gen-000002" / "trainer_state.pt"
    state = torch.load(state_file, weights_only=True)
    state["extra"]["config"].update(plugins=[str(evil)], output_dir=str(a), keep_checkpoints=1)
    torch.save(state, state_file)
    before = _snapshot(a)
    result = _run(["train", "--resume", str(b), "--generations", "4", "--quiet"])
    assert f"final checkpoint: {b / 'checkpoints' / 'gen-000004'}" in result.output
    assert not marker.exists()  # the stored plugin was never imported
    assert _snapshot(a) == before  # the stored output_dir was never written
    saved = json.loads((b / "config.json").read_text())
    assert saved["output_dir"] == str(b) and saved["plugins"] == []


# --- item 5: one run per folder ------------------------------------------------------------------

def test_the_run_lock_names_its_holder_and_leaves_nothing_behind(tmp_path):
    folder = tmp_path / "run"
    lock = RunLock(folder).acquire(create=True)
    assert (folder / LOCK_FILE).is_file()
    info = json.loads((folder / LOCK_FILE).read_text())
    assert {"pid", "host", "started", "command"} <= info.keys()
    other = RunLock(folder)  # another open file: flock refuses it, even in this process
    assert f"pid {info['pid']} on host {info['host']}" in other.holder()
    with pytest.raises(ValueError, match=rf"in use by another esfit run \(pid {info['pid']}"):
        other.acquire()
    lock.release()
    assert not folder.exists()  # created by the lock, nothing written: removed again
    # a lock file left by a killed process does not block: the kernel dropped its lock
    folder.mkdir()
    (folder / LOCK_FILE).write_text('{"pid": 1, "host": "gone", "started": "then"}\n')
    assert RunLock(folder).holder() is None
    with RunLock(folder):
        assert json.loads((folder / LOCK_FILE).read_text())["host"] != "gone"
    assert folder.is_dir() and not (folder / LOCK_FILE).exists()


class _Ranks:
    """A stand-in for the distributed context: rank 0 broadcasts, the others receive."""

    def __init__(self, rank: int, received=None):
        self.is_main, self.received, self.sent = rank == 0, received, []

    def broadcast_object(self, obj):
        if self.is_main:
            self.sent.append(obj)
            return obj
        return self.received


def test_every_rank_fails_cleanly_when_rank_0_cannot_claim_the_folder(setup, tmp_path):
    from esfit.config import load_config
    from esfit.training import _claim_output
    from trainer.distributed import PeerFailure

    (tmp_path / "afile").write_text("x")
    config = load_config(overrides={"model": setup["model"], "train_data": setup["train_data"],
                                    "output_dir": str(tmp_path / "afile")})
    main_rank = _Ranks(0)
    with pytest.raises(ValueError, match="is a file, not a folder"):
        _claim_output(config, None, False, main_rank)
    assert "is a file, not a folder" in main_rank.sent[0]
    with pytest.raises(PeerFailure, match="rank 0 refused the output folder: .*is a file"):
        _claim_output(config, None, False, _Ranks(1, received=main_rank.sent[0]))
    assert _claim_output(config, None, False, _Ranks(1, received=None)) is None  # others never lock


# --- a full disk, a non-finite update, a failing evaluation -------------------------------------

def test_a_disk_that_fills_during_a_checkpoint_keeps_the_previous_one(setup, tmp_path, monkeypatch):
    import trainer.checkpoint as checkpoint

    real, calls = checkpoint._write_state, []

    def full_disk(state, path):
        calls.append(path)
        if len(calls) == 2:
            path.write_bytes(b"half")  # what a full disk leaves
            raise OSError(errno.ENOSPC, "No space left on device")
        real(state, path)

    monkeypatch.setattr(checkpoint, "_write_state", full_disk)
    out = tmp_path / "run"
    result = _run(_args(setup, out, "--generations", "4", "--checkpoint-every", "1"), ok=False)
    first = out / "checkpoints" / "gen-000001"
    assert f"writing the checkpoint {out / 'checkpoints' / 'gen-000002'} failed (No space left on device)" \
        in result.output
    assert f"the previous checkpoint {first} is intact" in result.output and f"--resume {out}" in result.output
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["gen-000001", "latest"]  # no staging left
    assert latest_checkpoint(out) == first and verify_checkpoint(first)["es"]["generation"] == 1
    assert not (out / "summary.json").exists() and not (out / LOCK_FILE).exists()
    monkeypatch.setattr(checkpoint, "_write_state", real)  # space freed: the run goes on from there
    resumed = _run(["train", "--resume", str(out), "--quiet"])
    assert f"resuming from {first} at generation 1" in resumed.output and latest_checkpoint(out).name == "gen-000004"


def _python_fitness(monkeypatch, fn):
    """Make the command score with a Python fitness (what a plugin could compute)."""
    monkeypatch.setattr("esfit.training._scorer", lambda config, fitness, sets: fn)


def test_a_non_finite_update_stops_with_one_error_and_saves_nothing_after_it(setup, tmp_path, monkeypatch):
    _python_fitness(monkeypatch, letter_share)  # graded, so that the update is not zero
    out = tmp_path / "run"
    # a finite but absurd learning rate: the step overflows float32 (the config accepts it: it is finite)
    result = _run(_args(setup, out, "--generations", "4", "--checkpoint-every", "1", "--optimizer", "sgd",
                        "--learning-rate", "1e38", eval_data=False), ok=False)
    assert "is not finite (learning_rate=1e+38" in result.output and "lower the learning rate" in result.output
    first = out / "checkpoints" / "gen-000001"  # generation 1 changed nothing (equal fitness), 2 overflowed
    assert f"The last checkpoint {first} is intact" in result.output
    assert sorted(p.name for p in (out / "checkpoints").glob("gen-*")) == ["gen-000001"]
    assert not (out / "summary.json").exists() and _generations(out) == [0]  # the failed one is not logged
    assert all(torch.isfinite(t).all() for t in load_file(first / "model.safetensors").values())


def test_a_failing_evaluation_before_training_names_the_evaluation_not_a_member(setup, tmp_path, monkeypatch):
    def broken(groups, prompt_ids):
        raise KeyError("reference")

    _python_fitness(monkeypatch, broken)
    out = tmp_path / "run"
    result = _run(_args(setup, out, "--generations", "2"), ok=False)
    assert "evaluating the centre model on the held-out prompts after 0 generations" in result.output
    assert "member 0" not in result.output and "--resume" not in result.output  # no checkpoint to resume
    assert "No checkpoint was written" in result.output and "--overwrite-output-dir" in result.output


def test_held_out_completions_are_named_only_when_written(setup, tmp_path):
    with_eval = _run(_args(setup, tmp_path / "a", "--generations", "2"))
    last = tmp_path / "a" / "eval" / "gen-000002.jsonl"
    assert f"held-out completions: {last.parent}" in with_eval.output and f"--candidates {last}" in with_eval.output
    assert last.is_file()
    without = _run(_args(setup, tmp_path / "b", "--generations", "1", eval_data=False))
    assert "held-out completions" not in without.output and not (tmp_path / "b" / "eval").exists()
