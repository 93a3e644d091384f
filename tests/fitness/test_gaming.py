"""Hard to game: on real SQuALITY questions and real extraction, repetition, filler padding,
copying the prompt, empty answers and a list of every entity of the source never beat a genuine
human answer (scored against the other three), for every registered component at its defaults
and every term of the default fitness."""

from __future__ import annotations

import pytest

import fitness
from infoextract import group_by_prompt

# plot, role, setting and significance questions from four different stories
QUESTIONS = ["63521/1", "63521/4", "62244/3", "30004/2"]
FILLER = (" It is worth noting that this is, in many ways, a truly interesting and important matter. "
          "Overall, there are many aspects to consider here, and each of them deserves careful thought. "
          "In conclusion, one could say a great deal more about all of this in general.")
TRICKS = ["repeat_sentence", "repeat_answer", "padding", "copy_prompt", "empty", "list_entities", "filler_only"]


@pytest.fixture(scope="module")
def scored(shared_data, real_extractor):
    from infoextract.loaders.squality import load_squality

    refs = group_by_prompt(load_squality(shared_data / "squality" / "v1-3_txt_test.jsonl"))
    # the library's own components (other tests register plugin components in the same registry)
    own = sorted(name for name, info in fitness.COMPONENTS.items() if info.factory.__module__.startswith("fitness."))
    # and the default's terms that are not a component at its defaults ("recall(words=0.75)")
    own += [t.label for t in fitness.build_fitness(fitness.DEFAULT_SPEC).terms if t.label not in own]
    fit = fitness.build_fitness(" + ".join(own))
    out = {}
    for pid in QUESTIONS:
        genuine, others = refs[pid][0], refs[pid][1:]
        source = real_extractor.extract([genuine.source])[0]
        entities = list(dict.fromkeys(f.text for f in source.unique_facts if f.kind == "entity"))
        first = genuine.text.split(". ")[0].rstrip(".") + ". "
        texts = {
            "genuine": genuine.text,
            "repeat_sentence": first * 10,
            "repeat_answer": (genuine.text + " ") * 3,
            "padding": genuine.text + FILLER * 3,
            "copy_prompt": genuine.prompt,
            "empty": "",
            "list_entities": ", ".join(entities) + ".",
            "filler_only": FILLER,
        }
        ext = real_extractor.extract(list(texts.values()) + [r.text for r in others] + [genuine.prompt])
        answers, references, prompt = ext[: len(texts)], ext[len(texts):-1], ext[-1]
        out[pid] = {
            name: fit.score_prompt([e], references, source=source, prompt=prompt)
            for name, e in zip(texts, answers)
        }
    return fit, out


@pytest.mark.parametrize("trick", TRICKS)
@pytest.mark.parametrize("pid", QUESTIONS)
def test_trick_does_not_beat_a_genuine_answer(scored, pid, trick):
    fit, out = scored
    for term in fit.terms:
        sign = 1.0 if term.higher_is_better else -1.0
        genuine, gamed = sign * out[pid]["genuine"][term.label], sign * out[pid][trick][term.label]
        assert gamed <= genuine + 1e-9, f"{trick} beats a genuine answer on {term.label} at {pid}: {gamed} > {genuine}"
    assert out[pid][trick]["total"] <= out[pid]["genuine"]["total"] + 1e-9


def test_the_genuine_answer_scores_above_worst(scored):
    fit, out = scored
    for pid in QUESTIONS:
        assert out[pid]["genuine"]["total"] > fit.worst
        # an answer that says nothing, or only restates the question, gets exactly the worst value
        assert out[pid]["empty"]["total"] == pytest.approx(fit.worst)
        assert out[pid]["copy_prompt"]["total"] == pytest.approx(fit.worst)
