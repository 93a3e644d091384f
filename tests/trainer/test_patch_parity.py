"""The patched population forward pass equals dense W + σE_i per member (fp32, within 1e-4: float
rounding) in a full forward, across KV-cached decoding and in greedy and sampled generation; and
unpatching restores the model bit for bit. ``ESFIT_TEST_DEVICE=cuda`` runs them on a GPU
(``benchmarks/gpu_check.sh``), where the torch ops are the path."""

import dataclasses
import os

import pytest
import torch

from trainer import lowrank
from trainer.kernel import fused_op, unavailable_reason
from trainer.noise import sample_population
from trainer.patch import PopulationPatch
from trainer.reference import dense_member_copy, naive_rollouts
from trainer.rollout import RolloutConfig, generate_rollouts
from trainer.targets import resolve_targets

PROMPTS = ["hello world, how are you", "hi", "the cat sat"]  # different lengths: left padding
P = 4
DEVICE = os.environ.get("ESFIT_TEST_DEVICE", "cpu")


@pytest.fixture(params=["fused", "torch"])
def path(request, monkeypatch):
    """The fused operator (where a C++ compiler is found), and the torch ops it replaces."""
    if request.param == "torch":
        monkeypatch.setenv("ESFIT_FUSED_KERNEL", "0")
    elif DEVICE != "cpu":
        pytest.skip(f"the fused operator is for CPU layers; on {DEVICE} the torch ops run")
    elif fused_op(torch.float32) is None:
        pytest.skip(f"the fused kernel is unavailable: {unavailable_reason()}")
    return request.param


@pytest.fixture(params=[1, 2], ids=["r1", "r2"])
def setup(tiny_model, tokenizer, request, path):
    """Rank 1 and 2: the torch path adds rank-1 terms with an outer product, higher ranks with
    baddbmm; the fused kernel handles both."""
    tiny_model.to(DEVICE)
    targets = resolve_targets(tiny_model)
    population = sample_population(targets, seed=5, generation=2, population_size=P, rank=request.param, sigma=0.3)
    enc = tokenizer(PROMPTS, padding=True, padding_side="left", return_tensors="pt").to(DEVICE)
    with PopulationPatch(targets) as patch:  # the path really taken
        patch.set_population(population)
        assert patch.fused_layers == (len(targets) if path == "fused" else 0)
    return tiny_model, targets, population, enc


# members in population order and reordered share one factor copy per mirrored pair; a lone
# member, or pairs out of (+E, −E) order, take the per-member path
@pytest.mark.parametrize("members", [None, [2, 3, 0, 1], [3, 0, 1], [1, 0]], ids=["all", "pairs", "mixed", "swapped"])
def test_full_forward_matches_dense_weights_per_member(setup, members):
    model, targets, population, enc = setup
    rows = len(PROMPTS)
    members = list(range(P)) if members is None else members
    n = len(members)
    with torch.no_grad(), PopulationPatch(targets) as patch:
        patch.set_population(population, members)
        paired = {layer.factors.paired for layer in patch._layers.values()}
        assert paired == {members in (list(range(P)), [2, 3, 0, 1])}
        logits = model(input_ids=enc.input_ids.repeat(n, 1), attention_mask=enc.attention_mask.repeat(n, 1)).logits
    with torch.no_grad():
        centre = model(**enc).logits
    for pos, i in enumerate(members):
        dense = dense_member_copy(model, targets, population, i)
        with torch.no_grad():
            expected = dense(**enc).logits
        mine = logits[pos * rows : (pos + 1) * rows]
        torch.testing.assert_close(mine, expected, rtol=1e-4, atol=1e-4)
        assert (expected - centre).abs().max() > 1e-2  # the perturbation is not negligible


def test_kv_cached_decoding_matches_dense_for_16_steps(setup):
    model, targets, population, enc = setup
    rows, steps = len(PROMPTS), 20
    kw = dict(max_new_tokens=steps, min_new_tokens=steps, do_sample=False, pad_token_id=0,
              output_logits=True, return_dict_in_generate=True)
    with torch.no_grad(), PopulationPatch(targets) as patch:
        patch.set_population(population)
        out = model.generate(input_ids=enc.input_ids.repeat(P, 1), attention_mask=enc.attention_mask.repeat(P, 1), **kw)
    assert len(out.logits) == steps
    for i in range(P):
        dense = dense_member_copy(model, targets, population, i)
        with torch.no_grad():
            ref = dense.generate(**enc, **kw)
        block = slice(i * rows, (i + 1) * rows)
        assert torch.equal(out.sequences[block], ref.sequences)  # greedy: token for token
        for step in range(steps):
            torch.testing.assert_close(out.logits[step][block], ref.logits[step], rtol=1e-4, atol=1e-4)


def test_unpatching_restores_logits_bit_exactly(setup):
    model, targets, population, enc = setup
    with torch.no_grad():
        before = model(**enc).logits
        patch = PopulationPatch(targets).attach()
        patch.set_population(population, [1])
        perturbed = model(**enc).logits
        patch.detach()
        after = model(**enc).logits
    assert not torch.equal(before, perturbed)
    assert torch.equal(before, after)
    assert all("forward" not in vars(t.module) and not t.module._forward_hooks for t in targets)


def test_cleared_patch_is_the_centre_model(setup):
    model, targets, population, enc = setup
    with torch.no_grad(), PopulationPatch(targets) as patch:
        patch.set_population(population)
        patch.clear()
        cleared = model(**enc).logits
    with torch.no_grad():
        assert torch.equal(cleared, model(**enc).logits)


def test_batch_must_be_a_whole_multiple_of_the_members(setup):
    model, targets, population, enc = setup
    with torch.no_grad(), PopulationPatch(targets) as patch:
        patch.set_population(population)  # 4 members, 3 rows
        with pytest.raises(ValueError, match="not a whole multiple of the 4 active population members"):
            model(**enc)
    with pytest.raises(ValueError, match="outside the population"):
        PopulationPatch(targets).set_population(population, [0, 9])


def test_rows_per_member_checks_the_exact_batch(setup):
    model, targets, population, enc = setup
    rows = len(PROMPTS)
    with torch.no_grad(), PopulationPatch(targets) as patch:
        patch.set_population(population, rows_per_member=rows)
        model(input_ids=enc.input_ids.repeat(P, 1), attention_mask=enc.attention_mask.repeat(P, 1))
        with pytest.raises(ValueError, match=r"12 that set_population was given"):  # a whole multiple, still wrong
            model(input_ids=enc.input_ids.repeat(2 * P, 1), attention_mask=enc.attention_mask.repeat(2 * P, 1))
    with pytest.raises(ValueError, match="rows_per_member=0 must be"):
        PopulationPatch(targets).set_population(population, rows_per_member=0)


@pytest.mark.parametrize("greedy", [True, False])
def test_population_generation_equals_the_naive_reference(setup, tokenizer, greedy):
    model, targets, population, _ = setup
    config = RolloutConfig(max_new_tokens=18, rollouts_per_prompt=2, greedy=greedy, temperature=0.8, top_k=20)
    with PopulationPatch(targets) as patch:
        batched = generate_rollouts(model, tokenizer, PROMPTS, config, patch=patch, population=population,
                                    seed=1, generation=2)
    naive = naive_rollouts(model, tokenizer, PROMPTS, config, targets=targets, population=population,
                           seed=1, generation=2)
    assert batched.texts == naive.texts
    assert len({str(m) for m in batched.texts}) == P  # the members really differ


def test_layers_sharing_an_input_form_one_product_that_changes_no_bit(setup, path, monkeypatch):
    """On the torch path, q/k/v (and gate/up) read one tensor: while decoding, their x·B come from
    one stacked product, which must give bit for bit what separate products give (resumed runs
    rely on it). The groups come from the module structure; the fused operator needs none."""
    model, targets, population, enc = setup
    ids = enc.input_ids[:, :2].repeat(P, 1)  # few tokens per member: the decoding path
    groups = {t.input_group for t in targets} - {None}
    if "q_proj" in targets[0].name:  # Llama-style: separate projections read the same input
        assert len(groups) == 2 * model.config.num_hidden_layers
    else:  # GPT-2 style: fused c_attn, nothing to share
        assert groups == set()
    alone = [dataclasses.replace(t, input_group=None) for t in targets]
    logits, products = [], []
    project = lowrank.project
    for chosen in (targets, alone, targets):
        calls = []
        monkeypatch.setattr(lowrank, "project", lambda *a, calls=calls: calls.append(1) or project(*a))
        with torch.no_grad(), PopulationPatch(chosen) as patch:
            patch.set_population(population)
            logits.append(model(input_ids=ids).logits)
        products.append(len(calls))
    assert torch.equal(logits[0], logits[1]) and torch.equal(logits[0], logits[2])
    if path == "torch":  # one product per group, not per layer
        assert products[1] == len(targets) and products[0] == len(targets) - sum(
            len([t for t in targets if t.input_group == g]) - 1 for g in groups)


def test_a_forward_set_on_the_instance_is_wrapped_and_restored(setup):
    model, targets, population, enc = setup
    layer = targets[0].module
    calls = []

    def own_forward(x):  # e.g. an accelerate hook
        calls.append(1)
        return type(layer).forward(layer, x)

    layer.forward = own_forward
    with torch.no_grad(), PopulationPatch(targets) as patch:
        patch.set_population(population, [0])
        model(**enc)
        with pytest.raises(RuntimeError, match="already patched"):
            PopulationPatch(targets).attach()
    assert calls and layer.forward is own_forward
