"""How much does sharing each member's prompt prefill across its k rollouts save? One run, side by side.

A population rollout decodes members × prompts × k rows; every row of one (member, prompt) starts
from the same prompt and the same weights, so ``generate_rollouts`` computes that prefix's KV cache
once and copies it to the k rows (``RolloutConfig(share_prefill=True)``, the default). With
passages of ~100 tokens and answers of ~30, the prefill is most of the arithmetic. This times the
same population rollout with and without sharing on the embedded SmolLM2 and the mentions corpus,
the runs interleaved, the fastest of each counted, and checks that the texts are equal.

    .venv/bin/python benchmarks/prefill_sharing.py [--members 8] [--prompts 2] [--rollouts 4]
        [--new-tokens 32] [--repeats 2] [--threads 1] [--dtype float32]

Last line: ``prefill_speedup=<unshared time / shared time> same_texts=<True|False>``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=8)
    parser.add_argument("--prompts", type=int, default=2)
    parser.add_argument("--rollouts", type=int, default=4)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--data", type=Path, default=REPO / "datasets" / "mentions" / "train.jsonl")
    args = parser.parse_args()

    import torch

    from esfit.models import load_model
    from esfit.prompts import load_prompt_set
    from trainer import ESConfig, EvolutionStrategy, RolloutConfig, generate_rollouts

    torch.set_num_threads(args.threads)
    prompts = load_prompt_set(args.data, limit=args.prompts)
    model, tokenizer = load_model("smollm2", dtype=args.dtype)
    es = EvolutionStrategy(model, ESConfig(population_size=args.members, sigma=3e-3))
    population = es.ask()
    best, texts = {True: float("inf"), False: float("inf")}, {}
    for _ in range(args.repeats):
        for share in (False, True):
            config = RolloutConfig(max_new_tokens=args.new_tokens, rollouts_per_prompt=args.rollouts,
                                   temperature=0.7, share_prefill=share)
            t0 = time.perf_counter()
            with es.patch:
                out = generate_rollouts(model, tokenizer, prompts.messages, config, patch=es.patch,
                                        population=population, seed=0, generation=0)
            best[share] = min(best[share], time.perf_counter() - t0)
            texts[share] = out.texts
    rows = args.members * args.prompts * args.rollouts
    print(f"{args.members} members x {args.prompts} prompts x {args.rollouts} rollouts = {rows} rows, "
          f"{args.new_tokens} new tokens, {args.dtype}, {args.threads} thread(s), fastest of {args.repeats}")
    print(f"separate prefills {best[False]:.2f} s, shared prefill {best[True]:.2f} s")
    print(f"prefill_speedup={best[False] / best[True]:.2f} same_texts={texts[True] == texts[False]}")


if __name__ == "__main__":
    main()
