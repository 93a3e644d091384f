"""trainer.distributed: the population split over two gloo ranks ends with the single-process weights."""

from __future__ import annotations

import json
import os
import runpy
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from trainer.distributed import DistributedContext, PeerFailure, member_block
from trainer.testing import tiny_llama

REPO = Path(__file__).resolve().parents[2]

# An ES run on a tiny model: each rank rolls out and scores only its block of members, the ranks
# exchange the fitness values, every rank applies the same update. Run alone, it is one process.
WORKER = textwrap.dedent("""
    import json, sys, weakref
    import torch
    import torch.distributed as dist
    from safetensors.torch import save_file
    from trainer import ESConfig, EvolutionStrategy, RolloutConfig, generate_rollouts
    from trainer.distributed import PeerFailure, init_distributed
    from trainer.testing import char_tokenizer, tiny_llama

    torch.set_num_threads(1)
    out = sys.argv[1]
    ctx = init_distributed("cpu")
    model, tok = tiny_llama(seed=0), char_tokenizer()
    es = EvolutionStrategy(model, ESConfig(population_size=6, rank=1, sigma=0.1, learning_rate=0.05,
                                           optimizer="adam", seed=11))
    prompts = ["what is 1?", "say 2.", "tell 3"]
    cfg = RolloutConfig(max_new_tokens=6, rollouts_per_prompt=2, temperature=1.0)  # sampled, common seeds
    members = ctx.members(6)
    history = []
    for generation in range(4):
        population = es.ask()
        with es.patch:
            r = generate_rollouts(model, tok, prompts, cfg, patch=es.patch, population=population,
                                  members=members, seed=11, generation=generation)
        # (m, G): share of the letter e per member and prompt
        local = torch.tensor([[sum(t.count("e") / max(1, len(t)) for t in g) for g in texts] for texts in r.texts],
                             dtype=torch.float64)
        full = ctx.gather_fitness(local, 6)
        history.append(es.tell(full)["fitness_mean"])
    failure = None
    try:  # rank 1 reports a failure: every rank must stop instead of hanging
        ctx.gather_fitness(None if ctx.rank == 1 else torch.zeros(len(members), 3), 6)
    except PeerFailure as exc:
        failure = str(exc)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, f"{out}/weights-{ctx.rank}.safetensors")
    group = weakref.ref(dist.group.WORLD) if ctx.enabled else None
    ctx.shutdown()
    # shutdown must free the group, joining gloo's worker threads: left alive into interpreter
    # exit, one can abort the finished process ("terminate called without an active exception")
    released = group is None or group() is None
    json.dump({"members": members, "history": history, "failure": failure, "world": ctx.world_size,
               "released": released}, open(f"{out}/rank-{ctx.rank}.json", "w"))
""")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_member_blocks_cover_the_population_once():
    assert [member_block(7, r, 3) for r in range(3)] == [[0, 1], [2, 3], [4, 5, 6]]
    assert member_block(6, 0, 1) == list(range(6))
    with pytest.raises(ValueError, match="population_size=2 is smaller than the 3 ranks"):
        member_block(2, 0, 3)
    with pytest.raises(ValueError, match=r"rank=3 must be in \[0, world_size=3\)"):
        member_block(7, 3, 3)


def test_single_process_context_passes_values_through():
    ctx = DistributedContext()
    local = torch.tensor([[1.0, float("nan")], [2.0, 3.0]])
    full = ctx.gather_fitness(local, 2)
    assert full.dtype == torch.float64 and torch.equal(full.isnan(), local.isnan())
    with pytest.raises(PeerFailure):
        ctx.gather_fitness(None, 2)


def test_two_gloo_ranks_end_with_the_single_process_weights(tmp_path):
    from safetensors.torch import load_file

    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    single, multi = tmp_path / "single", tmp_path / "multi"
    single.mkdir()
    multi.mkdir()
    # the single-process run needs no launcher: run the same script in this process
    threads, argv = torch.get_num_threads(), sys.argv
    try:
        sys.argv = [str(script), str(single)]
        runpy.run_path(str(script), run_name="__main__")
    finally:
        sys.argv = argv
        torch.set_num_threads(threads)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={_free_port()}", str(script), str(multi)]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]

    one = json.loads((single / "rank-0.json").read_text())
    ranks = [json.loads((multi / f"rank-{r}.json").read_text()) for r in range(2)]
    assert one["world"] == 1 and [r["world"] for r in ranks] == [2, 2]
    assert ranks[0]["members"] == [0, 1, 2] and ranks[1]["members"] == [3, 4, 5]
    assert ranks[0]["history"] == ranks[1]["history"] == one["history"]  # the same fitness, everywhere
    assert len(set(one["history"])) > 1  # the fitness moved: there was something to agree on
    assert all("rank(s) [1] failed" in r["failure"] for r in ranks)
    assert all(r["released"] for r in ranks), "shutdown left the process group (and its gloo threads) alive"
    reference = load_file(single / "weights-0.safetensors")
    base = tiny_llama(seed=0).state_dict()
    assert any(not torch.equal(reference[k], base[k]) for k in reference)  # it trained
    for r in range(2):
        weights = load_file(multi / f"weights-{r}.safetensors")
        assert all(torch.equal(weights[k], reference[k]) for k in reference), f"rank {r} differs"
