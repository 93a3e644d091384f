"""Population rollout throughput on the embedded SmolLM2-135M-Instruct (CPU).

The same rows (P members × prompts, exactly 48 new tokens each, sampling) decoded three ways:

- plain:   the unperturbed model, one batched ``generate`` of all rows through the same sampler
           (``trainer.generate_rollouts`` with no population): the ceiling;
- patched: the ES population in one batched ``generate`` (low-rank terms added in every linear layer);
- naive:   the reference ES, one ``generate`` per member on densely materialised W + σE_i.

``--hf-sampling`` also times plain ``generate(do_sample=True)``, to show that the common-random-
number sampler costs nothing against Hugging Face's own; ``--torch-path`` also times the patched
population with the fused kernel off (``ESFIT_FUSED_KERNEL=0``: torch ops); ``--compiled`` times it
with ``torch.compile`` of the torch-ops term (``trainer.lowrank.lowrank_reference_``, dynamic
shapes, compiled in a warm-up first) called where the fused operator would be. ``--dtype bfloat16``
runs the model in bfloat16 (float32 by default). All of them alternate ``--repeats`` times
in one process and the fastest run of each counts (a busy machine slows some runs, never speeds
one up). The naive ES costs the same for every member, so ``--naive-members K`` times K members
per repeat and scales by P/K (default: all P, no scaling). Last line: ``rollout_ratio=<patched
throughput / plain throughput> naive_speedup=<naive time / patched time>``. The line before it
gives naive time / plain time, the most that any patched pass could reach.

    .venv/bin/python benchmarks/rollout_throughput.py
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from unittest import mock

import torch

from esfit.models import load_model
from trainer import (
    PopulationPatch,
    RolloutConfig,
    generate_rollouts,
    kernel,
    resolve_targets,
    sample_population,
)
from trainer.kernel import unavailable_reason
from trainer.lowrank import lowrank_reference_
from trainer.reference import naive_rollouts
from trainer.rollout import format_prompts

PROMPTS = [
    "Name three facts about the Moon.",
    "What does a bee do in a day?",
    "Why is the sky blue?",
    "Describe a river in one sentence.",
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--population", type=int, default=32)
    ap.add_argument("--rank", type=int, default=1)
    ap.add_argument("--prompts", type=int, default=2, help="prompts per member (rows per member)")
    ap.add_argument("--new-tokens", type=int, default=48)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--skip-naive", action="store_true")
    ap.add_argument("--naive-members", type=int, default=0,
                    help="time the naive ES on this many members per repeat and scale by P/K (0: all)")
    ap.add_argument("--hf-sampling", action="store_true", help="also time generate(do_sample=True)")
    ap.add_argument("--torch-path", action="store_true", help="also time the population with the fused kernel off")
    ap.add_argument("--compiled", action="store_true",
                    help="also time the population with torch.compile of the torch-ops term instead of the fused op")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"], help="the model's dtype")
    ap.add_argument("--device", default="cpu", help="cpu, or cuda (the torch ops run there; benchmarks/gpu_check.sh)")
    args = ap.parse_args()
    if not 0 <= args.naive_members <= args.population:
        ap.error(f"--naive-members={args.naive_members} must be in [0, --population={args.population}]")
    if args.threads:
        torch.set_num_threads(args.threads)
    sys.stdout.reconfigure(line_buffering=True)  # progress shows when the output is a file

    model, tokenizer = load_model(args.model, dtype=args.dtype, device=args.device)
    prompts = PROMPTS[: args.prompts]
    targets = resolve_targets(model)
    population = sample_population(targets, seed=0, generation=0, population_size=args.population,
                                   rank=args.rank, sigma=1e-3)
    config = RolloutConfig(max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens,
                           temperature=args.temperature)
    rows = args.population * len(prompts)
    tokens = rows * args.new_tokens
    print(f"model={args.model} dtype={args.dtype} device={args.device} threads={torch.get_num_threads()} "
          f"P={args.population} r={args.rank} "
          f"rows={rows} new_tokens={args.new_tokens} sampling T={args.temperature}")

    enc = tokenizer(format_prompts(tokenizer, prompts), padding=True, padding_side="left",
                    add_special_tokens=False, return_tensors="pt")
    hf_ids = enc.input_ids.repeat(args.population, 1).to(args.device)
    hf_mask = enc.attention_mask.repeat(args.population, 1).to(args.device)

    @torch.no_grad()
    def hf_sampling() -> float:
        t = time.perf_counter()
        out = model.generate(input_ids=hf_ids, attention_mask=hf_mask, do_sample=True,
                             temperature=args.temperature, top_p=None, top_k=None,
                             max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens,
                             pad_token_id=tokenizer.pad_token_id)
        assert out.shape[1] - hf_ids.shape[1] == args.new_tokens
        return time.perf_counter() - t

    def plain() -> float:
        t = time.perf_counter()
        out = generate_rollouts(model, tokenizer, prompts * args.population, config)  # the same rows
        elapsed = time.perf_counter() - t
        assert out.rows == rows
        return elapsed

    def patched(fused: bool = True, term=kernel.lowrank_op, run_config=config) -> float:
        kernel_off = {} if fused else {"ESFIT_FUSED_KERNEL": "0"}
        with (mock.patch.dict(os.environ, kernel_off), mock.patch.object(kernel, "lowrank_op", term),
              PopulationPatch(targets) as patch):
            with patch.members(population):
                layers = patch.fused_layers  # what generate_rollouts will use
            t = time.perf_counter()
            out = generate_rollouts(model, tokenizer, prompts, run_config, patch=patch, population=population)
            elapsed = time.perf_counter() - t
        assert out.rows == rows
        if fused and not layers and args.device == "cpu":  # elsewhere the torch ops are the path
            print(f"note: the patched run used torch ops ({unavailable_reason() or 'ESFIT_FUSED_KERNEL is off'})")
        return elapsed

    compiled = torch.compile(lowrank_reference_, dynamic=True) if args.compiled else None
    if compiled is not None:  # compile the prefill and the decoding graphs before anything is timed
        t = time.perf_counter()
        patched(term=compiled, run_config=RolloutConfig(max_new_tokens=3, min_new_tokens=3))
        print(f"torch.compile warm-up (compiling the term): {time.perf_counter() - t:.1f} s")

    naive_members = list(range(args.naive_members or args.population))

    def naive() -> float:
        t = time.perf_counter()
        out = naive_rollouts(model, tokenizer, prompts, config, targets=targets, population=population,
                             members=naive_members)
        elapsed = time.perf_counter() - t
        assert out.rows == len(naive_members) * len(prompts)
        return elapsed * args.population / len(naive_members)

    runs = {"plain": plain, "patched": patched} | ({"hf-sampling": hf_sampling} if args.hf_sampling else {})
    runs |= {"torch-path": lambda: patched(fused=False)} if args.torch_path else {}
    runs |= {"compiled": lambda: patched(term=compiled)} if compiled is not None else {}
    runs |= {} if args.skip_naive else {"naive": naive}
    generate_rollouts(model, tokenizer, prompts[:1], config)  # warm-up: pages the weights in
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(args.repeats):
        for k, run in runs.items():
            times[k].append(run())
    best = {k: min(v) for k, v in times.items()}
    for k in runs:
        each = " ".join(f"{t:.2f}" for t in times[k])
        print(f"{k:11s} best {best[k]:7.2f} s  {tokens / best[k]:8.1f} tok/s   (runs: {each})")
    rollout_ratio = best["plain"] / best["patched"]
    naive_speedup = float("nan")
    if not args.skip_naive:
        naive_speedup = best["naive"] / best["patched"]
        scaled = f", timed on {len(naive_members)} members and scaled" if len(naive_members) < args.population else ""
        print(f"naive: {args.population} generate calls of {len(prompts)} rows on dense W + σE_i per member{scaled}")
        print(f"naive / plain = {best['naive'] / best['plain']:.1f}: the most any patched pass could reach here")
    if args.torch_path:
        print(f"torch ops instead of the fused kernel: ratio {best['plain'] / best['torch-path']:.3f}")
    if compiled is not None:
        print(f"torch.compile of the torch ops instead of the fused kernel: ratio {best['plain'] / best['compiled']:.3f}")
    print(f"rollout_ratio={rollout_ratio:.3f} naive_speedup={naive_speedup:.1f}")


if __name__ == "__main__":
    main()
