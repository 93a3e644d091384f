"""The trainer's view: TextFitness on the demo corpus's held-out prompts with real extraction.
A population member answering like people (held-out human answers as its rollouts) must beat
members whose rollouts are degenerate in the ways an ES optimiser finds: symbol/digit strings,
a repeated phrase, the copied question, empty text, a list of the source's entities."""

from __future__ import annotations

from pathlib import Path

import pytest

from fitness import DEFAULT_SPEC, TextFitness
from infoextract import group_by_prompt, read_records

DEMO = Path(__file__).resolve().parents[2] / "datasets" / "demo" / "heldout.jsonl"


@pytest.fixture(scope="module")
def population(real_extractor):
    if not DEMO.is_file():
        pytest.skip(f"demo corpus not found at {DEMO}")
    groups = group_by_prompt(read_records(DEMO))
    pids = [p for p, recs in groups.items() if len(recs) >= 3][:4]
    refs = {p: groups[p][:-1] for p in pids}  # the last human answer of each prompt is held out
    tf = TextFitness(DEFAULT_SPEC, refs, extractor=real_extractor)
    source_ents = {}
    for p in pids:
        src = real_extractor.extract([groups[p][0].source])[0]
        source_ents[p] = ", ".join(dict.fromkeys(f.text for f in src.unique_facts if f.kind == "entity"))
    members = {
        "genuine": [[groups[p][-1].text] * 2 for p in pids],
        "symbols": [["1 2 3 4 5 6 7 8 9 ## %% $$ 1 2 3 4 5 6 7 8 9"] * 2 for p in pids],
        "repeated": [[(groups[p][-1].text.split(",")[0] + ". ") * 8] * 2 for p in pids],
        "question": [[groups[p][0].prompt] * 2 for p in pids],
        "empty": [["", ""] for p in pids],
        "entities": [[source_ents[p]] * 2 for p in pids],
    }
    results = tf.score_population(list(members.values()), pids)
    return tf, dict(zip(members, results))


@pytest.mark.parametrize("trick", ["symbols", "repeated", "question", "empty", "entities"])
def test_degenerate_members_score_below_a_human_like_member(population, trick):
    _, res = population
    assert res[trick].total < res["genuine"].total


def test_silent_members_get_exactly_the_worst_value(population):
    tf, res = population
    for trick in ("empty", "question"):
        assert res[trick].total == pytest.approx(tf.fitness.worst)
