"""The TRL baselines of benchmarks/dm_baselines.py, for a few steps on a tiny random model.

Skipped when TRL (the ``baselines`` extra) is not installed.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("trl")

import fitness  # noqa: E402
from infoextract import Record  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
# TRL 1.16 still sets transformers' gradient_checkpointing, which transformers 5.24 deprecates
pytestmark = pytest.mark.filterwarnings("ignore:.*gradient_checkpointing.*:FutureWarning")


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


dm = _load("dm_baselines", REPO / "benchmarks" / "dm_baselines.py")
WordExtractor = _load("tinyrun", REPO / "tests" / "esfit" / "tinyrun.py").WordExtractor

PROMPTS = [
    {"prompt_id": "p0", "prompt": [{"role": "user", "content": "say e"}]},
    {"prompt_id": "p1", "prompt": [{"role": "user", "content": "say a"}]},
]
REFS = {"p0": [Record("p0", "e ee e"), Record("p0", "e e")], "p1": [Record("p1", "a aa"), Record("p1", "a b")]}


@pytest.fixture
def tiny(one_thread):
    from trainer.testing import char_tokenizer, tiny_llama

    model = tiny_llama(seed=0)
    return model, char_tokenizer()


def _snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _changed(before, model) -> bool:
    return any(not (before[k] == v).all() for k, v in model.state_dict().items())


def letter_e(prompts, completions, prompt_id, **kwargs):
    """A graded reward for random text: the letters 'e', a little for variety. Needs the id column."""
    assert len(prompt_id) == len(completions) and set(prompt_id) <= {"p0", "p1"}
    texts = [c[0]["content"] for c in completions]  # conversational: one assistant message each
    return [t.count("e") + 0.1 * len(set(t)) for t in texts]


def test_train_grpo_stops_on_the_token_budget_and_evaluates(tiny, tmp_path):
    model, tok = tiny
    before = _snapshot(model)
    seen = []

    def eval_fn(m, tokens):
        assert not m.training
        seen.append(tokens)
        return {"tokens": tokens}

    # a step is 2 prompts x 2 completions of at most 5 tokens: 4..20 tokens; budget 25 needs 2+ steps
    res = dm.train_grpo(model, tok, PROMPTS, letter_e, token_budget=25, num_generations=2, prompts_per_step=2,
                        max_new_tokens=5, temperature=1.0, learning_rate=1e-2, seed=0, eval_fn=eval_fn,
                        eval_every_tokens=10, output_dir=tmp_path / "grpo")
    steps = res["history"]
    assert res["tokens"] >= 25 and res["tokens"] - steps[-1]["step_tokens"] < 25  # stopped at the first step past it
    assert all(4 <= s["step_tokens"] <= 20 for s in steps)
    assert res["tokens"] == sum(s["step_tokens"] for s in steps)
    assert seen[0] == 0 and seen[-1] == res["tokens"] and len(seen) >= 3
    assert [e["tokens"] for e in res["evals"]] == seen
    assert all(s["reward_mean"] >= 0 and "trl" in s for s in steps)
    assert res["wall_s"] > 0 and res["config"]["beta"] == 0.0 and _changed(before, model)
    assert not model.training and res["config"]["trl_version"]
    assert res["cpu_s"] > 0 and all(s["step_cpu_s"] > 0 for s in steps)


def test_train_grpo_with_an_esfit_reward_is_seeded(tmp_path, one_thread):
    from trainer.testing import char_tokenizer, tiny_llama

    def run():
        model = tiny_llama(seed=0)
        reward = fitness.leave_one_out_reward("f1_at_k(k=2, balance=none) + js_facts:-0.5", REFS,
                                              extractor=WordExtractor())
        res = dm.train_grpo(model, char_tokenizer(), PROMPTS, reward, token_budget=10**6, max_steps=2,
                            num_generations=2, max_new_tokens=4, learning_rate=1e-2, seed=3, output_dir=tmp_path)
        assert reward.calls == 2 and all("esfit_leave_one_out/set_fitness" in s["trl"] for s in res["history"])
        return [s["step_tokens"] for s in res["history"]], _snapshot(model)

    tokens_a, weights_a = run()
    tokens_b, weights_b = run()
    assert tokens_a == tokens_b
    assert all((weights_a[k] == weights_b[k]).all() for k in weights_a)


def test_train_sft_counts_reference_tokens(tiny, tmp_path):
    model, tok = tiny
    before = _snapshot(model)
    examples = [{"prompt_id": p["prompt_id"], "prompt": p["prompt"], "completion": r.text}
                for p in PROMPTS for r in REFS[p["prompt_id"]]]
    # each example's loss covers its reference as the template renders it: "<assistant>" is the
    # prompt's generation prefix, so the completion is the text plus "</assistant>" (12 characters)
    per_example = [len(e["completion"]) + len("</assistant>") for e in examples]
    res = dm.train_sft(model, tok, examples, token_budget=sum(per_example) + 1, batch_size=2, learning_rate=1e-2,
                       seed=0, eval_fn=lambda m, t: t, eval_every_tokens=10**6, output_dir=tmp_path / "sft")
    # two epochs' worth of steps are needed (the budget is one token more than one pass)
    assert res["steps"] == 3 and res["tokens"] > sum(per_example)
    assert res["history"][1]["tokens"] == sum(per_example)
    assert [e["result"] for e in res["evals"]] == [0, res["tokens"]]
    assert "loss" in res["history"][0]["trl"] and _changed(before, model)


def test_errors_name_the_fix(tiny, tmp_path):
    model, tok = tiny
    reward = fitness.per_sample_reward("f1_at_k", REFS, extractor=WordExtractor())
    with pytest.raises(ValueError, match="prompts_per_step=3 must be in"):
        dm.train_grpo(model, tok, PROMPTS, reward, token_budget=10, prompts_per_step=3, output_dir=tmp_path)
    with pytest.raises(ValueError, match="beta=0.04 needs a reference model"):
        dm.train_grpo(model, tok, PROMPTS, reward, token_budget=10, beta=0.04, output_dir=tmp_path)
    with pytest.raises(ValueError, match="needs 'prompt_id' and 'prompt'"):
        dm.train_grpo(model, tok, [{"prompt": []}, {"prompt": []}], reward, token_budget=10, output_dir=tmp_path)
    with pytest.raises(ValueError, match="token_budget=0 must be"):
        dm.train_sft(model, tok, [{"prompt": [], "completion": "x"}], token_budget=0, output_dir=tmp_path)
