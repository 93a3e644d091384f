"""datasets/mentions: sizes, fixed splits, references that realise the design, reproducible generation.

Fast and spaCy-free: the files are read as JSON and the generator is run in memory. How esfit's
extraction sees the design is measured by benchmarks/mentions_corpus_check.py, not here.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "datasets" / "mentions"
SCRIPT = REPO / "benchmarks" / "make_mentions_corpus.py"
SPLITS = ("train", "validation", "heldout", "test")
KINDS = {"entity", "quantity", "date", "relation"}


def _load_generator():
    spec = importlib.util.spec_from_file_location("make_mentions_corpus", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_mentions_corpus"] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def records() -> dict[str, list[dict]]:
    return {s: [json.loads(line) for line in (CORPUS / f"{s}.jsonl").read_text(encoding="utf-8").splitlines()]
            for s in SPLITS}


@pytest.fixture(scope="module")
def design() -> dict[str, dict]:
    lines = (CORPUS / "design.jsonl").read_text(encoding="utf-8").splitlines()
    return {d["prompt_id"]: d for d in map(json.loads, lines)}


@pytest.fixture(scope="module")
def by_prompt(records) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = defaultdict(list)
    for split in SPLITS:
        for r in records[split]:
            out[r["prompt_id"]].append(r)
    return out


def test_sizes_and_splits(records, design, by_prompt):
    prompts = {s: {r["prompt_id"] for r in records[s]} for s in SPLITS}
    assert {s: len(p) for s, p in prompts.items()} == {"train": 110, "validation": 30, "heldout": 40, "test": 60}
    for i, a in enumerate(SPLITS):
        for b in SPLITS[i + 1:]:
            assert not prompts[a] & prompts[b], (a, b)
    assert set(design) == set(by_prompt) == set().union(*prompts.values())
    for split in SPLITS:
        for r in records[split]:
            assert r["meta"]["split"] == split == design[r["prompt_id"]]["split"]
    # stratified: every topic has prompts in every split
    topics = Counter((d["topic"], d["split"]) for d in design.values())
    for topic in {d["topic"] for d in design.values()}:
        assert all(topics[(topic, s)] >= 2 for s in SPLITS), topic


def test_records_are_in_the_corpus_format(by_prompt):
    for pid, recs in by_prompt.items():
        assert 6 <= len(recs) <= 8, pid
        assert len({r["prompt"] for r in recs}) == 1 and len({r["source"] for r in recs}) == 1
        assert len({r["text"] for r in recs}) == len(recs), f"{pid}: two references are the same text"
        for r in recs:
            assert set(r) == {"prompt_id", "text", "author", "prompt", "source", "meta"}
            assert r["author"] == "human"
            assert set(r["meta"]) == {"facts", "split"}
            assert 7 <= len(r["text"].split()) <= 45, r["text"]
            assert 1 <= len(re.findall(r"[.!?](?:\s|$)", r["text"])) <= 3, r["text"]
        passage = recs[0]["source"]
        assert 40 <= len(passage.split()) <= 100 and 3 <= len(re.findall(r"\.(?:\s|$)", passage)) <= 5, pid


def test_references_realise_the_design(design, by_prompt):
    for pid, d in design.items():
        recs = by_prompt[pid]
        designed = {f["id"]: f for f in d["facts"]}
        unmentioned = {f["id"] for f in d["unmentioned"]}
        assert 5 <= len(designed) <= 8 and 1 <= len(unmentioned) <= 3, pid
        assert not designed.keys() & unmentioned
        counts = Counter(f for r in recs for f in r["meta"]["facts"])
        for r in recs:
            assert r["meta"]["facts"], f"{pid}: a reference states no designed fact"
            assert len(set(r["meta"]["facts"])) == len(r["meta"]["facts"])
            assert set(r["meta"]["facts"]) <= designed.keys(), f"{pid}: a reference states an unmentioned fact"
        for fid, f in designed.items():
            assert f["kind"] in KINDS and f["paraphrases"] and f["canonical"]
            assert f["n_references"] == len(recs)
            assert 0 < f["designed_rate"] <= 1
            assert f["realised_count"] == max(1, int(f["designed_rate"] * len(recs) + 0.5)), (pid, fid)
            assert counts[fid] == f["realised_count"], (pid, fid)
        for f in d["unmentioned"]:
            assert f["kind"] in KINDS and f["canonical"]


def test_mention_profiles_differ(design):
    """Some prompts are peaked (a core fact in nearly every reference), some flat."""
    top = [max(f["designed_rate"] for f in d["facts"]) for d in design.values()]
    assert sum(t >= 0.85 for t in top) >= 60 and sum(t <= 0.7 for t in top) >= 30
    assert Counter(d["profile"] for d in design.values()).keys() == {"peaked", "two_core", "flat", "long_tail"}
    tails = sum(f["realised_count"] == 1 for d in design.values() for f in d["facts"])
    assert tails >= 150  # a tail of facts only one reference states


_ONES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
         "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen")
_TENS = ("twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_WORDS = {**{w: i for i, w in enumerate(_ONES)}, **{w: 10 * (i + 2) for i, w in enumerate(_TENS)}}

def _numbers(text: str) -> set[int]:
    """Digits (with or without thousands commas) and spelled numbers ("twelve hundred", "seven")."""
    out = {int(m.replace(",", "")) for m in re.findall(r"\d[\d,]*\d|\d", text)}
    tokens = re.findall(r"[a-z]+", text.lower())
    for i, tok in enumerate(tokens):
        if tok in _WORDS:
            value = _WORDS[tok]
            nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
            if nxt == "hundred":
                value *= 100
            elif nxt == "thousand":
                value *= 1000
            out.add(value)
    return out


def test_every_number_in_a_reference_is_in_its_passage(by_prompt):
    for pid, recs in by_prompt.items():
        passage = _numbers(recs[0]["source"])
        for r in recs:
            # "one" can be a pronoun ("the first one"), not a number
            missing = {n for n in _numbers(r["text"]) if n not in passage and n != 1}
            assert not missing, f"{pid}: {sorted(missing)} not in the passage: {r['text']}"


def test_generation_is_reproducible():
    gen = _load_generator()
    files = gen.render_files(gen.build_corpus())
    assert sorted(files) == ["design.jsonl", "heldout.jsonl", "test.jsonl", "train.jsonl", "validation.jsonl"]
    for name, content in files.items():
        assert content == (CORPUS / name).read_text(encoding="utf-8"), f"{name} differs from a fresh run"


def test_the_test_split_leaves_the_first_180_prompts_as_they_were():
    """The test split was added later: the other splits' prompts come first, unchanged in design
    and order (their names are drawn before any test prompt's), and no test passage repeats one."""
    gen = _load_generator()
    prompts = gen.build_corpus()
    splits = [p.split for p in prompts]
    assert splits == sorted(splits, key=SPLITS.index) and splits.count("test") == 60
    assert all(int(p.prompt_id.rsplit("-", 1)[1]) > gen.PROMPTS_PER_TOPIC for p in prompts if p.split == "test")
    earlier = {p.source for p in prompts if p.split != "test"}
    assert not earlier & {p.source for p in prompts if p.split == "test"}


def test_datasets_is_not_a_package():
    assert not (REPO / "datasets" / "__init__.py").exists()
