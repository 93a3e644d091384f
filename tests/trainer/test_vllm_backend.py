"""The vLLM rollout backend against the HF reference.

Tests marked ``vllm`` need vLLM and run in the separate environment (``make test-vllm``: .venv-vllm
with vllm-cpu); ``make test`` deselects them. The unmarked ones check the settings that must fail
before any engine starts, and run everywhere.
"""

from __future__ import annotations

import sys

import pytest
import torch

from trainer import ESConfig, ESTrainer, EvolutionStrategy, RolloutConfig, resolve_targets, sample_population
from trainer.reference import naive_rollouts
from trainer.rollout import ROLLOUT_BACKENDS, HFBackend, build_backend, generate_rollouts
from trainer.vllm_backend import VLLMUnavailableError, lora_rank_for, parse_options, sampling_seed

PROMPTS = ["abc", "hello there", "why?"]
GREEDY = RolloutConfig(max_new_tokens=12, greedy=True)


# -- settings that fail before an engine starts (no vLLM needed) ------------------------------------
def test_unsupported_rank_is_refused_with_the_ranks_vllm_takes():
    assert [lora_rank_for(r) for r in (1, 2, 8, 9, 512)] == [1, 8, 8, 16, 512]
    with pytest.raises(ValueError, match=r"rank=600 is unsupported.*up to 512"):
        lora_rank_for(600)


def test_engine_options_the_backend_owns_are_refused():
    assert parse_options('{"gpu_memory_utilization": 0.5}') == {"gpu_memory_utilization": 0.5}
    assert parse_options("") == {}
    with pytest.raises(ValueError, match="sets these itself"):
        parse_options({"enable_lora": False})
    with pytest.raises(ValueError, match="JSON object"):
        parse_options("{gpu_memory_utilization = 0.5")
    with pytest.raises(ValueError, match="vllm_options"):
        RolloutConfig(rollout_backend="vllm", vllm_options={"max_lora_rank": 8})
    with pytest.raises(ValueError, match="rollout_backend='nope' must be one of hf, vllm"):
        RolloutConfig(rollout_backend="nope")


def test_too_few_lora_slots_is_refused(tiny):
    model, tok, targets = tiny
    from trainer.vllm_backend import VLLMBackend

    with pytest.raises(ValueError, match=r"max_loras=2 gives too few LoRA slots.*≥ 4"):
        VLLMBackend(model, tok, targets, model_dir="unused", slots=4, rank=1, options={"max_loras": 2})


def test_missing_vllm_says_how_to_install_it(tiny, monkeypatch):
    model, tok, _ = tiny
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm raises ImportError
    es = EvolutionStrategy(model, ESConfig(population_size=4))
    with pytest.raises(VLLMUnavailableError, match="make install-vllm"):
        build_backend("vllm", es, tok, model_dir="unused")
    assert issubclass(VLLMUnavailableError, ValueError)  # esfit train reports ValueErrors without a traceback


def test_the_hf_backend_is_the_registry_default(tiny):
    model, tok, _ = tiny
    es = EvolutionStrategy(model, ESConfig(population_size=4))
    assert isinstance(build_backend("hf", es, tok), HFBackend) and set(ROLLOUT_BACKENDS) >= {"hf", "vllm"}


def test_crn_seeds_are_the_hf_paths():
    from trainer.noise import derive_seed

    assert sampling_seed(3, 1, "abc", 2) == derive_seed(3, 1, "sample", "abc", 2) % ((1 << 63) - 1)


# -- on vLLM -------------------------------------------------------------------------------------
vllm_only = [pytest.mark.vllm]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    """A tiny Llama (head size 64, which vLLM's CPU attention takes) saved with save_pretrained."""
    from trainer.testing import char_tokenizer, tiny_llama

    folder = tmp_path_factory.mktemp("tiny-llama")
    tiny_llama(hidden_size=128, intermediate_size=256, num_attention_heads=2, num_key_value_heads=1).save_pretrained(folder)
    char_tokenizer().save_pretrained(folder)
    return folder


@pytest.fixture
def tiny(tiny_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_dir).eval()
    return model, AutoTokenizer.from_pretrained(tiny_dir), resolve_targets(model)


@pytest.fixture(scope="module")
def engine(tiny_dir):
    """One in-memory-adapter engine for the module's tests (starting one takes ~10 s)."""
    pytest.importorskip("vllm")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from trainer.vllm_backend import VLLMBackend

    model = AutoModelForCausalLM.from_pretrained(tiny_dir).eval()
    tok = AutoTokenizer.from_pretrained(tiny_dir)
    # a small token budget: a generation's prompts take several scheduler steps
    backend = VLLMBackend(model, tok, resolve_targets(model), model_dir=tiny_dir, slots=6, rank=2,
                          options={"max_model_len": 128, "max_num_batched_tokens": 128})
    yield backend
    backend.close()


def _fresh(backend, tiny_dir):
    """The engine's HF model reset to the saved weights, and loaded into the engine."""
    from transformers import AutoModelForCausalLM

    saved = AutoModelForCausalLM.from_pretrained(tiny_dir).state_dict()
    backend.model.load_state_dict(saved)
    backend.refresh()
    return backend.model, backend.tokenizer, backend.targets


@pytest.mark.vllm
def test_member_rollouts_equal_the_dense_reference_token_for_token(engine, tiny_dir):
    model, tok, targets = _fresh(engine, tiny_dir)
    pop = sample_population(targets, seed=1, generation=0, population_size=6, rank=2, sigma=0.3)
    got = engine.rollout(PROMPTS, GREEDY, population=pop)
    ref = naive_rollouts(model, tok, PROMPTS, GREEDY, targets=targets, population=pop)
    assert got.texts == ref.texts and got.new_tokens == ref.new_tokens
    centre = generate_rollouts(model, tok, PROMPTS, GREEDY).texts[0]
    assert sum(t != centre for t in got.texts) >= 4  # the perturbation changes the output: the test has power
    assert engine.rollout(PROMPTS, GREEDY).texts == [centre]  # no population: the centre model
    # a subset of members, in another order, lands in the same texts
    sub = engine.rollout(PROMPTS, GREEDY, population=pop, members=[5, 2])
    assert sub.texts == [ref.texts[5], ref.texts[2]]


@pytest.mark.vllm
def test_the_all_slots_lora_product_in_the_engine_equals_the_dense_reference(engine, tiny_dir, monkeypatch):
    """The tiny layers would not pay for trainer.vllm_cpu_lora's product (the engine is in this
    process, so raising its bound switches it on there), and it must give the dense reference too."""
    from trainer import vllm_cpu_lora

    model, tok, targets = _fresh(engine, tiny_dir)
    assert engine.fast_lora  # installed on this CPU engine
    calls = []
    monkeypatch.setattr(vllm_cpu_lora, "MAX_EXTRA", 10.0)
    monkeypatch.setattr(vllm_cpu_lora, "_token_slots", lambda *a, f=vllm_cpu_lora._token_slots: calls.append(1) or f(*a))
    pop = sample_population(targets, seed=3, generation=0, population_size=6, rank=2, sigma=0.3)
    got = engine.rollout(PROMPTS, GREEDY, population=pop)
    assert calls  # the product ran
    assert got.texts == naive_rollouts(model, tok, PROMPTS, GREEDY, targets=targets, population=pop).texts


@pytest.mark.vllm
def test_sampling_seeds_are_shared_across_members(engine, tiny_dir):
    _, _, targets = _fresh(engine, tiny_dir)
    config = RolloutConfig(max_new_tokens=12, rollouts_per_prompt=3, temperature=1.0)
    zero = sample_population(targets, seed=1, generation=0, population_size=6, rank=2, sigma=0.0)
    prompts = [*PROMPTS, "a longer prompt, " * 5]  # 72 rows, up to 110 prompt tokens: prefills take several scheduler steps
    out = engine.rollout(prompts, config, population=zero, seed=7, generation=3)
    assert all(member == out.texts[0] for member in out.texts)  # same weights, same noise: same texts
    assert len(set(out.texts[0][0])) > 1  # but rollouts k of one prompt differ
    alone = engine.rollout(PROMPTS[:1], config, population=zero, members=[3], seed=7, generation=3)
    assert alone.texts[0][0] == out.texts[3][0]  # a row's sample does not depend on its batch
    other = engine.rollout(prompts, config, population=zero, seed=7, generation=4)
    assert other.texts[0] != out.texts[0]  # another generation, other noise


@pytest.mark.vllm
def test_in_place_update_after_tell_matches_hf_on_the_new_centre(engine, tiny_dir):
    model, tok, targets = _fresh(engine, tiny_dir)
    es = EvolutionStrategy(model, ESConfig(population_size=6, rank=2, sigma=0.3, learning_rate=0.5, seed=4))
    es.tell(torch.linspace(-1, 1, 6))
    before = generate_rollouts(model, tok, PROMPTS, GREEDY).texts
    engine.refresh()
    assert engine.rollout(PROMPTS, GREEDY).texts == before
    pop = es.ask()
    got = engine.rollout(PROMPTS, GREEDY, population=pop, generation=es.generation)
    assert got.texts == naive_rollouts(model, tok, PROMPTS, GREEDY, targets=targets, population=pop).texts


@pytest.mark.vllm
def test_the_loop_learns_the_same_on_both_backends_under_greedy_decoding(engine, tiny_dir):
    """Greedy texts are equal, so fitness, update and the next generation's noise are too."""

    def fitness(completions, prompt_ids):
        return sum(t.count("a") - 0.5 * t.count(" ") for group in completions for t in group)

    def run(backend_of):
        model, tok, _ = _fresh(engine, tiny_dir)
        es = ESConfig(population_size=6, rank=2, sigma=0.2, learning_rate=0.05, seed=9)
        trainer = ESTrainer(model, tok, PROMPTS, fitness, es=es, rollout=GREEDY)
        trainer.backend = backend_of(trainer)
        history = trainer.train(3)
        return [round(m["fitness_mean"], 6) for m in history], trainer.evaluate()[1].texts

    hf = run(lambda t: t.backend)
    vl = run(lambda t: engine)
    assert hf == vl and len(set(hf[0])) > 1


@pytest.mark.vllm
@pytest.mark.parametrize("rank", [1, 8])
@pytest.mark.parametrize("repeat", [1, 20])  # 11 tokens (a decode step's branch), 220 (a prefill's)
def test_the_all_slots_lora_product_equals_vllms_own(rank, repeat):
    """trainer.vllm_cpu_lora against vLLM's CPU LoRA ops on one fused layer (3 slices), with tokens
    that have no adapter (slot -1) and several tokens per request."""
    pytest.importorskip("vllm")
    from vllm.lora.punica_wrapper.punica_cpu import PunicaWrapperCPU

    from trainer import vllm_cpu_lora

    gen = torch.Generator().manual_seed(0)
    slots, d_in, outs = 6, 32, (32, 16, 16)
    slot_of_token = torch.tensor([0, 0, 3, 5, 5, 5, -1, 2, 1, 4, 4]).repeat(repeat)
    t = slot_of_token.numel()
    assert (t <= vllm_cpu_lora.GATHER_TOKENS) == (repeat == 1)
    wrapper = PunicaWrapperCPU(512, 256, "cpu")
    wrapper._token_lora_indices[:t] = slot_of_token
    wrapper.indices_len[:] = [t, t, t, t]
    wrapper._update_prefill_metadata(slot_of_token)
    wrapper.is_prefill = True
    lora_a = tuple(torch.randn(slots, 1, rank, d_in, generator=gen) for _ in outs)
    lora_b = tuple(torch.randn(slots, 1, o, rank, generator=gen) for o in outs)
    x = torch.randn(t, d_in, generator=gen)
    y0 = torch.randn(t, sum(outs), generator=gen)
    ref, got = y0.clone(), y0.clone()
    wrapper.add_lora_linear(ref, x, lora_a, lora_b, 1.0, outs)
    assert vllm_cpu_lora.install(wrapper)
    calls = []
    original = vllm_cpu_lora._pays
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(vllm_cpu_lora, "MAX_EXTRA", 10.0)  # the tiny layer would not pay otherwise
        mp.setattr(vllm_cpu_lora, "_pays", lambda *a: calls.append(1) or original(*a))
        wrapper.add_lora_linear(got, x, lora_a, lora_b, 1.0, outs)
    assert calls and original(x, lora_a, lora_b) is False  # the fast product ran; at 0.25 it would not
    has = slot_of_token >= 0
    torch.testing.assert_close(got[has], ref[has], rtol=1e-5, atol=1e-5)
    # the token without an adapter gets no term (vLLM 0.32's CPU ops index slot -1 as the last slot;
    # the backend never mixes such tokens with adapters' in one batch)
    assert torch.equal(got[~has], y0[~has])
    assert not torch.equal(got, y0)
    assert vllm_cpu_lora.uninstall(wrapper) is False and wrapper._esfit_original is None


@pytest.mark.vllm
def test_adapter_files_fallback_equals_the_dense_reference(engine, tiny, tiny_dir):
    """Last in the file: vLLM holds one in-process engine at a time, so the module's engine is shut
    down before this one starts."""
    pytest.importorskip("vllm")
    engine.close()
    from trainer.vllm_backend import VLLMBackend

    model, tok, targets = tiny
    backend = VLLMBackend(model, tok, targets, model_dir=tiny_dir, slots=4, rank=1, adapters="files",
                          options={"max_model_len": 128})
    try:
        for generation in (0, 1):  # fresh adapter ids the second time
            pop = sample_population(targets, seed=2, generation=generation, population_size=4, rank=1, sigma=0.3)
            got = backend.rollout(PROMPTS, GREEDY, population=pop, generation=generation)
            assert got.texts == naive_rollouts(model, tok, PROMPTS, GREEDY, targets=targets, population=pop).texts
    finally:
        backend.close()


@pytest.mark.vllm
def test_an_engine_per_rank_runs_in_its_own_process(engine, tiny, tiny_dir):
    """As under torchrun (rank 1 of 2): the engine starts in its own processes without the
    trainer's process-group variables, the centre goes over as a file in RAM-backed storage."""
    pytest.importorskip("vllm")
    engine.close()
    from trainer.vllm_backend import VLLMBackend

    model, tok, targets = tiny
    backend = VLLMBackend(model, tok, targets, model_dir=tiny_dir, slots=2, rank=2, options={"max_model_len": 128},
                          world_size=2, local_rank=1)
    try:
        assert not backend.in_process
        es = EvolutionStrategy(model, ESConfig(population_size=4, rank=2, sigma=0.3, learning_rate=0.5))
        pop = es.ask()
        got = backend.rollout(PROMPTS, GREEDY, population=pop, members=[2, 3])
        ref = naive_rollouts(model, tok, PROMPTS, GREEDY, targets=targets, population=pop, members=[2, 3])
        assert got.texts == ref.texts
        es.tell(torch.linspace(-1, 1, 4))
        backend.refresh()
        assert backend.rollout(PROMPTS, GREEDY).texts == generate_rollouts(model, tok, PROMPTS, GREEDY).texts
    finally:
        backend.close()
