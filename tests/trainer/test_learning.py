"""ES on a tiny model drives a non-differentiable, group-level fitness clearly up."""

from trainer.es import ESConfig
from trainer.loop import ESTrainer
from trainer.rollout import RolloutConfig
from trainer.testing import tiny_llama

PROMPTS = ["hello", "tell me", "what is", "say"]


def digit_share(completions_by_prompt, prompts):
    """Share of digits among all characters of a member's rollouts, pooled over prompts: a
    property of the whole set of answers, with no gradient."""
    text = "".join(c for rollouts in completions_by_prompt for c in rollouts)
    return sum(ch.isdigit() for ch in text) / max(len(text), 1)


def test_es_raises_a_group_level_fitness(tokenizer):
    model = tiny_llama(initializer_range=0.1)
    trainer = ESTrainer(
        model, tokenizer, PROMPTS, digit_share,
        es=ESConfig(population_size=32, sigma=0.02, learning_rate=0.003, seed=0,
                    target_modules=r".*(proj|lm_head)"),
        rollout=RolloutConfig(max_new_tokens=12, rollouts_per_prompt=2),
    )
    before, _ = trainer.evaluate()
    history = trainer.train(12)
    after, _ = trainer.evaluate()
    assert before < 0.25  # about 10 digits in 49 tokens
    assert after > before + 0.2, (before, after, [round(m["fitness_mean"], 3) for m in history])
    assert sum(m["fitness_mean"] for m in history[-3:]) > sum(m["fitness_mean"] for m in history[:3]) + 0.2
