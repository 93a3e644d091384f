"""What one decode step of the embedded SmolLM2-135M-Instruct costs at 2 rows and at 64 rows (CPU).

The naive ES decodes each member's rows alone; the population decodes all of them at once. So
``naive_speedup`` in ``rollout_throughput.py`` can reach at most about P·t(rows per member) /
t(P·rows per member), the ratio printed here times P/32 for the default P=32 (before prefill and the
naive ES's weight copies). A decode step is timed as (time of a 24-token rollout − time of a
1-token rollout) / 23, plain model, the fastest of ``--repeats`` interleaved runs. Last line:
``step_ratio_float32=<64-row step / 2-row step> step_ratio_bfloat16=<the same>``.

    .venv/bin/python benchmarks/decode_step_cost.py
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from esfit.models import load_model
from trainer import RolloutConfig, generate_rollouts

PROMPTS = ["Name three facts about the Moon.", "What does a bee do in a day?"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=24)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = ap.parse_args()
    if args.tokens < 2:
        ap.error("--tokens must be at least 2")
    if args.threads:
        torch.set_num_threads(args.threads)
    sys.stdout.reconfigure(line_buffering=True)
    ratios = {}
    for dtype in ("float32", "bfloat16"):
        model, tokenizer = load_model("smollm2", dtype=dtype)
        configs = {n: RolloutConfig(max_new_tokens=n, min_new_tokens=n, temperature=0.7) for n in (1, args.tokens)}
        generate_rollouts(model, tokenizer, PROMPTS[:1], configs[1])  # warm-up
        best: dict[tuple[int, int], float] = {}
        for _ in range(args.repeats):
            for rows in (2, 64):
                for n, config in configs.items():
                    t = time.perf_counter()
                    generate_rollouts(model, tokenizer, PROMPTS * (rows // 2), config)
                    best[rows, n] = min(best.get((rows, n), float("inf")), time.perf_counter() - t)
        step = {rows: (best[rows, args.tokens] - best[rows, 1]) / (args.tokens - 1) for rows in (2, 64)}
        ratios[dtype] = step[64] / step[2]
        print(f"{dtype:9s} threads={torch.get_num_threads()} decode step: 2 rows {step[2] * 1e3:6.1f} ms, "
              f"64 rows {step[64] * 1e3:6.1f} ms, ratio {ratios[dtype]:.2f} "
              f"(naive ceiling at P=32, 2 rows a member: {32 / ratios[dtype]:.1f})")
    print(" ".join(f"step_ratio_{k}={v:.2f}" for k, v in ratios.items()))


if __name__ == "__main__":
    main()
