"""The fused CPU kernel (trainer.kernel): it builds where a C compiler is found, equals the torch
formula in float32 and rounds bfloat16 like torch, and a failed build falls back to torch ops with
one warning instead of failing the rollout."""

import copy
import shutil
import warnings

import pytest
import torch

import trainer.kernel as kernel
from trainer.noise import sample_population
from trainer.patch import PopulationPatch
from trainer.targets import Target, resolve_targets


@pytest.fixture
def fp32_kernel():
    fn = kernel.lowrank_kernel(torch.float32)
    if fn is None:
        pytest.skip(f"the fused kernel is unavailable: {kernel.unavailable_reason()}")
    return fn


@pytest.fixture(params=["native", "portable"])
def library(request, fp32_kernel):
    """The kernels as this CPU runs them (AVX-512 BF16 code where it has it), and the plain C loops
    that other CPUs run, so that both are tested here."""
    if request.param == "native":
        return kernel._library
    return kernel._build(("-DESFIT_PORTABLE",))


def test_builds_where_a_c_compiler_is_on_path():
    if shutil.which(kernel._compiler()) is None:
        pytest.skip("no C compiler on PATH")
    assert kernel.lowrank_kernel(torch.float32) is not None, kernel.unavailable_reason()
    assert kernel.lowrank_kernel(torch.bfloat16) is not None
    assert kernel.lowrank_kernel(torch.float16) is None  # not supported: the torch path


def _case(g, n, din, dout, r, dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(g, n, din, generator=gen).to(dtype)
    out = torch.randn(g, n, dout, generator=gen).to(dtype)
    a = torch.randn(g, r, dout, generator=gen).to(dtype)
    b = torch.randn(g, r, din, generator=gen).to(dtype)
    return x, out, a, b


def _expected(x, out, a, b, neg_from):
    """The same term with torch ops, in float32."""
    n = x.shape[1]
    sign = torch.where(torch.arange(n) >= neg_from, -1.0, 1.0).view(1, n, 1)
    return out.float() + torch.bmm(torch.bmm(x.float(), b.float().transpose(1, 2)) * sign, a.float())


def _run(fn, x, out, a, b, neg_from, threads=1):
    g, n, din = x.shape
    r, dout = a.shape[1], a.shape[2]
    return fn(out.data_ptr(), x.data_ptr(), a.data_ptr(), b.data_ptr(), g, n, din, dout, r, neg_from, threads)


# small cases stay on one thread whatever they are given, large ones (n·(din+dout) over the
# threshold) use the threads asked for; din and dout cover the 128-wide, 32-wide, 16-wide and scalar
# loops and dout a partial 256-column tile
SHAPES = [(3, 2, 5, 7, 1), (4, 6, 40, 300, 2), (2, 200, 96, 530, 3), (2, 60, 200, 576, 1), (1, 1, 17, 1, 64)]


@pytest.mark.parametrize("g,n,din,dout,r", SHAPES)
@pytest.mark.parametrize("paired", [True, False])
@pytest.mark.parametrize("threads", [1, 2])
def test_float32_equals_the_torch_formula(library, g, n, din, dout, r, paired, threads):
    x, out, a, b = _case(g, n, din, dout, r, torch.float32)
    neg_from = n // 2 if paired else n
    expected = _expected(x, out, a, b, neg_from)
    assert _run(library.esfit_lowrank_f32, x, out, a, b, neg_from, threads) == 0
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("g,n,din,dout,r", SHAPES[:4])
@pytest.mark.parametrize("threads", [1, 2])
def test_bfloat16_rounds_to_nearest_like_torch(library, g, n, din, dout, r, threads):
    fn = library.esfit_lowrank_bf16
    x, out, a, b = _case(g, n, din, dout, r, torch.bfloat16)
    expected = _expected(x, out, a, b, n // 2)
    term = (expected - out.float()).abs()
    assert _run(fn, x, out, a, b, n // 2, threads) == 0
    # within half a bfloat16 step of the exact value, give or take float32 summation error (which
    # matters where the term cancels the output), and nearly always torch's own rounding of it
    assert ((out.float() - expected).abs() <= expected.abs() * 2.0**-8 + term * 1e-5 + 1e-30).all()
    assert (out == expected.to(torch.bfloat16)).float().mean() > 0.99


def _one_layer(layer, rank=1):
    """A lone layer as the only target, and a population of two for it."""
    targets = [Target("layer", layer, layer.out_features, layer.in_features)]
    return targets, sample_population(targets, seed=0, generation=0, population_size=2, rank=rank, sigma=0.5)


@pytest.mark.parametrize("r,threads", [(0, 1), (kernel.MAX_RANK + 1, 1), (1, 0)])
def test_out_of_range_rank_or_threads_touch_nothing(library, r, threads):
    x, out, a, b = _case(2, 2, 8, 8, max(r, 1), torch.float32)
    before = out.clone()
    g, n, din = x.shape
    assert library.esfit_lowrank_f32(out.data_ptr(), x.data_ptr(), a.data_ptr(), b.data_ptr(), g, n, din, 8, r, 1,
                                     threads) == -1
    assert torch.equal(out, before)


def test_a_rank_above_the_kernels_limit_takes_torch_ops(fp32_kernel):
    targets, population = _one_layer(torch.nn.Linear(4, 3), rank=kernel.MAX_RANK + 1)
    with PopulationPatch(targets) as patch:
        patch.set_population(population)
        assert patch.fused_layers == 0


def test_a_pass_with_gradients_takes_torch_ops_and_gets_the_same_gradients(tiny_model, monkeypatch, fp32_kernel):
    """The kernel writes outside autograd: with gradients on, the term must come from torch ops."""
    targets = resolve_targets(tiny_model)
    population = sample_population(targets, seed=2, generation=0, population_size=2, rank=1, sigma=0.2)
    ids = torch.tensor([[5, 6, 7, 8], [9, 10, 11, 12]])
    grads = {}
    for flag in ("1", "0"):
        monkeypatch.setenv("ESFIT_FUSED_KERNEL", flag)
        tiny_model.zero_grad()
        with PopulationPatch(targets) as patch:
            patch.set_population(population)
            assert patch.fused_layers == (len(targets) if flag == "1" else 0)
            tiny_model(input_ids=ids).logits.square().mean().backward()
        grads[flag] = [p.grad.clone() for p in tiny_model.parameters()]
    for with_kernel, without in zip(grads["1"], grads["0"]):
        torch.testing.assert_close(with_kernel, without)
    with torch.no_grad():  # and the perturbation did reach the loss
        plain = tiny_model(input_ids=ids).logits
        with PopulationPatch(targets) as patch:
            patch.set_population(population)
            assert not torch.equal(tiny_model(input_ids=ids).logits, plain)


def test_an_output_without_the_rows_the_kernel_would_write_takes_torch_ops(fp32_kernel):
    """A layer whose forward returns fewer rows than it was given: the kernel would write past the
    end; the torch path raises instead."""

    class FirstRowOnly(torch.nn.Linear):
        def forward(self, x):
            return super().forward(x)[:1]

    layer = FirstRowOnly(4, 3)
    targets, population = _one_layer(layer)
    with torch.no_grad(), PopulationPatch(targets) as patch:
        patch.set_population(population)
        assert patch.fused_layers == 1
        with pytest.raises(RuntimeError):
            layer(torch.randn(2, 4))


def test_nan_and_inf_propagate(library):
    x, out, a, b = _case(2, 2, 40, 40, 1, torch.bfloat16)
    x[0, 0, 3] = float("nan")
    out[1, 1, 2] = float("inf")
    _run(library.esfit_lowrank_bf16, x, out, a, b, 1)
    assert out[0, 0].isnan().all() and not out[0, 1].isnan().any()
    assert out[1, 1, 2] == float("inf")


def test_a_failed_build_warns_once_and_patch_uses_torch_ops(tiny_model, monkeypatch, tmp_path):
    monkeypatch.setattr(kernel, "_library", None)
    monkeypatch.setattr(kernel, "_failure", None)
    monkeypatch.setenv("ESFIT_CACHE", str(tmp_path))
    monkeypatch.setenv("CC", "no-such-compiler-esfit")
    targets = resolve_targets(tiny_model)
    population = sample_population(targets, seed=1, generation=0, population_size=2, rank=1, sigma=0.1)
    ids = torch.tensor([[5, 6, 7], [5, 6, 7]])
    warned = pytest.warns(RuntimeWarning, match="no-such-compiler-esfit.*ESFIT_FUSED_KERNEL=0")
    with warned, torch.no_grad(), PopulationPatch(targets) as patch:
        patch.set_population(population)
        assert patch.fused_layers == 0
        logits = tiny_model(input_ids=ids).logits
    assert not torch.equal(logits[0], logits[1])  # the torch path still perturbs
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once: not again at the next population
        with PopulationPatch(targets) as patch:
            patch.set_population(population)
    assert "no-such-compiler-esfit" in kernel.unavailable_reason()


def test_a_damaged_cached_library_is_built_again(fp32_kernel, monkeypatch, tmp_path):
    monkeypatch.setenv("ESFIT_CACHE", str(tmp_path))
    flags = [*kernel._FLAG_SETS[0], "-DESFIT_PORTABLE"]
    damaged = tmp_path / "kernels" / kernel._file_name(kernel._compiler(), flags)
    damaged.parent.mkdir(parents=True)
    damaged.write_bytes(b"half a file")  # e.g. a disk that filled up
    library = kernel._build(("-DESFIT_PORTABLE",))
    assert damaged.stat().st_size > 1000
    x, out, a, b = _case(2, 2, 8, 8, 1, torch.float32)
    expected = _expected(x, out, a, b, 1)
    _run(library.esfit_lowrank_f32, x, out, a, b, 1)
    torch.testing.assert_close(out, expected)


def test_an_unwritable_cache_directory_builds_in_the_temporary_directory(fp32_kernel, monkeypatch, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("ESFIT_CACHE", str(blocker / "cache"))  # mkdir fails, even for root
    library = kernel._build(("-DESFIT_PORTABLE", "-DESFIT_TEST_TMP"))
    assert "esfit-kernels-" in library._name


def test_environment_switch_turns_it_off(fp32_kernel, monkeypatch):
    monkeypatch.setenv("ESFIT_FUSED_KERNEL", "off")
    assert kernel.lowrank_kernel(torch.float32) is None


def test_bfloat16_model_through_the_kernel_is_as_close_to_float32_as_torch_ops(tiny_model, monkeypatch, fp32_kernel):
    """A bfloat16 model through the kernel and through torch ops, against the same weights in
    float32: the kernel (float32 sums, one rounding) is no further off, on average, than torch ops
    (which round x B to bfloat16 on the way)."""
    reference = tiny_model
    model = copy.deepcopy(tiny_model).to(torch.bfloat16)
    reference.load_state_dict({k: v.float() for k, v in model.state_dict().items()})  # the same weights
    ids = torch.randint(3, 40, (2, 9), generator=torch.Generator().manual_seed(0)).repeat(4, 1)
    logits = {}
    for path, net in (("fused", model), ("torch", model), ("float32", reference)):
        monkeypatch.setenv("ESFIT_FUSED_KERNEL", "0" if path == "torch" else "1")
        targets = resolve_targets(net)
        population = sample_population(targets, seed=3, generation=1, population_size=4, rank=2, sigma=0.3)
        with torch.no_grad(), PopulationPatch(targets) as patch:
            patch.set_population(population)
            assert patch.fused_layers == (0 if path == "torch" else len(targets))
            logits[path] = net(input_ids=ids).logits.float()
    with torch.no_grad():
        spread = (logits["float32"][:2] - reference(input_ids=ids[:2]).logits).abs().max()
    error = {path: (logits[path] - logits["float32"]).abs().mean() for path in ("fused", "torch")}
    assert spread > 0.2  # the perturbation is well above bfloat16 noise
    assert error["fused"] < 0.02 * spread
    assert error["fused"] <= 1.1 * error["torch"], error  # mean errors: llama 0.0028 vs 0.0036, gpt2 both 0.0011


def test_a_non_contiguous_input_takes_the_torch_path(fp32_kernel):
    """The kernel needs contiguous rows; anything else (here a transposed view) still gets its term."""
    layer = torch.nn.Linear(6, 5)
    targets, population = _one_layer(layer)
    x = torch.randn(6, 4).T  # (4, 6), not contiguous
    with torch.no_grad(), PopulationPatch(targets) as patch:
        patch.set_population(population)
        assert patch.fused_layers == 1
        strided, dense = layer(x), layer(x.contiguous())
    torch.testing.assert_close(strided, dense)
    assert not torch.equal(dense, layer(x))
