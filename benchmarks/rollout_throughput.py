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

``--backend vllm`` (run it from the vLLM environment, ``make install-vllm``) times instead, on the
same rows: plain vLLM (an engine without LoRA), the vLLM population (one LoRA adapter per member,
fresh noise every run, so each run pays for writing its adapters) and the HF patched population.
Plain vLLM runs first and its engine is shut down before the LoRA engine starts (one in-process
engine at a time); the HF and vLLM populations alternate. It also times the per-generation
refresh: the adapters' write (factors regenerated from the seeds in the worker) and the in-place
reload of the centre weights after an update. ``--vllm-own-lora`` also times the vLLM population
with vLLM's own CPU LoRA ops instead of ``trainer.vllm_cpu_lora``'s (alternating with the others).
The line before the last gives the conditions: CPUs, torch threads, the load average at the start
and the end (other jobs on the machine), and which LoRA term ran. Last line: ``vllm_vs_hf_population=<HF patched
time / vLLM population time> vllm_vs_plain_vllm=<plain vLLM time / vLLM population time>
refresh_share=<(adapter write + centre reload) / vLLM population time>``.

    .venv/bin/python benchmarks/rollout_throughput.py
    .venv-vllm/bin/python benchmarks/rollout_throughput.py --backend vllm
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
    ap.add_argument("--backend", default="hf", choices=["hf", "vllm"],
                    help="hf: the patched population against plain and naive HF; vllm: vLLM against HF (see above)")
    ap.add_argument("--vllm-options", default="", help="vLLM engine options as a JSON object (with --backend vllm)")
    ap.add_argument("--vllm-own-lora", action="store_true",
                    help="with --backend vllm: also time the population with vLLM's own CPU LoRA ops")
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

    if args.backend == "vllm":
        return vllm_main(args, model, tokenizer, prompts, targets, config, rows, tokens)

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


def vllm_main(args, model, tokenizer, prompts, targets, config, rows: int, tokens: int) -> None:
    """``--backend vllm``: plain vLLM, the vLLM population and the HF patched population on the same rows."""
    from esfit.models import EMBEDDED_MODELS, embedded_model_dir
    from trainer.vllm_backend import VLLMBackend, import_vllm, parse_options

    vllm = import_vllm()
    load_start = os.getloadavg()  # other jobs on the machine (the figures are ratios measured side by side)
    model_dir = str(embedded_model_dir(args.model) if args.model in EMBEDDED_MODELS else args.model)
    options = {"max_model_len": 512, **parse_options(args.vllm_options)}
    threads = torch.get_num_threads()
    pops = iter(range(1, 10_000))  # a fresh population (noise generation) for every timed run

    def population(generation: int):
        return sample_population(targets, seed=0, generation=generation, population_size=args.population,
                                 rank=args.rank, sigma=1e-3)

    # plain vLLM: an engine without LoRA, the same rows through the same sampling parameters
    os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    t = time.perf_counter()
    plain_llm = vllm.LLM(model=model_dir, dtype=args.dtype, seed=0, generation_config="vllm", **options)
    print(f"plain vLLM engine started in {time.perf_counter() - t:.1f} s")
    ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in format_prompts(tokenizer, prompts)]
    inputs = [{"prompt_token_ids": ids[j]} for _ in range(args.population) for j in range(len(prompts))]
    sampling = [vllm.SamplingParams(max_tokens=args.new_tokens, min_tokens=args.new_tokens, temperature=args.temperature,
                                    seed=i, detokenize=False) for i in range(rows)]

    def plain_vllm() -> float:
        t = time.perf_counter()
        out = plain_llm.generate(inputs, sampling, use_tqdm=False)
        elapsed = time.perf_counter() - t
        assert sum(len(o.outputs[0].token_ids) for o in out) == tokens
        return elapsed

    plain_vllm()  # warm-up
    plain_times = [plain_vllm() for _ in range(args.repeats)]
    plain_llm.llm_engine.engine_core.shutdown()
    plain_llm = None  # noqa: F841 - dropped before the LoRA engine starts
    import gc

    gc.collect()

    t = time.perf_counter()
    backend = VLLMBackend(model, tokenizer, targets, model_dir=model_dir, slots=args.population, rank=args.rank,
                          options=options)
    print(f"LoRA engine ({args.population} in-memory adapters, LoRA rank {backend.lora_rank}) started in "
          f"{time.perf_counter() - t:.1f} s")
    if torch.get_num_threads() != threads:  # vLLM lowers the process's torch threads for serving
        print(f"note: torch threads {torch.get_num_threads()} after the engine started; set back to {threads}")
        torch.set_num_threads(threads)
    adapter_s: list[float] = []

    def vllm_population() -> float:
        pop = population(next(pops))
        t = time.perf_counter()
        out = backend.rollout(prompts, config, population=pop, generation=pop.generation)
        elapsed = time.perf_counter() - t
        adapter_s.append(backend.timings["adapters_s"])
        assert out.rows == rows and out.new_tokens == tokens
        return elapsed

    hf_term: list[str] = []

    def hf_patched() -> float:
        pop = population(next(pops))
        with PopulationPatch(targets) as patch:
            with patch.members(pop):
                hf_term[:] = ["fused kernel" if patch.fused_layers else "torch ops"]
            t = time.perf_counter()
            out = generate_rollouts(model, tokenizer, prompts, config, patch=patch, population=pop)
            elapsed = time.perf_counter() - t
        assert out.rows == rows
        return elapsed

    def vllm_own_lora() -> float:  # the same, with vLLM's own CPU LoRA ops instead of trainer.vllm_cpu_lora's
        backend.llm.collective_rpc("esfit_fast_lora", args=(False,))
        try:
            return vllm_population()
        finally:
            backend.llm.collective_rpc("esfit_fast_lora", args=(True,))

    vllm_population()  # warm-up
    adapter_s.clear()
    runs = {"vllm-pop": vllm_population, "hf-patched": hf_patched}
    if args.vllm_own_lora and backend.fast_lora:
        runs["vllm-own-op"] = vllm_own_lora
    times = {"plain-vllm": plain_times} | {k: [] for k in runs}
    centre_s = []
    for _ in range(args.repeats):
        for k, run in runs.items():
            times[k].append(run())
        backend.refresh()  # what the loop does after every update
        centre_s.append(backend.timings["centre_s"])
    backend.close()
    if "vllm-own-op" in runs:
        adapter_s[:] = adapter_s[::2]  # the fast-op runs' writes (the same work either way)
    best = {k: min(v) for k, v in times.items()}
    for k, v in times.items():
        each = " ".join(f"{x:.2f}" for x in v)
        print(f"{k:11s} best {best[k]:7.2f} s  {tokens / best[k]:8.1f} tok/s   (runs: {each})")
    adapters, centre = min(adapter_s), min(centre_s)
    refresh_share = (adapters + centre) / best["vllm-pop"]
    print(f"refresh per generation: adapters {adapters:.3f} s ({adapters / best['vllm-pop']:.1%}), centre reload "
          f"{centre:.3f} s ({centre / best['vllm-pop']:.1%}) of a {best['vllm-pop']:.2f} s vLLM population rollout")
    if "vllm-own-op" in runs:
        print(f"vLLM's own CPU LoRA ops instead of trainer.vllm_cpu_lora's: vllm_vs_hf_population "
              f"{best['hf-patched'] / best['vllm-own-op']:.3f}")
    load_end = os.getloadavg()
    print(f"conditions: {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, load average (1 min) "
          f"{load_start[0]:.1f} at the start, {load_end[0]:.1f} at the end; LoRA term "
          f"{'trainer.vllm_cpu_lora' if backend.fast_lora else 'vLLM own ops'} (vLLM), {hf_term[0]} (HF)")
    print(f"vllm_vs_hf_population={best['hf-patched'] / best['vllm-pop']:.3f} "
          f"vllm_vs_plain_vllm={best['plain-vllm'] / best['vllm-pop']:.3f} refresh_share={refresh_share:.4f}")


if __name__ == "__main__":
    main()
