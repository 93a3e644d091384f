"""How long does fitness scoring take beyond extraction? (issue 3, section 8)

Part 1, corpus scale: 1,000 prompts x 10 candidate answers against 5 references each, with
synthetic extractions shaped like real ones (30 facts an answer drawn from a 120-fact pool per
prompt, Zipf-distributed popularity), scored with the default fitness. Extraction is timed
separately on real text (the demo corpus) and extrapolated to the same number of answers.

Part 2, trainer scale: one ES generation on the embedded SmolLM2 (population x prompts x rollouts
in one batched ``generate``), then ``TextFitness.score_population`` on its completions; printed:
the share of the generation that fitness scoring (extraction excluded) and extraction add.
Skip it with ``--no-model``.

    .venv/bin/python benchmarks/fitness_speed.py [--no-model]

Last line: ``fitness_overhead_share=<fitness seconds / generation seconds>``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fitness import DEFAULT_SPEC, TextFitness, build_fitness  # noqa: E402
from infoextract import Extraction, Fact, group_by_prompt, read_records  # noqa: E402

KINDS = ("entity", "concept", "relation", "quantity", "date")


def synthetic(n_prompts: int, n_answers: int, n_refs: int, *, facts: int = 30, pool: int = 120, seed: int = 0):
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, pool + 1)
    weights /= weights.sum()
    cands, refs = {}, {}
    for p in range(n_prompts):
        keys = [f"fact {p} {i}" for i in range(pool)]
        kinds = rng.choice(KINDS, size=pool, p=[0.15, 0.35, 0.4, 0.05, 0.05])

        def answer(keys=keys, kinds=kinds):
            idx = rng.choice(pool, size=facts, replace=False, p=weights)
            return Extraction(tuple(Fact(kinds[i], keys[i], keys[i], (0, 1), "X") for i in idx))

        cands[str(p)] = [answer() for _ in range(n_answers)]
        refs[str(p)] = [answer() for _ in range(n_refs)]
    return cands, refs


def part_corpus(spec: str) -> None:
    fit = build_fitness(spec)
    cands, refs = synthetic(1000, 10, 5)
    t0 = time.perf_counter()
    result = fit.score(cands, refs)
    t_fit = time.perf_counter() - t0
    print(f"corpus: 1000 prompts x 10 answers (5 references each), fitness {fit}")
    print(f"  scoring beyond extraction: {t_fit:.2f} s  (total={result.total:+.3f})")
    from infoextract import Extractor

    texts = [r.text for r in read_records(REPO / "datasets" / "demo" / "train.jsonl")]
    ex = Extractor()
    ex.extract(texts[:4])  # warm up the pipeline
    t0 = time.perf_counter()
    ex.extract(texts)
    t_ext = (time.perf_counter() - t0) / len(texts)
    words = np.mean([len(t.split()) for t in texts])
    print(f"  extraction on real text: {t_ext * 1000:.1f} ms per answer of {words:.0f} words -> "
          f"{t_ext * 15000:.0f} s for the 15,000 answers; fitness/extraction = {t_fit / (t_ext * 15000):.3f}")


def part_generation(spec: str, members: int, prompts: int, rollouts: int, new_tokens: int) -> float:
    import torch

    from esfit.models import load_model

    torch.manual_seed(0)
    model, tok = load_model("smollm2")
    model.eval()
    groups = group_by_prompt(read_records(REPO / "datasets" / "demo" / "train.jsonl"))
    pids = list(groups)[:prompts]
    chats = [tok.apply_chat_template([{"role": "user", "content": groups[p][0].prompt}], tokenize=False,
                                     add_generation_prompt=True) for p in pids]
    batch = [c for _ in range(members) for c in chats for _ in range(rollouts)]
    enc = tok(batch, return_tensors="pt", padding=True)
    t0 = time.perf_counter()
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=new_tokens, do_sample=True, temperature=0.7, top_p=1.0,
                             pad_token_id=tok.pad_token_id)
    t_gen = time.perf_counter() - t0
    texts = tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    member_completions = [
        [[texts[(m * prompts + p) * rollouts + r] for r in range(rollouts)] for p in range(prompts)]
        for m in range(members)
    ]
    from infoextract import Extractor

    class Timed:
        def __init__(self, ex):
            self.ex, self.seconds = ex, 0.0

        def extract(self, texts, sources=None, *, progress=False):
            t = time.perf_counter()
            try:
                return self.ex.extract(texts, sources, progress=progress)
            finally:
                self.seconds += time.perf_counter() - t

    extractor = Timed(Extractor())
    tf = TextFitness(spec, {p: groups[p] for p in pids}, extractor=extractor)
    tf._ensure(pids)  # references are extracted once per run, not per generation
    extractor.seconds = 0.0
    t0 = time.perf_counter()
    results = tf.score_population(member_completions, pids)
    t_all = time.perf_counter() - t0
    t_fit = t_all - extractor.seconds
    print(f"generation: {members} members x {prompts} prompts x {rollouts} rollouts = {len(batch)} sequences, "
          f"{new_tokens} new tokens, SmolLM2-135M on CPU")
    print(f"  generate {t_gen:.1f} s | extraction {extractor.seconds:.2f} s "
          f"({extractor.seconds / t_gen:.3f} of generate) | fitness beyond extraction {t_fit:.3f} s "
          f"({t_fit / t_gen:.4f} of generate)")
    print(f"  member fitness: mean {np.mean([r.total for r in results]):+.3f}, "
          f"std {np.std([r.total for r in results]):.3f}")
    return t_fit / (t_gen + extractor.seconds + t_fit)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fitness", default=DEFAULT_SPEC)
    parser.add_argument("--no-model", action="store_true", help="skip the generation part (no torch)")
    parser.add_argument("--members", type=int, default=8)
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--rollouts", type=int, default=2)
    parser.add_argument("--new-tokens", type=int, default=48)
    args = parser.parse_args()
    part_corpus(args.fitness)
    if not args.no_model:
        share = part_generation(args.fitness, args.members, args.prompts, args.rollouts, args.new_tokens)
        print(f"fitness_overhead_share={share:.4f}")


if __name__ == "__main__":
    main()
