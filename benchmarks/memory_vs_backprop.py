"""Peak memory of an ES rollout against a policy-gradient backprop step over the same tokens.

On the embedded SmolLM2-135M-Instruct (CPU). For each total token count (512 … 4,096), 8 rows of
equal length — half prompt, half completion — are processed either way:

- es:       the population (4 members × 2 rows) decodes the completions in one patched
            ``generate`` (low-rank terms in wrapped layers, KV cache), no gradients;
- backprop: a REINFORCE step on the same token sequences: forward with gradients, −advantage ·
            log p(completion), backward into every parameter (no optimizer state, to favour it).

Each measurement runs in its own process: after the model is loaded, the kernel's peak-RSS mark
is reset (``/proc/self/clear_refs``), and the figure is the new peak (VmHWM) minus the resident
size right before the step; a 2-token warm-up first pages the memory-mapped weights in. Last line: ``memory_ratio_4096=<ES / backprop>``.

    .venv/bin/python benchmarks/memory_vs_backprop.py
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROWS = 8
MEMBERS = 4


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status (Linux only)")


def child(mode: str, tokens: int, model_name: str) -> None:
    import torch

    from esfit.models import load_model
    from trainer import PopulationPatch, resolve_targets, sample_population

    model, tokenizer = load_model(model_name)
    per_row = tokens // ROWS
    prompt_len, new = per_row // 2, per_row - per_row // 2
    gen = torch.Generator().manual_seed(0)
    prompt = torch.randint(100, tokenizer.vocab_size, (ROWS, prompt_len), generator=gen)
    completion = torch.randint(100, tokenizer.vocab_size, (ROWS, new), generator=gen)
    targets = resolve_targets(model)
    population = sample_population(targets, seed=0, generation=0, population_size=MEMBERS, rank=1, sigma=1e-3)

    def es_rollout(prompt, new):
        with torch.no_grad(), PopulationPatch(targets) as patch:
            patch.set_population(population, rows_per_member=ROWS // MEMBERS)
            return model.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt), do_sample=False,
                                  max_new_tokens=new, min_new_tokens=new, pad_token_id=tokenizer.pad_token_id)

    def backprop_step(prompt, completion):
        ids = torch.cat([prompt, completion], 1)
        logits = model(input_ids=ids).logits[:, prompt.shape[1] - 1 : -1]  # predicts each completion token
        logp = torch.log_softmax(logits.float(), -1).gather(-1, completion.unsqueeze(-1)).squeeze(-1)
        advantage = torch.linspace(-1, 1, ROWS).unsqueeze(1)
        (-(advantage * logp).sum() / completion.numel()).backward()

    if mode == "backprop":
        model.requires_grad_(True)
        model.train()
    # warm-up on 2 tokens a row: pages the memory-mapped weights in and runs first-call set-up, so the
    # figure below is the step's own memory, not the loading of the model
    if mode == "es":
        es_rollout(prompt[:, :1], 1)
    else:
        backprop_step(prompt[:, :1], completion[:, :1])
        model.zero_grad(set_to_none=True)
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak-RSS mark to the current RSS
    before = _status_kib("VmRSS")
    if mode == "es":
        assert es_rollout(prompt, new).numel() == tokens
    else:
        backprop_step(prompt, completion)
    peak = _status_kib("VmHWM")
    print(f"{(peak - before) / 1024:.1f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--tokens", type=int, nargs="+", default=[512, 1024, 2048, 4096])
    ap.add_argument("--child", nargs=2, metavar=("MODE", "TOKENS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), args.model)
        return

    def measure(mode: str, tokens: int) -> float:
        cmd = [sys.executable, __file__, "--model", args.model, "--child", mode, str(tokens)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode:
            raise SystemExit(f"{mode} at {tokens} tokens failed:\n{done.stderr[-2000:]}")
        return float(done.stdout.strip().splitlines()[-1])

    print(f"peak memory above the loaded model, MiB ({ROWS} rows; ES: {MEMBERS} members, rank 1)", flush=True)
    print(f"{'tokens':>7} {'es':>9} {'backprop':>9} {'ratio':>7}", flush=True)
    ratio = float("nan")
    for tokens in args.tokens:
        es, bp = measure("es", tokens), measure("backprop", tokens)
        ratio = es / bp
        print(f"{tokens:>7} {es:>9.1f} {bp:>9.1f} {ratio:>7.3f}", flush=True)
    print(f"memory_ratio_{args.tokens[-1]}={ratio:.3f}", flush=True)


if __name__ == "__main__":
    main()
