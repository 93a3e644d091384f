"""A fused CPU kernel for the per-member low-rank term, compiled on first use.

Each patched layer adds ``s · (x B_g) A_gᵀ`` to its output rows. The arithmetic is tiny (about
0.3% of the model's), but torch needs several passes over the output for it (a product, a sign, an
outer-product add) and those passes, not the flops, cost the patched rollout its speed
(``benchmarks/rollout_throughput.py``). This module does the whole term in one pass per layer: each
row of x is read once, its r products formed, and its output row updated in place, with the rows
split over as many OpenMP threads as torch uses (the very same pool where torch's OpenMP is the
libgomp of the Linux wheels, as here). It is called through ``ctypes``.

The C source below is compiled with the system's C compiler (``$CC``, else ``cc``) at
``-O3 -march=native`` the first time it is needed (well under a second), and cached under
``$ESFIT_CACHE/kernels`` (default ``~/.cache/esfit/kernels``), keyed by the source, the flags and
this CPU's features. Where no compiler works, or ``ESFIT_FUSED_KERNEL=0`` is set,
``lowrank_kernel`` returns None, a warning names the reason once, and
:class:`~trainer.PopulationPatch` uses torch ops instead: the same numbers up to float rounding,
only slower.

Supported: float32 and bfloat16 layers on the CPU, without autograd (rollouts), rank up to
``MAX_RANK``. Everything else (fp16, CUDA, a forward pass that needs gradients) takes the torch path.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import torch

_SOURCE = r"""
#include <stdint.h>
#include <string.h>

/* out[s, j, :] += sign_j * sum_k (x[s, j, :] . b[s, k, :]) * a[s, k, :]
   for g factor sets s of n rows j each, sign_j = -1 for j >= neg_from, else +1.
   x (g, n, din), out (g, n, dout), a (g, r, dout) and b (g, r, din) are all in the layer's dtype,
   with the scale sigma/sqrt(r) (and an unpaired member's sign) folded into a. Sums are float32; a
   bfloat16 output is rounded once, to nearest even as torch does (the AVX-512 BF16 instructions
   also treat subnormal inputs and outputs, below 1.2e-38, as zero, where torch keeps them). */

#define TILE 256
#define PARALLEL_WORK 32768 /* multiply-adds below which threads cost more than they save */

static inline float bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline uint16_t f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* y[0:m] += sum_k c[k] a[k * stride : k * stride + m] */
static void update_f32(float *restrict y, const float *restrict c, const float *restrict a, int64_t stride,
                       int64_t r, int64_t m) {
    for (int64_t k = 0; k < r; k++) {
        const float ck = c[k];
        const float *restrict ak = a + k * stride;
#pragma omp simd
        for (int64_t i = 0; i < m; i++) y[i] += ck * ak[i];
    }
}

#if defined(__AVX512F__) && defined(__AVX512BF16__) && !defined(ESFIT_PORTABLE)
#include <immintrin.h>

static inline __m512 load_bf16x16(const uint16_t *p) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p)), 16));
}

/* bf16 pairs multiplied exactly and summed in float32 by dpbf16ps, 32 at a time; four accumulators
   so that no instruction waits on the previous one's result */
static float dot_bf16(const uint16_t *restrict x, const uint16_t *restrict b, int64_t d) {
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps(), acc2 = _mm512_setzero_ps(),
           acc3 = _mm512_setzero_ps();
    int64_t i = 0;
#define BF16X32(p) ((__m512bh)_mm512_loadu_si512((const void *)(p)))
    for (; i + 128 <= d; i += 128) {
        acc0 = _mm512_dpbf16_ps(acc0, BF16X32(x + i), BF16X32(b + i));
        acc1 = _mm512_dpbf16_ps(acc1, BF16X32(x + i + 32), BF16X32(b + i + 32));
        acc2 = _mm512_dpbf16_ps(acc2, BF16X32(x + i + 64), BF16X32(b + i + 64));
        acc3 = _mm512_dpbf16_ps(acc3, BF16X32(x + i + 96), BF16X32(b + i + 96));
    }
    for (; i + 32 <= d; i += 32) acc0 = _mm512_dpbf16_ps(acc0, BF16X32(x + i), BF16X32(b + i));
#undef BF16X32
    float sum = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc0, acc1), _mm512_add_ps(acc2, acc3)));
    for (; i < d; i++) sum += bf16_to_f32(x[i]) * bf16_to_f32(b[i]);
    return sum;
}

static float dot_f32(const float *restrict x, const float *restrict b, int64_t d) {
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps(), acc2 = _mm512_setzero_ps(),
           acc3 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 64 <= d; i += 64) {
        acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(b + i), acc0);
        acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 16), _mm512_loadu_ps(b + i + 16), acc1);
        acc2 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 32), _mm512_loadu_ps(b + i + 32), acc2);
        acc3 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 48), _mm512_loadu_ps(b + i + 48), acc3);
    }
    for (; i + 16 <= d; i += 16) acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(b + i), acc0);
    float sum = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc0, acc1), _mm512_add_ps(acc2, acc3)));
    for (; i < d; i++) sum += x[i] * b[i];
    return sum;
}

static void update_bf16(uint16_t *restrict y, const float *restrict c, const uint16_t *restrict a, int64_t stride,
                        int64_t r, int64_t m) {
    /* 32 values at a time: the even ones are the low halves of 32-bit lanes, the odd ones the high
       halves, so both widen to float32 without shuffles; one permute puts them back in order */
    const __m512i high = _mm512_set1_epi32((int)0xffff0000u);
    const __m512i order = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6,
                                           21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    int64_t i = 0;
    for (; i + 32 <= m; i += 32) {
        const __m512i v = _mm512_loadu_si512((const void *)(y + i));
        __m512 even = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
        __m512 odd = _mm512_castsi512_ps(_mm512_and_si512(v, high));
        for (int64_t k = 0; k < r; k++) {
            const __m512i w = _mm512_loadu_si512((const void *)(a + k * stride + i));
            const __m512 ck = _mm512_set1_ps(c[k]);
            even = _mm512_fmadd_ps(ck, _mm512_castsi512_ps(_mm512_slli_epi32(w, 16)), even);
            odd = _mm512_fmadd_ps(ck, _mm512_castsi512_ps(_mm512_and_si512(w, high)), odd);
        }
        const __m512i packed = (__m512i)_mm512_cvtne2ps_pbh(odd, even);  /* even in the low half */
        _mm512_storeu_si512((void *)(y + i), _mm512_permutexvar_epi16(order, packed));
    }
    for (; i + 16 <= m; i += 16) {
        __m512 v = load_bf16x16(y + i);
        for (int64_t k = 0; k < r; k++) v = _mm512_fmadd_ps(_mm512_set1_ps(c[k]), load_bf16x16(a + k * stride + i), v);
        _mm256_storeu_si256((__m256i *)(y + i), (__m256i)_mm512_cvtneps_pbh(v));
    }
    for (; i < m; i++) {
        float v = bf16_to_f32(y[i]);
        for (int64_t k = 0; k < r; k++) v += c[k] * bf16_to_f32(a[k * stride + i]);
        y[i] = f32_to_bf16(v);
    }
}
#else
static float dot_f32(const float *restrict x, const float *restrict b, int64_t d) {
    float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
    for (int64_t i = 0; i < d; i++) acc += x[i] * b[i];
    return acc;
}

static float dot_bf16(const uint16_t *restrict x, const uint16_t *restrict b, int64_t d) {
    float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
    for (int64_t i = 0; i < d; i++) acc += bf16_to_f32(x[i]) * bf16_to_f32(b[i]);
    return acc;
}

static void update_bf16(uint16_t *restrict y, const float *restrict c, const uint16_t *restrict a, int64_t stride,
                        int64_t r, int64_t m) {
    float t[TILE];
#pragma omp simd
    for (int64_t i = 0; i < m; i++) t[i] = bf16_to_f32(y[i]);
    for (int64_t k = 0; k < r; k++) {
        const float ck = c[k];
#pragma omp simd
        for (int64_t i = 0; i < m; i++) t[i] += ck * bf16_to_f32(a[k * stride + i]);
    }
#pragma omp simd
    for (int64_t i = 0; i < m; i++) y[i] = f32_to_bf16(t[i]);
}
#endif

/* The threads split the rows: each reads its rows of x once and updates its rows of out. threads is
   torch's thread count, so that a second OpenMP runtime (clang's libomp beside torch's libgomp,
   say) still uses as many; with torch's own libgomp, which is already loaded, the pool is shared.
   Returns 0, or -1 (and does nothing) when r or threads is out of range. */
#define LOWRANK(NAME, T, DOT, UPDATE)                                                                  \
    int NAME(T *out, const T *x, const T *a, const T *b, int64_t g, int64_t n, int64_t din,             \
             int64_t dout, int64_t r, int64_t neg_from, int64_t threads) {                             \
        if (r < 1 || r > ESFIT_MAX_RANK || threads < 1) return -1;                                     \
        _Pragma("omp parallel for collapse(2) schedule(static) num_threads(threads) if (g * n * (din + dout) >= PARALLEL_WORK)") \
        for (int64_t s = 0; s < g; s++) {                                                              \
            for (int64_t j = 0; j < n; j++) {                                                          \
                const int64_t row = s * n + j;                                                         \
                const T *as = a + s * r * dout, *bs = b + s * r * din;                                 \
                const float sign = j >= neg_from ? -1.0f : 1.0f;                                       \
                float c[ESFIT_MAX_RANK];                                                               \
                for (int64_t k = 0; k < r; k++) c[k] = sign * DOT(x + row * din, bs + k * din, din);   \
                for (int64_t i0 = 0; i0 < dout; i0 += TILE)                                            \
                    UPDATE(out + row * dout + i0, c, as + i0, dout, r, dout - i0 < TILE ? dout - i0 : TILE); \
            }                                                                                          \
        }                                                                                              \
        return 0;                                                                                      \
    }

LOWRANK(esfit_lowrank_f32, float, dot_f32, update_f32)
LOWRANK(esfit_lowrank_bf16, uint16_t, dot_bf16, update_bf16)
"""

MAX_RANK = 64  # the kernel keeps a row's r products on the stack
# tried in order: with OpenMP threads (sharing torch's OpenMP runtime, which is already loaded),
# then without where the compiler has no OpenMP (Apple's clang); -mprefer-vector-width is x86's
_X86 = ["-mprefer-vector-width=512"] if platform.machine().lower() in {"x86_64", "amd64"} else []
_COMMON = ["-O3", "-march=native", *_X86, "-std=c11", "-shared", "-fPIC", f"-DESFIT_MAX_RANK={MAX_RANK}"]
_FLAG_SETS = [[*_COMMON, "-fopenmp"], [*_COMMON, "-fopenmp-simd"], _COMMON]
_SYMBOLS = {torch.float32: "esfit_lowrank_f32", torch.bfloat16: "esfit_lowrank_bf16"}

_library: ctypes.CDLL | None = None
_failure: str | None = None  # why the kernel is unavailable, once known


def _cache_dir() -> Path:
    return Path(os.environ.get("ESFIT_CACHE", Path.home() / ".cache" / "esfit")) / "kernels"


def _cpu_features() -> str:
    """What ``-march=native`` depends on: the CPU's model and flags (the machine name elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.machine() + platform.processor()
    keep = [line for line in text.splitlines() if line.startswith(("model name", "flags", "Features"))]
    return "\n".join(dict.fromkeys(keep))


def _compiler() -> str:
    return os.environ.get("CC") or "cc"


def _file_name(compiler: str, flags: list[str]) -> str:
    """The cached library's name: a hash of everything that shapes the machine code."""
    key = hashlib.sha256("\0".join([_SOURCE, compiler, *flags, _cpu_features()]).encode()).hexdigest()[:16]
    return f"lowrank-{key}.so"


def _compile(compiler: str, flags: list[str], target: Path) -> str | None:
    """Compile the source into ``target``; the compiler's complaint, or None when it worked."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        source, built = Path(tmp) / "lowrank.c", Path(tmp) / "lowrank.so"
        source.write_text(_SOURCE)
        done = subprocess.run([compiler, *flags, str(source), "-o", str(built)],
                              capture_output=True, text=True, timeout=120)
        if done.returncode:
            return f"{compiler} {' '.join(flags)}: {done.stderr.strip()[-1000:]}"
        os.replace(built, target)  # atomic: concurrent processes never load a half-written file
    return None


def _load(path: Path) -> ctypes.CDLL:
    library = ctypes.CDLL(str(path))
    for symbol in _SYMBOLS.values():
        fn = getattr(library, symbol)  # AttributeError when the file is some other library
        fn.argtypes = [ctypes.c_void_p] * 4 + [ctypes.c_int64] * 7
        fn.restype = ctypes.c_int
    return library


def _build(extra_flags: tuple[str, ...] = ()) -> ctypes.CDLL:
    """Compile (or find in the cache) and load the kernels. ``extra_flags`` are for tests:
    ``-DESFIT_PORTABLE`` builds the plain C loops that CPUs without AVX-512 BF16 run.

    A cached file that does not load (truncated by a full disk, say) is built again. Where the cache
    directory cannot be written, the library is built in a new private temporary directory
    (``mkdtemp``: only this user can write there), once per process.
    """
    compiler = _compiler()
    if shutil.which(compiler) is None:
        raise RuntimeError(f"no C compiler {compiler!r} on PATH (install gcc, or set CC)")
    errors, private = [], None
    for flags in ([*f, *extra_flags] for f in _FLAG_SETS):
        name = _file_name(compiler, flags)
        target = _cache_dir() / name
        if target.exists():
            try:
                return _load(target)
            except (OSError, AttributeError):
                pass  # damaged: build it again
        try:
            error = _compile(compiler, flags, target)
        except OSError:  # e.g. a read-only cache directory
            private = private or Path(tempfile.mkdtemp(prefix="esfit-kernels-"))
            target = private / name
            error = _compile(compiler, flags, target)
        if error is None:
            try:
                return _load(target)
            except (OSError, AttributeError) as err:  # e.g. an OpenMP runtime the loader cannot find
                error = f"{target} was built but does not load: {err}"
        errors.append(error)
    raise RuntimeError("compiling it failed: " + " | ".join(errors))


def lowrank_kernel(dtype: torch.dtype):
    """The fused kernel for layers of ``dtype``, or None where it is unsupported or unavailable.

    The kernel is called as ``fn(out_ptr, x_ptr, a_ptr, b_ptr, g, n, din, dout, r, neg_from,
    threads)`` on contiguous CPU tensors of ``dtype``: it adds ``sign_j · (x_j · b_s) a_s`` to every
    row ``j`` of each of the ``g`` factor sets ``s`` (see the C source for the layout), and returns
    0, or -1 without touching anything when ``r`` is not in [1, MAX_RANK] or ``threads`` < 1.
    """
    global _library, _failure
    symbol = _SYMBOLS.get(dtype)
    if symbol is None or not enabled():
        return None
    if _library is None and _failure is None:
        try:
            _library = _build()
        except Exception as err:  # noqa: BLE001 - any failure means: use torch ops instead
            _failure = str(err)
            warnings.warn(f"the fused low-rank kernel is unavailable ({_failure}); PopulationPatch uses torch ops, "
                          "which give the same rollouts more slowly (set ESFIT_FUSED_KERNEL=0 to skip the attempt)",
                          RuntimeWarning, stacklevel=2)
    return None if _library is None else getattr(_library, symbol)


def enabled() -> bool:
    """False when ``ESFIT_FUSED_KERNEL`` is set to 0/false/no/off."""
    return os.environ.get("ESFIT_FUSED_KERNEL", "1").strip().lower() not in {"0", "false", "no", "off"}


def unavailable_reason() -> str | None:
    """Why the last attempt to build the kernel failed, or None."""
    return _failure
