"""Throughput of fact extraction against a raw spaCy pass, and the speed-up of the cache.

On the same texts, in one run:

- ``extract_ratio``: docs/s of the full fact pipeline (``Extractor.extract``, no cache) divided by
  docs/s of a raw ``nlp.pipe`` pass over the same pipeline and components (target >= 0.85);
- ``cache_speedup``: time of an uncached extraction (the best full pass above) divided by the
  time of a second, cached pass over the same texts (after a first pass filled the sqlite cache).

The texts are cut into slices of ``--slice`` texts; each slice goes through the raw pass and then
the full pass, ``--repeats`` times, and each side keeps its fastest time per slice. Interleaving
at this grain means a burst of load from other processes hits both sides alike. Texts are SQuALITY human responses
(``../shared/data/squality/v1-3_txt_test.jsonl``) when present, else a bundled sample.

Usage: python benchmarks/extract_throughput.py [--n 200] [--repeats 3] [--slice 25] [--batch-size 64] [--no-resolve]
The last line is ``extract_ratio=<value> cache_speedup=<value>``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from infoextract import Extractor, load_pipeline

SQUALITY = Path(os.environ.get("ESFIT_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")) / (
    "squality/v1-3_txt_test.jsonl")

# Fallback: a few sentences written for this project, repeated to a useful size.
SAMPLE = [
    "The story follows a young pilot who crashes on a desert planet in 2150 and must walk 300 miles "
    "to the nearest colony. Along the way she meets an old trader named Harlan, who sells her water "
    "for $40 and warns her that the colony was abandoned ten years ago.",
    "Captain Morel was not a cruel man, but he ordered the crew to stay aboard the Star Queen. "
    "The ship had been damaged by a meteor on March 3, 2207, and the repairs took 18 days.",
    "Earth sends three scientists to Venus. They discover that the natives are telepathic and that "
    "the mining company has been lying to the government about the planet's resources.",
]


def load_texts(n: int) -> tuple[list[str], str]:
    if SQUALITY.is_file():
        texts = []
        with SQUALITY.open(encoding="utf-8") as fh:
            for line in fh:
                for question in json.loads(line)["questions"]:
                    texts.extend(r["response_text"] for r in question["responses"])
                if len(texts) >= n:
                    break
        return texts[:n], f"SQuALITY responses ({SQUALITY})"
    return (SAMPLE * (n // len(SAMPLE) + 1))[:n], "bundled sample (SQuALITY not found)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200, help="number of texts")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs of the raw and full passes")
    parser.add_argument("--slice", type=int, default=25, help="texts per interleaved slice")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--pipeline", default=None)
    parser.add_argument("--no-resolve", action="store_true",
                        help="extract without pronoun/short-name resolution (infoextract.coref)")
    args = parser.parse_args()

    texts, origin = load_texts(args.n)
    words = sum(len(t.split()) for t in texts)
    print(f"texts: {len(texts)} from {origin}, {words / len(texts):.0f} words on average")
    nlp = load_pipeline(args.pipeline)
    extractor = Extractor(nlp, batch_size=args.batch_size, resolve=not args.no_resolve)
    print(f"pipeline: {extractor.signature}; disabled for these kinds: {extractor.disabled or 'none'}")
    list(nlp.pipe(texts[:16], disable=extractor.disabled))  # warm-up: first-call allocations

    slices = [texts[i:i + args.slice] for i in range(0, len(texts), args.slice)]
    raw_times = [float("inf")] * len(slices)
    full_times = [float("inf")] * len(slices)
    extractions = []
    for _ in range(args.repeats):
        extractions = []
        for i, part in enumerate(slices):
            start = time.perf_counter()
            for _doc in nlp.pipe(part, batch_size=args.batch_size, disable=extractor.disabled):
                pass
            raw_times[i] = min(raw_times[i], time.perf_counter() - start)
            start = time.perf_counter()
            extractions.extend(extractor.extract(part))
            full_times[i] = min(full_times[i], time.perf_counter() - start)
    raw_best, full_best = sum(raw_times), sum(full_times)
    raw_rate, full_rate = len(texts) / raw_best, len(texts) / full_best
    how = f"best of {args.repeats} per slice of {args.slice}"
    print(f"raw nlp.pipe:        {raw_rate:8.2f} docs/s  ({how})")
    print(f"full fact pipeline:  {full_rate:8.2f} docs/s  ({how}); "
          f"{sum(e.depth for e in extractions) / len(texts):.1f} unique facts per text")

    with tempfile.TemporaryDirectory() as tmp:
        cached = Extractor(nlp, batch_size=args.batch_size, cache=Path(tmp) / "cache.sqlite",
                           resolve=not args.no_resolve)
        start = time.perf_counter()
        first = cached.extract(texts)
        fill = time.perf_counter() - start
        start = time.perf_counter()
        second = cached.extract(texts)
        hit = time.perf_counter() - start
        if first != second:
            raise SystemExit("cached pass returned different facts: the cache is broken")
    print(f"cache: first pass {fill:.2f} s (fills the cache), second pass {hit * 1000:.1f} ms, "
          f"uncached pass {full_best:.2f} s")
    print(f"extract_ratio={full_rate / raw_rate:.3f} cache_speedup={full_best / hit:.1f}")


if __name__ == "__main__":
    main()
