"""The patched population forward pass equals dense W + σE_i per member (fp32, within 1e-4: float
rounding) in a full forward, across KV-cached decoding and in greedy and sampled generation; and
unpatching restores the model bit for bit."""

import pytest
import torch

from trainer.kernel import lowrank_kernel, unavailable_reason
from trainer.noise import sample_population
from trainer.patch import PopulationPatch
from trainer.reference import dense_member_copy, naive_rollouts
from trainer.rollout import RolloutConfig, generate_rollouts
from trainer.targets import resolve_targets

PROMPTS = ["hello world, how are you", "hi", "the cat sat"]  # different lengths: left padding
P = 4


@pytest.fixture(params=["fused", "torch"])
def path(request, monkeypatch):
    """The fused C kernel (where a C compiler is found), and the torch ops it replaces."""
    if request.param == "torch":
        monkeypatch.setenv("ESFIT_FUSED_KERNEL", "0")
    elif lowrank_kernel(torch.float32) is None:
        pytest.skip(f"the fused kernel is unavailable: {unavailable_reason()}")
    return request.param


@pytest.fixture(params=[1, 2], ids=["r1", "r2"])
def setup(tiny_model, tokenizer, request, path):
    """Rank 1 and 2: the torch path adds rank-1 terms with an outer product, higher ranks with
    baddbmm; the fused kernel handles both."""
    targets = resolve_targets(tiny_model)
    population = sample_population(targets, seed=5, generation=2, population_size=P, rank=request.param, sigma=0.3)
    enc = tokenizer(PROMPTS, padding=True, padding_side="left", return_tensors="pt")
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
        assert patch._paired == (members in (list(range(P)), [2, 3, 0, 1]))
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


def test_layers_sharing_an_input_are_learned_and_change_no_bit(setup, path):
    """On the torch path, q/k/v (and gate/up) read one tensor: after the first pass their x·B come
    from one stacked product, which must give bit for bit what separate products gave (resumed runs
    rely on it). The fused kernel computes each layer's own product every time."""
    model, targets, population, enc = setup
    ids = enc.input_ids[:, :2].repeat(P, 1)  # few tokens per member: the decoding path
    with torch.no_grad(), PopulationPatch(targets) as patch:
        patch.set_population(population)
        first = model(input_ids=ids).logits
        groups = {tuple(m for m in g) for g in patch._group_of.values()}
        second = model(input_ids=ids).logits
    names = {t.module: t.name.rsplit(".", 1)[-1] for t in targets}
    learned = sorted(tuple(names[m] for m in g) for g in groups)
    if path == "fused":  # nothing to learn
        assert learned == []
    elif "q_proj" in names.values():  # Llama-style: separate projections read the same input
        assert ("gate_proj", "up_proj") in learned and ("q_proj", "k_proj", "v_proj") in learned
    else:  # GPT-2 style: fused c_attn, nothing to share
        assert learned == []
    assert torch.equal(first, second)


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
