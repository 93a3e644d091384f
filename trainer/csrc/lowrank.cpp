// The fused CPU kernel of the per-member low-rank term, registered as the CPU implementation of
// the torch operator esfit::lowrank_ (its schema, fake and torch-ops reference are registered in
// trainer/kernel.py, which builds this file with torch.utils.cpp_extension).
//
//   out[s, j, :] += sign_j * sum_k (x[s, j, :] . b[s, k, :]) * a[s, k, :]
//
// for g factor sets s (members, or mirrored pairs) of n rows j each, sign_j = -1 for j >= neg_from,
// else +1. x (g·n, din) and out (g·n, dout) may have any leading shape; a (g, r, dout) and
// b (g, r, din) hold the factors as rows, with sigma/sqrt(r) (and an unpaired member's sign)
// folded into a. All four share one dtype, float32 or bfloat16. Sums are float32; a bfloat16
// output is rounded once, to nearest even as torch does (the AVX-512 BF16 instructions also treat
// subnormal inputs and outputs, below 1.2e-38, as zero, where torch keeps them).
//
// Why a kernel for 0.3% of the model's arithmetic: torch needs several passes over each layer's
// output for it (a product, a sign, an outer-product add), and those passes are what a rollout
// pays for. Here each row of x is read once, its r products formed, and its output row updated in
// place, with the rows split over torch's intra-op threads (at::parallel_for: OpenMP in the Linux
// wheels, the same libgomp that torch loaded).

#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#if defined(__AVX512F__) && defined(__AVX512BF16__) && !defined(ESFIT_PORTABLE)
#define ESFIT_AVX512_BF16 1  // -march=native found AVX-512 BF16 (ESFIT_PORTABLE: the plain loops)
#include <immintrin.h>
#endif

#ifndef ESFIT_OPS
#define ESFIT_OPS esfit  // the operator namespace; a test build of the portable loops uses another
#endif
#ifndef ESFIT_MAX_RANK
#define ESFIT_MAX_RANK 64  // a row's r products live on the stack
#endif

namespace {

constexpr int64_t kTile = 256;             // output columns updated per pass over the r products
constexpr int64_t kParallelWork = 32768;   // multiply-adds below which threads cost more than they save

inline float bf16_to_f32(uint16_t h) {
    uint32_t u = static_cast<uint32_t>(h) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

inline uint16_t f32_to_bf16(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);  // quiet NaN
    u += 0x7fffu + ((u >> 16) & 1u);
    return static_cast<uint16_t>(u >> 16);
}

// y[0:m] += sum_k c[k] a[k * stride : k * stride + m]
void update(float* __restrict__ y, const float* __restrict__ c, const float* __restrict__ a, int64_t stride,
            int64_t r, int64_t m) {
    for (int64_t k = 0; k < r; k++) {
        const float ck = c[k];
        const float* __restrict__ ak = a + k * stride;
#pragma omp simd
        for (int64_t i = 0; i < m; i++) y[i] += ck * ak[i];
    }
}

#ifdef ESFIT_AVX512_BF16

inline __m512 load_bf16x16(const uint16_t* p) {
    return _mm512_castsi512_ps(
        _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))), 16));
}

inline __m512bh load_bf16x32(const uint16_t* p) {
    return reinterpret_cast<__m512bh>(_mm512_loadu_si512(p));
}

// bf16 pairs multiplied exactly and summed in float32 by dpbf16ps, 32 at a time; four accumulators
// so that no instruction waits on the previous one's result
float dot(const uint16_t* __restrict__ x, const uint16_t* __restrict__ b, int64_t d) {
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps(), acc2 = _mm512_setzero_ps(),
           acc3 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 128 <= d; i += 128) {
        acc0 = _mm512_dpbf16_ps(acc0, load_bf16x32(x + i), load_bf16x32(b + i));
        acc1 = _mm512_dpbf16_ps(acc1, load_bf16x32(x + i + 32), load_bf16x32(b + i + 32));
        acc2 = _mm512_dpbf16_ps(acc2, load_bf16x32(x + i + 64), load_bf16x32(b + i + 64));
        acc3 = _mm512_dpbf16_ps(acc3, load_bf16x32(x + i + 96), load_bf16x32(b + i + 96));
    }
    for (; i + 32 <= d; i += 32) acc0 = _mm512_dpbf16_ps(acc0, load_bf16x32(x + i), load_bf16x32(b + i));
    float sum = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc0, acc1), _mm512_add_ps(acc2, acc3)));
    for (; i < d; i++) sum += bf16_to_f32(x[i]) * bf16_to_f32(b[i]);
    return sum;
}

float dot(const float* __restrict__ x, const float* __restrict__ b, int64_t d) {
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

void update(uint16_t* __restrict__ y, const float* __restrict__ c, const uint16_t* __restrict__ a, int64_t stride,
            int64_t r, int64_t m) {
    // 32 values at a time: the even ones are the low halves of 32-bit lanes, the odd ones the high
    // halves, so both widen to float32 without shuffles; one permute puts them back in order
    const __m512i high = _mm512_set1_epi32(static_cast<int>(0xffff0000u));
    const __m512i order = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22,
                                           6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    int64_t i = 0;
    for (; i + 32 <= m; i += 32) {
        const __m512i v = _mm512_loadu_si512(y + i);
        __m512 even = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
        __m512 odd = _mm512_castsi512_ps(_mm512_and_si512(v, high));
        for (int64_t k = 0; k < r; k++) {
            const __m512i w = _mm512_loadu_si512(a + k * stride + i);
            const __m512 ck = _mm512_set1_ps(c[k]);
            even = _mm512_fmadd_ps(ck, _mm512_castsi512_ps(_mm512_slli_epi32(w, 16)), even);
            odd = _mm512_fmadd_ps(ck, _mm512_castsi512_ps(_mm512_and_si512(w, high)), odd);
        }
        const __m512i packed = reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(odd, even));  // even in the low half
        _mm512_storeu_si512(y + i, _mm512_permutexvar_epi16(order, packed));
    }
    for (; i + 16 <= m; i += 16) {
        __m512 v = load_bf16x16(y + i);
        for (int64_t k = 0; k < r; k++) v = _mm512_fmadd_ps(_mm512_set1_ps(c[k]), load_bf16x16(a + k * stride + i), v);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + i), reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(v)));
    }
    for (; i < m; i++) {
        float v = bf16_to_f32(y[i]);
        for (int64_t k = 0; k < r; k++) v += c[k] * bf16_to_f32(a[k * stride + i]);
        y[i] = f32_to_bf16(v);
    }
}
#else
// the plain loops, for CPUs without AVX-512 BF16 (and ESFIT_PORTABLE test builds); the compiler
// vectorises them for whatever -march=native offers
float dot(const float* __restrict__ x, const float* __restrict__ b, int64_t d) {
    float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
    for (int64_t i = 0; i < d; i++) acc += x[i] * b[i];
    return acc;
}

float dot(const uint16_t* __restrict__ x, const uint16_t* __restrict__ b, int64_t d) {
    float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
    for (int64_t i = 0; i < d; i++) acc += bf16_to_f32(x[i]) * bf16_to_f32(b[i]);
    return acc;
}

void update(uint16_t* __restrict__ y, const float* __restrict__ c, const uint16_t* __restrict__ a, int64_t stride,
            int64_t r, int64_t m) {
    float t[kTile];
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

// The threads split the rows: each reads its rows of x once and updates its rows of out.
template <typename T>
void lowrank_rows(T* out, const T* x, const T* a, const T* b, int64_t g, int64_t n, int64_t din, int64_t dout,
                  int64_t r, int64_t neg_from) {
    const int64_t grain = std::max<int64_t>(1, kParallelWork / (din + dout));  // rows per thread, at least
    at::parallel_for(0, g * n, grain, [&](int64_t begin, int64_t end) {
        float c[ESFIT_MAX_RANK];
        for (int64_t row = begin; row < end; row++) {
            const int64_t s = row / n, j = row % n;
            const T *as = a + s * r * dout, *bs = b + s * r * din;
            const float sign = j >= neg_from ? -1.0f : 1.0f;
            for (int64_t k = 0; k < r; k++) c[k] = sign * dot(x + row * din, bs + k * din, din);
            for (int64_t i0 = 0; i0 < dout; i0 += kTile)
                update(out + row * dout + i0, c, as + i0, dout, r, std::min(kTile, dout - i0));
        }
    });
}

// the rows of x (or out): all its elements over the width of b's (or a's) rows
int64_t rows_of(const at::Tensor& t, const char* name, const char* width_name, int64_t width, const char* factor) {
    TORCH_CHECK(t.dim() >= 1 && t.size(-1) == width, "esfit::lowrank_: ", name, " must end in ", width_name, "=",
                width, " (the width of ", factor, "'s rows), got shape ", t.sizes());
    return t.numel() / width;
}

void lowrank_cpu(const at::Tensor& out, const at::Tensor& x, const at::Tensor& a, const at::Tensor& b,
                 int64_t neg_from) {
    TORCH_CHECK(a.dim() == 3 && b.dim() == 3 && a.size(0) == b.size(0) && a.size(1) == b.size(1),
                "esfit::lowrank_: a must be (g, r, dout) and b (g, r, din) with the same g and r, got a ", a.sizes(),
                " and b ", b.sizes());
    const int64_t g = a.size(0), r = a.size(1), dout = a.size(2), din = b.size(2);
    TORCH_CHECK(r >= 1 && r <= ESFIT_MAX_RANK, "esfit::lowrank_: the rank r=", r, " must be in [1, ",
                ESFIT_MAX_RANK, "] for the fused kernel; use trainer.lowrank's torch functions above it");
    const auto dtype = out.scalar_type();
    TORCH_CHECK(dtype == at::kFloat || dtype == at::kBFloat16,
                "esfit::lowrank_: the dtype must be float32 or bfloat16, got ", dtype,
                "; other dtypes take trainer.lowrank's torch functions");
    TORCH_CHECK(x.scalar_type() == dtype && a.scalar_type() == dtype && b.scalar_type() == dtype,
                "esfit::lowrank_: out, x, a and b must share one dtype, got ", dtype, ", ", x.scalar_type(), ", ",
                a.scalar_type(), ", ", b.scalar_type());
    TORCH_CHECK(out.is_contiguous() && x.is_contiguous() && a.is_contiguous() && b.is_contiguous(),
                "esfit::lowrank_: out, x, a and b must be contiguous (call .contiguous() first)");
    const int64_t rows = rows_of(x, "x", "din", din, "b");
    TORCH_CHECK(rows_of(out, "out", "dout", dout, "a") == rows, "esfit::lowrank_: out must have as many rows as x (",
                rows, "), got shape ", out.sizes());
    TORCH_CHECK(g >= 1 && rows % g == 0, "esfit::lowrank_: the rows of x (", rows,
                ") must be a whole multiple of the g=", g, " factor sets");
    const int64_t n = rows / g;
    TORCH_CHECK(neg_from >= 0 && neg_from <= n, "esfit::lowrank_: neg_from=", neg_from, " must be in [0, n=", n,
                "] (n rows per factor set; n means no negated rows)");
    if (rows == 0) return;
    if (dtype == at::kFloat) {
        lowrank_rows(out.mutable_data_ptr<float>(), x.const_data_ptr<float>(), a.const_data_ptr<float>(),
                     b.const_data_ptr<float>(), g, n, din, dout, r, neg_from);
    } else {  // bfloat16 as its raw 16 bits
        lowrank_rows(static_cast<uint16_t*>(out.mutable_data_ptr()), static_cast<const uint16_t*>(x.const_data_ptr()),
                     static_cast<const uint16_t*>(a.const_data_ptr()), static_cast<const uint16_t*>(b.const_data_ptr()),
                     g, n, din, dout, r, neg_from);
    }
}

}  // namespace

TORCH_LIBRARY_IMPL(ESFIT_OPS, CPU, m) { m.impl("lowrank_", &lowrank_cpu); }
