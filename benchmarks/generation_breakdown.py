"""Where the time of one training generation goes, on the embedded default (SmolLM2-135M-Instruct).

Runs ``esfit train`` with a configuration (``--config``, default the set-level demo's
``datasets/mentions/train.toml``; ``datasets/demo/train.toml`` is the greedy facts demo) for a few
generations without evaluation and prints, per generation and on average, the seconds spent
rolling the population out (batched, patched ``generate``), extracting facts from every
completion (one batched spaCy call), computing the fitness from the extractions, and updating the
weights (noise regeneration, the stacked-factor gradient and the optimizer step). The references
are extracted once before the first generation and are not counted.

Last line: ``overhead_share=<(extraction + fitness + update) / generation>`` (target ≤ 0.15).

Usage: python benchmarks/generation_breakdown.py [--config FILE] [--generations 2] [--threads 1] [KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import tempfile

from esfit.config import parse_override
from esfit.demo import DEMO_CONFIG

PARTS = ("rollout_s", "extraction_s", "fitness_s", "update_s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(DEMO_CONFIG), help="training configuration (default: the demo's)")
    parser.add_argument("--generations", type=int, default=2, help="generations to time (default 2)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. population_size=16")
    args = parser.parse_args()

    from esfit.config import load_config
    from esfit.training import train

    with tempfile.TemporaryDirectory() as out:
        overrides = dict(parse_override(o) for o in args.overrides)
        overrides.update(generations=args.generations, eval_data="", checkpoint_every=0, output_dir=out,
                         threads=args.threads)
        config = load_config(args.config, overrides)
        result = train(config, progress=False, echo=lambda s: None)
    print(f"population {config.population_size}, {config.prompts_per_generation} prompts x "
          f"{config.rollouts_per_prompt} rollouts, up to {config.max_new_tokens} new tokens, "
          f"{'greedy' if config.greedy else 'sampled'}, threads {args.threads or 'default'}")
    print(f"{'generation':>10} " + " ".join(f"{p[:-2]:>10}" for p in PARTS) + f" {'total':>10} {'tok/s':>8}")
    for m in result.history:
        print(f"{m['generation']:>10} " + " ".join(f"{m[p]:>10.2f}" for p in PARTS)
              + f" {m['generation_s']:>10.2f} {m['tokens_per_s']:>8.1f}")
    total = sum(m["generation_s"] for m in result.history)
    sums = {p: sum(m[p] for m in result.history) for p in PARTS}
    print("share of the generation: " + ", ".join(f"{p[:-2]} {sums[p] / total:.1%}" for p in PARTS))
    overhead = (sums["extraction_s"] + sums["fitness_s"] + sums["update_s"]) / total
    print(f"overhead_share={overhead:.4f}")


if __name__ == "__main__":
    main()
