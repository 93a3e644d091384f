"""The fused operator esfit::lowrank_ (trainer.kernel): it builds where a C++ compiler is found,
equals the torch formula in float32 and rounds bfloat16 like torch, on 1 and 2 threads, in the
AVX-512 BF16 code this CPU runs and the plain loops others run; torch.compile and the profiler see
it; a failed build falls back to torch ops with one warning; the cache refuses files that others
could have planted."""

import copy
import os
import shutil
import subprocess
import sys
import warnings

import pytest
import torch

import trainer.kernel as kernel
from trainer.lowrank import lowrank_reference_
from trainer.noise import sample_population
from trainer.patch import PopulationPatch
from trainer.targets import Target, resolve_targets


@pytest.fixture
def fp32_kernel():
    op = kernel.fused_op(torch.float32)
    if op is None:
        pytest.skip(f"the fused kernel is unavailable: {kernel.unavailable_reason()}")
    return op


@pytest.fixture(params=["native", "portable", "reference"])
def op(request, fp32_kernel):
    """The operator as this CPU runs it (AVX-512 BF16 code where it has it), the plain C++ loops
    that other CPUs run (built under a namespace of their own), and the torch-ops reference."""
    if request.param == "native":
        return fp32_kernel
    if request.param == "portable":
        kernel.build("esfit_portable", portable=True)
        return torch.ops.esfit_portable.lowrank_.default
    return lowrank_reference_


def test_builds_where_a_cxx_compiler_is_on_path():
    if shutil.which(kernel._compiler()) is None:
        pytest.skip("no C++ compiler on PATH")
    assert kernel.fused_op(torch.float32) is not None, kernel.unavailable_reason()
    assert kernel.fused_op(torch.bfloat16) is torch.ops.esfit.lowrank_.default
    assert kernel.fused_op(torch.float16) is None  # not supported: the torch path


def _case(g, n, din, dout, r, dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(g * n, din, generator=gen).to(dtype)
    out = torch.randn(g * n, dout, generator=gen).to(dtype)
    a = torch.randn(g, r, dout, generator=gen).to(dtype)
    b = torch.randn(g, r, din, generator=gen).to(dtype)
    return x, out, a, b


def _expected(x, out, a, b, neg_from):
    """The same term in float32, written out."""
    g, r, dout = a.shape
    n = x.shape[0] // g
    sign = torch.where(torch.arange(n) >= neg_from, -1.0, 1.0).view(1, n, 1)
    xb = torch.bmm(x.float().view(g, n, -1), b.float().transpose(1, 2)) * sign
    return out.float() + torch.bmm(xb, a.float()).view(out.shape)


# small cases stay on one thread whatever they are given, large ones (rows·(din+dout) over the
# threshold) use the threads there are; din and dout cover the 128-wide, 32-wide, 16-wide and scalar
# loops and dout a partial 256-column tile
SHAPES = [(3, 2, 5, 7, 1), (4, 6, 40, 300, 2), (2, 200, 96, 530, 3), (2, 60, 200, 576, 1), (1, 1, 17, 1, 64)]


@pytest.mark.parametrize("g,n,din,dout,r", SHAPES)
@pytest.mark.parametrize("paired", [True, False])
@pytest.mark.parametrize("threads", [1, 2])
def test_float32_equals_the_torch_formula(op, g, n, din, dout, r, paired, threads):
    torch.set_num_threads(threads)  # the conftest fixture puts it back
    x, out, a, b = _case(g, n, din, dout, r, torch.float32)
    neg_from = n // 2 if paired else n
    expected = _expected(x, out, a, b, neg_from)
    op(out, x, a, b, neg_from)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("g,n,din,dout,r", SHAPES[:4])
@pytest.mark.parametrize("threads", [1, 2])
def test_bfloat16_rounds_to_nearest_like_torch(op, g, n, din, dout, r, threads):
    torch.set_num_threads(threads)
    x, out, a, b = _case(g, n, din, dout, r, torch.bfloat16)
    expected = _expected(x, out, a, b, n // 2)
    term = (expected - out.float()).abs()
    op(out, x, a, b, n // 2)
    if op is lowrank_reference_:  # rounds x B and each product on the way: only close
        torch.testing.assert_close(out.float(), expected, rtol=0.02, atol=0.05 * term.max().item())
        return
    # within half a bfloat16 step of the exact value, give or take float32 summation error (which
    # matters where the term cancels the output), and nearly always torch's own rounding of it
    assert ((out.float() - expected).abs() <= expected.abs() * 2.0**-8 + term * 1e-5 + 1e-30).all()
    assert (out == expected.to(torch.bfloat16)).float().mean() > 0.99


def test_nan_and_inf_propagate(op):
    x, out, a, b = _case(2, 2, 40, 40, 1, torch.bfloat16)
    x[0, 3] = float("nan")
    out[3, 2] = float("inf")
    op(out, x, a, b, 1)
    assert out[0].isnan().all() and not out[1].isnan().any()
    assert out[3, 2] == float("inf")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_on_cuda_the_operator_runs_its_torch_reference(dtype):
    x, out, a, b = _case(4, 6, 40, 300, 2, dtype)
    expected = _expected(x, out, a, b, 3)
    on_gpu = out.cuda()
    torch.ops.esfit.lowrank_(on_gpu, x.cuda(), a.cuda(), b.cuda(), 3)
    close = dict(rtol=1e-5, atol=1e-4) if dtype is torch.float32 else dict(rtol=0.02, atol=0.1)
    torch.testing.assert_close(on_gpu.float().cpu(), expected, **close)


@pytest.mark.parametrize("r", [0, kernel.MAX_RANK + 1])
def test_a_rank_out_of_range_is_refused_and_touches_nothing(fp32_kernel, r):
    x, out, a, b = _case(2, 2, 8, 8, max(r, 1), torch.float32)
    a, b = a[:, :r].contiguous(), b[:, :r].contiguous()
    before = out.clone()
    with pytest.raises(RuntimeError, match=rf"rank r={r} must be in \[1, {kernel.MAX_RANK}\]"):
        fp32_kernel(out, x, a, b, 1)
    assert torch.equal(out, before)


def test_shape_and_dtype_errors_name_the_argument(fp32_kernel):
    x, out, a, b = _case(2, 2, 8, 6, 1, torch.float32)
    with pytest.raises(RuntimeError, match="out must have as many rows as x"):
        fp32_kernel(out[:3], x, a, b, 1)
    with pytest.raises(RuntimeError, match="x must end in din=8"):
        fp32_kernel(out, x[:, :7].contiguous(), a, b, 1)
    with pytest.raises(RuntimeError, match="share one dtype"):
        fp32_kernel(out, x.double(), a, b, 1)
    with pytest.raises(RuntimeError, match="neg_from=3 must be in"):
        fp32_kernel(out, x, a, b, 3)


def test_torch_compile_traces_it_with_fullgraph(fp32_kernel):
    """A registered fake lets dynamo put the operator in the graph (and AOT autograd functionalise
    its write to ``out``) instead of breaking the graph on it."""

    def step(out, x, a, b):
        torch.ops.esfit.lowrank_(out, x, a, b, 1)
        return out * 2

    x, out, a, b = _case(2, 2, 16, 24, 1, torch.float32)
    expected = 2 * _expected(x, out, a, b, 1)
    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(out, x, a, b), expected)
    torch.testing.assert_close(out, expected / 2)  # the write to out survives functionalisation


def test_opcheck_schema_and_fake(fp32_kernel):
    x, out, a, b = _case(2, 3, 16, 24, 2, torch.float32)
    torch.library.opcheck(fp32_kernel, (out, x, a, b, 1), test_utils=("test_schema", "test_faketensor"))


def test_the_profiler_names_it(fp32_kernel):
    x, out, a, b = _case(2, 2, 8, 8, 1, torch.float32)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        fp32_kernel(out, x, a, b, 1)
    assert "esfit::lowrank_" in {e.key for e in prof.key_averages()}


def _one_layer(layer, rank=1):
    """A lone layer as the only target, and a population of two for it."""
    targets = [Target("layer", layer, layer.out_features, layer.in_features)]
    return targets, sample_population(targets, seed=0, generation=0, population_size=2, rank=rank, sigma=0.5)


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


def test_an_output_without_the_rows_of_its_input_is_refused(fp32_kernel):
    """A layer whose forward returns fewer rows than it was given: the operator would write past
    the end of the output, so it checks and raises."""

    class FirstRowOnly(torch.nn.Linear):
        def forward(self, x):
            return super().forward(x)[:1]

    layer = FirstRowOnly(4, 3)
    targets, population = _one_layer(layer)
    with torch.no_grad(), PopulationPatch(targets) as patch:
        patch.set_population(population)
        assert patch.fused_layers == 1
        with pytest.raises(RuntimeError, match="out must have as many rows as x"):
            layer(torch.randn(2, 4))


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


def test_environment_switch_turns_it_off(fp32_kernel, monkeypatch):
    monkeypatch.setenv("ESFIT_FUSED_KERNEL", "off")
    assert kernel.fused_op(torch.float32) is None


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


# -- building and the cache ------------------------------------------------------------------------

def test_a_failed_build_warns_once_and_patch_uses_torch_ops(tiny_model, monkeypatch):
    monkeypatch.setattr(kernel, "_built", {})
    monkeypatch.setattr(kernel, "_failure", None)
    monkeypatch.setenv("CXX", "no-such-compiler-esfit")
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


def _build_in_subprocess(cache, *, check=True, **env):
    code = "import torch, trainer.kernel as k; print(k.build()); print(k.fused_op(torch.float32))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "ESFIT_CACHE": str(cache), **env})
    if check:
        assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_a_damaged_cached_library_is_linked_again(fp32_kernel, tmp_path):
    """A cached file that does not load (truncated by a full disk, say) is built again; here only
    linked, from the object file beside it."""
    built = kernel._built["esfit"]
    (tmp_path / "kernels").mkdir(mode=0o700)
    copy_dir = tmp_path / "kernels" / built.parent.name
    shutil.copytree(built.parent, copy_dir)
    damaged = copy_dir / built.name
    damaged.write_bytes(b"half a file")
    done = _build_in_subprocess(tmp_path)
    assert str(damaged) in done.stdout and "esfit.lowrank_.default" in done.stdout
    assert damaged.stat().st_size > 10000


def test_processes_starting_together_share_one_build_and_a_stale_lock_does_not_hang_them(fp32_kernel, tmp_path):
    """torchrun ranks start together: one links the library, the other waits and loads it. A lock
    file that a killed build left behind (torch's own, which it would wait on forever) is cleared.
    The object file is copied from this session's build, so only the link step runs here."""
    built = kernel._built["esfit"]
    (tmp_path / "kernels").mkdir(mode=0o700)
    folder = tmp_path / "kernels" / built.parent.name
    shutil.copytree(built.parent, folder)
    (folder / built.name).unlink()
    (folder / "lock").write_text("")  # as a SIGKILLed build leaves it
    code = "import torch, trainer.kernel as k; print(k.build())"
    env = {**os.environ, "ESFIT_CACHE": str(tmp_path)}
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env) for _ in range(2)]
    try:
        results = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in results]
    assert {out.strip() for out, _ in results} == {str(folder / built.name)}


def test_the_cache_folder_is_made_private(tmp_path):
    folder = tmp_path / "cache" / "kernels"
    kernel.private_dir(folder)
    assert folder.stat().st_mode & 0o777 == 0o700 and folder.parent.stat().st_mode & 0o777 == 0o700


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="no user ids on this platform")
def test_a_cache_file_of_another_user_is_refused(tmp_path, monkeypatch):
    """Issue 13: a cached file that belongs to someone else is refused like a writable one."""
    library = tmp_path / "k.so"
    library.write_bytes(b"")
    library.chmod(0o600)
    kernel.check_private(library)  # this user's private file passes
    owner = library.stat().st_uid
    monkeypatch.setattr(kernel.os, "getuid", lambda: owner + 1)
    with pytest.raises(kernel.UnsafeCacheError, match=f"belongs to user id {owner}, not to this user"):
        kernel.check_private(library)


def _plant(path, marker):
    """A shared library whose constructor writes ``marker``: what an attacker would leave."""
    source = path.parent / "planted.c"
    source.write_text(f'#include <stdio.h>\n__attribute__((constructor)) static void planted(void) {{ '
                      f'FILE *f = fopen("{marker}", "w"); if (f) fclose(f); }}\n')
    subprocess.run(["cc", "-shared", "-fPIC", str(source), "-o", str(path)], check=True, capture_output=True)
    source.unlink()


@pytest.mark.parametrize("how", ["file group-writable", "folder other-writable", "cache without sticky bit",
                                 "symlink", "trusted (control)"])
def test_a_planted_library_is_refused_and_not_loaded(tmp_path, monkeypatch, how):
    """Issue 13: a .so that another user could have put at the kernel's cached name must not be
    loaded (its constructor would run in this process). The control shows that the same file,
    private, is loaded: the refusal is what keeps it out."""
    if shutil.which("cc") is None:
        pytest.skip("no C compiler to build the planted library with")
    namespace = "esfit_planted_" + how.split()[0]
    monkeypatch.setattr(kernel, "_built", {})
    cache, marker = tmp_path / "cache", tmp_path / "constructor-ran"
    cflags = kernel._cflags(kernel._FLAG_SETS[0][0], namespace, False)
    name = kernel._name(kernel._compiler(), cflags)
    folder = cache / "kernels" / name
    folder.mkdir(parents=True, mode=0o700)
    (cache / "kernels").chmod(0o700)
    library = folder / f"{name}.so"
    if how == "symlink":
        _plant(tmp_path / "elsewhere.so", marker)
        library.symlink_to(tmp_path / "elsewhere.so")
    else:
        _plant(library, marker)
        library.chmod(0o600)
    if how == "file group-writable":
        library.chmod(0o620)
    elif how == "folder other-writable":
        (cache / "kernels").chmod(0o703)
    elif how == "cache without sticky bit":
        cache.chmod(0o777)
    compiled = []

    def no_compiler(name, cflags, ldflags, folder):  # stands in for the real (slow) build
        compiled.append(folder)
        raise RuntimeError("not compiled in this test")

    monkeypatch.setattr(kernel, "_compile", no_compiler)
    monkeypatch.setenv("ESFIT_CACHE", str(cache))
    with warnings.catch_warnings(record=True) as caught, pytest.raises(RuntimeError, match="building it failed"):
        warnings.simplefilter("always")
        kernel.build(namespace)
    if how == "trusted (control)":
        assert marker.exists()  # loaded (and then found to register no kernel)
        return
    assert not marker.exists(), "the planted library was loaded"
    assert any("kernel cache is not used" in str(w.message) for w in caught)
    rebuilt = [f for f in compiled if f.name == name]
    assert rebuilt and all("esfit-kernels-" in str(f) for f in rebuilt)  # built privately instead
