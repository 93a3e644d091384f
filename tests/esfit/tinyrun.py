"""Helpers for the training tests: a tiny model folder, a tiny corpus and a cheap fitness.

A module, not a conftest, so that the scripts the tests start in subprocesses (a run killed with
SIGKILL, ranks under torchrun) can import the same fitness.
"""

from __future__ import annotations

import json
from pathlib import Path

from infoextract.facts import Extraction, Fact


def make_setup(folder: Path) -> dict[str, str]:
    """A tiny Llama-style model (save_pretrained) and train/held-out corpora in ``folder``."""
    from trainer.testing import char_tokenizer, tiny_llama

    folder.mkdir(parents=True, exist_ok=True)
    model_dir = folder / "model"
    if not (model_dir / "model.safetensors").is_file():
        tiny_llama(seed=0).save_pretrained(model_dir)
        char_tokenizer().save_pretrained(model_dir)
    for name, ids in (("train", range(4)), ("heldout", range(4, 6))):
        with open(folder / f"{name}.jsonl", "w") as fh:
            for i in ids:
                for k in range(2):
                    fh.write(json.dumps({"prompt_id": f"p{i}", "text": f"a answer {i} {k}", "prompt": f"what is {i}?",
                                         "source": f"passage {i} says {i}."}) + "\n")
    return {"model": str(model_dir), "train_data": str(folder / "train.jsonl"),
            "eval_data": str(folder / "heldout.jsonl")}


def base_overrides(folder: Path, **changes) -> dict:
    """Settings of a few-second run on the tiny model."""
    settings = dict(make_setup(folder), output_dir=str(folder / "out"), generations=4, population_size=4,
                    sigma=0.1, learning_rate=0.05, optimizer="adam", max_new_tokens=6, prompts_per_generation=2,
                    eval_every=2, checkpoint_every=2, keep_checkpoints=0, samples_shown=1, seed=5,
                    threads=1)  # tiny matmuls: extra OpenMP threads only spin, on a busy machine very slowly
    settings.update(changes)
    return settings


def letter_share(completions_by_prompt, prompt_ids) -> float:
    """Share of the letter 'e' in the completions, plus a little for length: cheap and graded."""
    texts = [t for group in completions_by_prompt for t in group]
    chars = sum(len(t) for t in texts)
    return sum(t.count("e") for t in texts) / max(1, chars) + 0.01 * chars / max(1, len(texts))


class WordExtractor:
    """A stand-in for infoextract.Extractor: every word is an entity fact. Counts its calls."""

    def __init__(self):
        self.calls: list[int] = []

    def extract(self, texts, sources=None, *, progress=False):
        self.calls.append(len(texts))
        out = []
        for text in texts:
            words = list(dict.fromkeys(text.lower().split()))
            out.append(Extraction(tuple(Fact("entity", w, w, (0, len(w)), "X") for w in words)))
        return out
