import copy

import pytest
import torch

from trainer.es import ESConfig, EvolutionStrategy
from trainer.loop import ESTrainer
from trainer.reference import naive_weighted_sum
from trainer.rollout import RolloutConfig
from trainer.shaping import zscore_shaping
from trainer.testing import tiny_llama


def _weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_sgd_update_equals_the_explicit_sum_of_dense_perturbations(tiny_model):
    before = copy.deepcopy(tiny_model)
    config = ESConfig(population_size=6, rank=2, sigma=0.1, learning_rate=0.05)
    es = EvolutionStrategy(tiny_model, config)
    pop = es.ask()
    fitness = [0.3, -1.0, 2.0, 0.5, 0.0, 1.0]
    metrics = es.tell(fitness)
    w = zscore_shaping(fitness) / (6 * 0.1)
    sq = 0.0
    for t in es.targets:
        delta = config.learning_rate * naive_weighted_sum(pop, t.name, w)  # Σ w_i E_i, dense
        old = before.get_submodule(t.name).weight
        expected = old + (delta.T if t.transposed else delta)
        torch.testing.assert_close(t.weight, expected, rtol=1e-5, atol=1e-6)
        sq += float(delta.pow(2).sum())
    assert metrics["update_norm"] == pytest.approx(sq**0.5, rel=1e-4)
    assert metrics["fitness_max"] == 2.0 and metrics["generation"] == 0 and es.generation == 1
    untouched = [k for k in _weights(before) if "norm" in k or "embed" in k or "wte" in k]
    assert untouched and all(torch.equal(before.state_dict()[k], tiny_model.state_dict()[k]) for k in untouched)


def test_low_precision_model_steps_fp32_masters():
    model = tiny_llama().to(torch.bfloat16)
    es = EvolutionStrategy(model, ESConfig(population_size=4, sigma=0.01, learning_rate=1e-5))
    t = es.targets[0]
    start = t.weight.detach().clone()
    assert es.masters[t.name].dtype == torch.float32 and es.masters[t.name] is not t.weight
    for _ in range(3):
        es.ask()
        es.tell([1.0, 0.0, 0.5, -1.0])
    master = es.masters[t.name]
    assert torch.equal(t.weight, master.to(torch.bfloat16))
    # steps too small for bf16 on their own still accumulate in the fp32 master
    assert (master - start.float()).abs().max() > 0


def test_adam_and_weight_decay():
    model = tiny_llama()
    es = EvolutionStrategy(model, ESConfig(population_size=4, optimizer="adam", learning_rate=1e-3))
    w0 = es.targets[0].weight.detach().clone()
    es.tell([1.0, 0.0, 0.0, 0.0])
    # Adam's first step moves every entry by about the learning rate
    assert float((es.targets[0].weight.detach() - w0).abs().mean()) == pytest.approx(1e-3, rel=0.2)
    es = EvolutionStrategy(tiny_llama(), ESConfig(population_size=4, learning_rate=0.1, weight_decay=0.5))
    w0 = es.targets[0].weight.detach().clone()
    es.tell([1.0, 1.0, 1.0, 1.0])  # no signal: only the decay acts
    torch.testing.assert_close(es.targets[0].weight, w0 * (1 - 0.1 * 0.5))


def _run(seed, generations, tokenizer, state=None):
    model = tiny_llama()

    def fitness(completions, prompts):
        return sum(len(c) + c.count("e") for group in completions for c in group)

    trainer = ESTrainer(
        model, tokenizer, ["one", "two", "three"], fitness, prompts_per_generation=2,
        es=ESConfig(population_size=4, sigma=0.05, learning_rate=0.01, seed=seed),
        rollout=RolloutConfig(max_new_tokens=6, rollouts_per_prompt=2),
    )
    if state is not None:
        model.load_state_dict(state[0])
        trainer.es.load_state_dict(state[1])
    trainer.train(generations)
    return model, trainer


def test_same_seed_same_weights_and_resume_from_state(tokenizer):
    a, _ = _run(0, 3, tokenizer)
    b, _ = _run(0, 3, tokenizer)
    c, _ = _run(1, 3, tokenizer)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), c.state_dict().values()))
    first, trainer = _run(0, 2, tokenizer)
    resumed, _ = _run(0, 1, tokenizer, state=(_weights(first), trainer.es.state_dict()))
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), resumed.state_dict().values()))


def test_per_prompt_fitness_and_errors_name_member_and_prompt(tokenizer):
    seen = []

    def fitness(completions, prompts, reference):
        seen.append((len(completions), prompts, reference))
        if len(seen) == 7:
            raise KeyError("boom")
        return 1.0

    trainer = ESTrainer(tiny_llama(), tokenizer, ["a", "b"], fitness, columns={"reference": ["x", "y"]},
                        fitness_per_prompt=True, es=ESConfig(population_size=4),
                        rollout=RolloutConfig(max_new_tokens=2))
    with pytest.raises(RuntimeError, match=r"member 3 on prompt 'a'.*boom"):
        trainer.step()
    assert seen[:2] == [(1, ["a"], ["x"]), (1, ["b"], ["y"])]
    with pytest.raises(ValueError, match="column 'reference' has 1 values for 2 prompts"):
        ESTrainer(tiny_llama(), tokenizer, ["a", "b"], fitness, columns={"reference": ["x"]})


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(population_size=5), "population_size=5 must be even when mirrored"),
        (dict(sigma=0), "sigma=0 must be > 0"),
        (dict(optimizer="lion"), "optimizer='lion' must be one of"),
        (dict(shaping="softmax"), "shaping='softmax' is not known"),
        (dict(rank=0), "rank=0"),
    ],
)
def test_config_errors_name_the_field(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ESConfig(**kwargs)
