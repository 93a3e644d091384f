import pytest
import torch

from trainer.noise import sample_population
from trainer.patch import PopulationPatch
from trainer.rollout import CommonRandomGumbel, RolloutConfig, format_prompts, generate_rollouts
from trainer.targets import resolve_targets
from trainer.testing import tiny_llama

PROMPTS = ["hello", "what is two plus two", "say"]


@pytest.fixture(scope="module")
def model():
    return tiny_llama()


def _population(model, size=4, sigma=0.3):
    return sample_population(resolve_targets(model), seed=0, generation=0, population_size=size, rank=1, sigma=sigma)


def test_texts_are_grouped_member_prompt_rollout(model, tokenizer):
    pop = _population(model)
    config = RolloutConfig(max_new_tokens=8, rollouts_per_prompt=3)
    with PopulationPatch(resolve_targets(model)) as patch:
        out = generate_rollouts(model, tokenizer, PROMPTS, config, patch=patch, population=pop)
    assert len(out.texts) == 4 and all(len(m) == 3 and all(len(p) == 3 for p in m) for m in out.texts)
    assert out.rows == 4 * 3 * 3 and 0 < out.new_tokens <= out.rows * 8


def test_common_random_numbers_members_without_perturbation_sample_identically(model, tokenizer):
    pop = _population(model, size=6, sigma=0.0)  # every member is the centre model
    config = RolloutConfig(max_new_tokens=16, rollouts_per_prompt=4, temperature=1.0)
    with PopulationPatch(resolve_targets(model)) as patch:
        out = generate_rollouts(model, tokenizer, PROMPTS, config, patch=patch, population=pop, seed=3)
    assert all(member == out.texts[0] for member in out.texts)
    for prompt_rollouts in out.texts[0]:
        assert len(set(prompt_rollouts)) == len(prompt_rollouts)  # rollouts k ≠ k' differ
    # the centre model rolled out alone draws the same samples: the noise does not depend on the batch
    centre = generate_rollouts(model, tokenizer, PROMPTS, config, seed=3)
    assert centre.texts[0] == out.texts[0]
    # another generation draws other samples
    assert generate_rollouts(model, tokenizer, PROMPTS, config, seed=3, generation=1).texts != centre.texts


def test_chunking_at_member_boundaries_gives_the_same_texts(model, tokenizer):
    pop = _population(model)
    targets = resolve_targets(model)
    texts = {}
    for max_rows in (None, 6, 2):  # whole batch; two members per call; a member split in pieces
        config = RolloutConfig(max_new_tokens=10, rollouts_per_prompt=2, max_rows=max_rows)
        with PopulationPatch(targets) as patch:
            texts[max_rows] = generate_rollouts(model, tokenizer, PROMPTS, config, patch=patch, population=pop).texts
    assert texts[None] == texts[6] == texts[2]


def test_greedy_rollouts_repeat_and_subsets_of_members(model, tokenizer):
    pop = _population(model)
    config = RolloutConfig(max_new_tokens=10, rollouts_per_prompt=2, greedy=True)
    with PopulationPatch(resolve_targets(model)) as patch:
        every = generate_rollouts(model, tokenizer, PROMPTS, config, patch=patch, population=pop)
        two = generate_rollouts(model, tokenizer, PROMPTS, config, patch=patch, population=pop, members=[3, 1])
    assert all(len(set(p)) == 1 for m in every.texts for p in m)
    assert two.texts == [every.texts[3], every.texts[1]]


def test_chat_template_is_applied_when_the_tokenizer_has_one(tokenizer):
    assert format_prompts(tokenizer, ["hi"]) == ["<user>hi</user><assistant>"]
    assert format_prompts(tokenizer, ["hi"], chat_template=False) == ["hi"]
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    assert format_prompts(tokenizer, [messages]) == ["<system>be brief</system><user>hi</user><assistant>"]


def test_gumbel_max_samples_the_tempered_distribution():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    proc = CommonRandomGumbel([123], temperature=0.7)
    draws = torch.stack([proc(None, logits).argmax(-1) for _ in range(20000)]).flatten()
    freq = torch.bincount(draws, minlength=4).float() / draws.numel()
    assert torch.allclose(freq, torch.softmax(logits[0] / 0.7, -1), atol=0.015)


def test_bad_rollout_settings_name_the_parameter(model, tokenizer):
    with pytest.raises(ValueError, match="temperature=0"):
        RolloutConfig(temperature=0)
    with pytest.raises(ValueError, match="max_rows=0"):
        RolloutConfig(max_rows=0)
    with pytest.raises(ValueError, match="needs the PopulationPatch"):
        generate_rollouts(model, tokenizer, PROMPTS, RolloutConfig(), population=_population(model))


@pytest.mark.parametrize("kind", ["llama", "gpt2"])
@pytest.mark.parametrize("greedy", [False, True])
def test_a_shared_prefill_gives_the_texts_of_separate_prefills(kind, greedy, tokenizer):
    from trainer.testing import tiny_gpt2

    model = (tiny_llama if kind == "llama" else tiny_gpt2)(initializer_range=0.2)
    pop = _population(model, size=4, sigma=0.2)
    targets = resolve_targets(model)
    out = {}
    for share in (True, False):
        config = RolloutConfig(max_new_tokens=12, rollouts_per_prompt=3, greedy=greedy, share_prefill=share)
        with PopulationPatch(targets) as patch:
            members = generate_rollouts(model, tokenizer, PROMPTS, config, patch=patch, population=pop, seed=5).texts
        out[share] = (members, generate_rollouts(model, tokenizer, PROMPTS, config, seed=5).texts)
    assert out[True] == out[False]
    assert len({t for m in out[True][0] for g in m for t in g}) > 3  # the members and rollouts really differ
