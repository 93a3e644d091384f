"""Extract every human SQuALITY response and every ChatGPT SQuAD answer; print facts per response by kind.

The "done when" check of the extraction layer: every human response of
``../shared/data/squality/v1-3_txt_test.jsonl`` and every ChatGPT answer (and, for comparison,
every human answer span) of ``../shared/data/squad_chatgpt/SQuAD1_chatgpt.csv`` goes through the
full extractor with its source (story or paragraph) for alignment. For each corpus and author it
prints the records, the mean unique facts per response by kind, and the share of facts that align
to a source sentence.

Usage: python benchmarks/extract_shared_data.py [--cache extract-cache.sqlite] [--limit N]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from infoextract import Extractor, format_summary, load_corpus, summarize_extractions

SHARED = Path(os.environ.get("ESFIT_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
CORPORA = [
    ("SQuALITY v1-3 test", "squality", SHARED / "squality" / "v1-3_txt_test.jsonl", ("human",)),
    ("SQuAD1 ChatGPT (MGTBench)", "mgtbench", SHARED / "squad_chatgpt" / "SQuAD1_chatgpt.csv", ("chatgpt", "human")),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", default=None, help="sqlite cache file (re-runs cost nothing)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N records of each corpus")
    args = parser.parse_args()
    extractor = Extractor(cache=args.cache)
    print(f"pipeline: {extractor.signature}")
    for title, fmt, path, authors in CORPORA:
        if not path.is_file():
            print(f"\n{title}: {path} not found, skipped")
            continue
        records = load_corpus(fmt, path)[: args.limit]
        for author in authors:
            chosen = [r for r in records if r.author == author]
            start = time.perf_counter()
            extractions = extractor.extract_records(chosen, progress=True)
            seconds = time.perf_counter() - start
            unique = [f for e in extractions for f in e.unique_facts]
            aligned = sum(f.source_index is not None for f in unique) / max(len(unique), 1)
            words = sum(len(r.text.split()) for r in chosen) / max(len(chosen), 1)
            print(f"\n{title}, author={author}: {len(extractions)} of {len(chosen)} responses extracted "
                  f"without error in {seconds:.1f} s ({words:.0f} words per response)")
            print(format_summary(summarize_extractions(extractions)))
            print(f"  facts aligned to a source sentence: {aligned:.1%}")


if __name__ == "__main__":
    main()
