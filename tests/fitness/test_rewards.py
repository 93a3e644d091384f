"""TRL-form reward functions: per-sample and leave-one-out credit, checked against brute force.

A word-level stand-in extractor (every word of 3+ letters is a fact) keeps these fast: no spaCy,
no torch, no TRL.
"""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

import fitness
from fitness import leave_one_out_reward, per_sample_reward
from infoextract import Record

SPEC = fitness.DEFAULT_SPEC  # F1@K + JS over fact shares + W1 of depth: a genuinely set-level fitness

REFS = {
    "p1": ["alpha beta gamma", "alpha delta", "alpha beta epsilon"],
    "p2": ["river mill town", "river market", "mill closed museum"],
}

# two prompts' completions interleaved, as a batch could hold them; duplicates and an empty answer
COMPLETIONS = [
    ("p1", "alpha beta"),
    ("p2", "river mill"),
    ("p1", "alpha delta zeta"),
    ("p2", "banana split"),
    ("p1", "alpha beta"),
    ("p2", ""),
    ("p1", "omega"),
    ("p2", "river market museum"),
]


def brute_force_loo(spec, refs, extractor, completions):
    """Leave-one-out credit computed the slow way: the fitness called on every subset explicitly."""
    tf = fitness.TextFitness(spec, {p: [Record(p, t) for t in ts] for p, ts in refs.items()}, extractor=extractor)
    out = []
    for i, (pid, _) in enumerate(completions):
        group = [j for j, (p, _) in enumerate(completions) if p == pid]
        whole = tf([[completions[j][1] for j in group]], [pid])
        rest = [completions[j][1] for j in group if j != i]
        without = tf([rest], [pid]) if rest else tf.fitness.worst
        out.append(whole - without)
    return out


def call(reward, completions, **extra):
    return reward(prompts=[f"question {p}" for p, _ in completions], completions=[t for _, t in completions],
                  prompt_id=[p for p, _ in completions], **extra)


def test_leave_one_out_matches_brute_force(word_extractor):
    reward = leave_one_out_reward(SPEC, REFS, extractor=word_extractor)
    got = call(reward, COMPLETIONS)
    want = brute_force_loo(SPEC, REFS, type(word_extractor)(), COMPLETIONS)
    assert got == pytest.approx(want, abs=1e-12)
    assert len(set(round(g, 9) for g in got)) > 2  # the credit really differs between members
    assert all(isinstance(g, float) and math.isfinite(g) for g in got)
    # one extractor call per reward call once the references are cached; every text extracted once
    before = len(word_extractor.calls)
    call(reward, COMPLETIONS)
    assert len(word_extractor.calls) == before + 1
    assert sorted(word_extractor.calls[-1]) == sorted({t for _, t in COMPLETIONS})


def test_leave_one_out_with_other_fitnesses(word_extractor):
    for spec in ("js_facts", "f1_at_k(k=2, balance=none) + w1_depth:-0.5", "tv_facts"):
        got = call(leave_one_out_reward(spec, REFS, extractor=word_extractor), COMPLETIONS)
        assert got == pytest.approx(brute_force_loo(spec, REFS, type(word_extractor)(), COMPLETIONS), abs=1e-12)


def test_per_sample_is_each_completion_alone(word_extractor):
    reward = per_sample_reward("f1_at_k", REFS, extractor=word_extractor)
    got = call(reward, COMPLETIONS)
    tf = fitness.TextFitness("f1_at_k", {p: [Record(p, t) for t in ts] for p, ts in REFS.items()},
                             extractor=type(word_extractor)())
    assert got == pytest.approx([tf([[t]], [p]) for p, t in COMPLETIONS], abs=1e-12)
    assert got[5] == tf.fitness.worst  # the empty answer
    assert got[0] == got[4]  # the same text scores the same, wherever it sits


def test_group_of_one_gets_its_score_minus_worst(word_extractor):
    fit = fitness.build_fitness(SPEC)
    loo = leave_one_out_reward(fit, REFS, extractor=word_extractor)
    alone = per_sample_reward(fit, REFS, extractor=word_extractor)
    batch = [("p1", "alpha beta"), ("p2", "river mill museum")]
    assert call(loo, batch) == pytest.approx([r - fit.worst for r in call(alone, batch)])
    assert loo.worst == fit.worst


def grpo_advantages(rewards, groups):
    """GRPO's advantage as TRL forms it: reward minus its group's mean, over the group's std."""
    out = []
    for r, g in zip(rewards, groups):
        members = [x for x, h in zip(rewards, groups) if h == g]
        mean = sum(members) / len(members)
        std = (sum((x - mean) ** 2 for x in members) / (len(members) - 1)) ** 0.5
        out.append((r - mean) / (std + 1e-4))
    return out


def test_a_shared_set_score_gives_zero_advantage_but_leave_one_out_does_not(word_extractor):
    group = [("p1", "alpha beta"), ("p1", "alpha beta"), ("p1", "alpha delta epsilon"), ("p1", "omega psi")]
    ids = [p for p, _ in group]
    tf = fitness.TextFitness(SPEC, {p: [Record(p, t) for t in ts] for p, ts in REFS.items()},
                             extractor=word_extractor)
    shared = tf([[t for _, t in group]], ["p1"])
    assert grpo_advantages([shared] * len(group), ids) == [0.0] * len(group)  # nothing to learn from

    credit = call(leave_one_out_reward(tf, None), group)
    adv = grpo_advantages(credit, ids)
    assert max(adv) - min(adv) > 1.0
    # the answer that brings facts nobody else in the set states is credited above a duplicate,
    # and the answer with no supported fact below both
    assert credit[2] > credit[0] == credit[1] > credit[3]


def test_conversational_completions_and_prompts(word_extractor):
    reward = leave_one_out_reward(SPEC, REFS, extractor=word_extractor)
    plain = call(reward, COMPLETIONS)
    chat = [[{"role": "assistant", "content": t}] for _, t in COMPLETIONS]
    chat[1] = [{"role": "assistant", "content": [{"type": "text", "text": "river "}, {"type": "text", "text": "mill"}]}]
    prompts = [[{"role": "user", "content": f"question {p}"}] for p, _ in COMPLETIONS]
    got = reward(prompts=prompts, completions=chat, prompt_id=[p for p, _ in COMPLETIONS])
    assert got == pytest.approx(plain)
    assert fitness.rewards.completion_text([{"role": "assistant", "content": "a"}, {"role": "tool", "content": "x"},
                                            {"role": "assistant", "content": "b"}]) == "a\nb"
    assert fitness.rewards.completion_text(None) == ""


def test_without_prompt_ids_completions_are_matched_by_question(word_extractor):
    refs = {p: [Record(p, t, prompt=f"What about {p}?", source=f"passage of {p}") for t in ts]
            for p, ts in REFS.items()}
    reward = leave_one_out_reward(SPEC, refs, extractor=word_extractor)
    # the model sees "passage, blank line, question" (esfit.prompts.format_user_message)
    prompts = [[{"role": "user", "content": f"passage of {p}\n\nWhat about {p}?"}] for p, _ in COMPLETIONS]
    by_text = reward(prompts=prompts, completions=[t for _, t in COMPLETIONS])
    by_id = reward(prompts=prompts, completions=[t for _, t in COMPLETIONS], prompt_id=[p for p, _ in COMPLETIONS])
    assert by_text == pytest.approx(by_id)
    # references keyed by the prompt text itself also work
    keyed = per_sample_reward("f1_at_k", {"say alpha": REFS["p1"]}, extractor=word_extractor)
    assert keyed(prompts=["say alpha", "say alpha"], completions=["alpha beta", "omega"])[0] > 0


def test_name_and_signature_fit_trl(word_extractor):
    loo = leave_one_out_reward(SPEC, REFS, extractor=word_extractor)
    ps = per_sample_reward(SPEC, REFS, extractor=word_extractor, name="f1")
    assert loo.__name__ == "esfit_leave_one_out" and ps.__name__ == "f1"
    # TRL passes extra keyword arguments (completion_ids, trainer_state, log_metric, columns); all accepted
    logged = {}
    out = loo(prompts=["q"] * 2, completions=["alpha", "beta"], completion_ids=[[1], [2]], trainer_state=None,
              prompt_id=["p1", "p1"], log_metric=lambda k, v: logged.update({k: v}), log_extra=print)
    assert len(out) == 2
    assert logged == {"esfit_leave_one_out/set_fitness": pytest.approx(loo.last_set_fitness["p1"])}
    assert loo(prompts=[], completions=[], prompt_id=[]) == []


def test_errors_name_the_problem_and_the_fix(word_extractor):
    reward = leave_one_out_reward(SPEC, REFS, extractor=word_extractor)
    with pytest.raises(KeyError, match=r"'p9'.*add their reference answers"):
        reward(prompts=["q", "q"], completions=["a", "b"], prompt_id=["p1", "p9"])
    with pytest.raises(ValueError, match="prompt_id has 1 values but there are 2 completions"):
        reward(prompts=["q", "q"], completions=["a", "b"], prompt_id=["p1"])
    with pytest.raises(KeyError, match="no prompt id matches.*add a 'prompt_id' column"):
        reward(prompts=["what is this?", "what is this?"], completions=["a", "b"])
    with pytest.raises(ValueError, match="no 'prompt_id' column and 1 prompts for 2 completions"):
        reward(prompts=["q"], completions=["a", "b"])
    with pytest.raises(TypeError, match="role"):
        reward(prompts=["q"], completions=[["not a message"]], prompt_id=["p1"])
    with pytest.raises(ValueError, match="references_by_prompt is required"):
        per_sample_reward(SPEC, None, extractor=word_extractor)
    tf = fitness.TextFitness(SPEC, {"p1": [Record("p1", "alpha")]}, extractor=word_extractor)
    with pytest.raises(ValueError, match="already holds its references"):
        leave_one_out_reward(tf, REFS)
    with pytest.raises(ValueError, match=r"\['p3'\] have no reference records"):
        per_sample_reward(SPEC, {"p3": []}, extractor=word_extractor)


def test_rewards_module_imports_no_torch_or_trl():
    code = ("import sys, fitness.rewards; "
            "print([m for m in ('torch', 'transformers', 'trl', 'spacy') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
