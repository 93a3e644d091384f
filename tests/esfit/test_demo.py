"""The demo corpus in datasets/demo, and the interim `esfit demo` through click's runner."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from click.testing import CliRunner

from esfit.cli import main
from esfit.demo import DEMO_DIR, load_demo_corpus
from infoextract.facts import Extraction, Fact
from infoextract.records import Record, group_by_prompt, write_records
from infoextract.summary import shared_facts


@pytest.fixture(scope="module")
def corpus():
    return load_demo_corpus()


def test_demo_corpus_shape(corpus):
    train, heldout = group_by_prompt(corpus["train"]), group_by_prompt(corpus["heldout"])
    assert len(train) == 32 and len(heldout) == 8
    assert not set(train) & set(heldout)
    for group in [*train.values(), *heldout.values()]:
        assert len(group) == 4
        assert {r.author for r in group} == {"human"}
        # the prompt and the passage are the same on every record of a prompt, and present
        assert len({(r.prompt, r.source) for r in group}) == 1 and group[0].prompt and group[0].source
        sentences = re.split(r"(?<=[.!?])\s+(?=[A-Z])", group[0].source)
        assert 3 <= len(sentences) <= 6, group[0].prompt_id
        assert len({r.text for r in group}) == 4  # four different answers


def test_demo_answers_are_short_and_their_numbers_come_from_the_passage(corpus):
    for record in corpus["train"] + corpus["heldout"]:
        assert 1 <= len(record.text.split()) <= 60, record.text
        for number in re.findall(r"\d[\d,.]*\d|\d", record.text):
            assert number in record.source, (record.prompt_id, number)


def test_datasets_folder_is_data_only():
    root = DEMO_DIR.parent
    assert not list(root.rglob("*.py")), "datasets/ must not be a Python package"
    assert (DEMO_DIR / "DATASHEET.md").is_file()


def fact(kind, key, text=None):
    return Fact(kind, key, text or key, (0, 1))


def test_shared_facts_counts_each_text_once_and_ranks():
    a = Extraction((fact("date", "1815"), fact("entity", "ada", "Ada"), fact("date", "1815", "1815 again")))
    b = Extraction((fact("concept", "engine"), fact("date", "1815"), fact("entity", "ada", "Ada L.")))
    c = Extraction((fact("concept", "engine"), fact("date", "1815")))
    assert shared_facts([a, b, c], min_count=2) == [
        ("date", "1815", "1815", 3), ("entity", "ada", "Ada", 2), ("concept", "engine", "engine", 2)]
    assert shared_facts([a, b, c], min_count=3) == [("date", "1815", "1815", 3)]
    with pytest.raises(ValueError, match="min_count"):
        shared_facts([a], min_count=0)


def test_demo_command_on_a_small_corpus(tmp_path):
    source = "Ada Lovelace was born in London in 1815. She wrote the first program for the Analytical Engine."
    texts = ["Ada Lovelace was born in 1815.", "She was born in London in 1815.", "Lovelace wrote the first program."]
    write_records([Record("p1", t, prompt="When was Ada Lovelace born?", source=source) for t in texts],
                  tmp_path / "train.jsonl")
    write_records([Record("p2", "Paris is in France.", prompt="Where is Paris?"),
                   Record("p2", "It is in Spain.", prompt="Where is Paris?")], tmp_path / "heldout.jsonl")
    result = CliRunner().invoke(main, ["demo", "--facts-only", "--data-dir", str(tmp_path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "train: 1 prompts, 3 references" in result.output
    assert "records: 5" in result.output
    block = result.output.split("[train] p1")[1].split("[heldout]")[0]
    assert re.search(r"2/3\s+date\s+1815\s", block)  # the third answer gives no year
    assert "[heldout] p2" in result.output and "no fact is shared" in result.output.split("[heldout] p2")[1]


def test_demo_command_on_the_demo_corpus(corpus):
    result = CliRunner().invoke(main, ["demo", "--facts-only", "--top", "3", "--data-dir", str(DEMO_DIR)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    n = len(corpus["train"]) + len(corpus["heldout"])
    assert f"records: {n}" in result.output
    shown = re.findall(r"^\[(train|heldout)\] (demo-\d\d)", result.output, flags=re.M)
    assert Counter(split for split, _ in shown) == {"train": 32, "heldout": 8}
    # the references of a prompt agree on some facts: most prompts show at least one shared fact
    blocks = result.output.split("\n[")[1:]
    assert sum("no fact is shared" not in b for b in blocks) >= 35


def test_demo_missing_corpus_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(main, ["demo", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "train, heldout not found" in result.output and "--data-dir" in result.output
