"""A faster multi-LoRA product for vLLM's CPU engine, installed by esfit's worker extension.

vLLM's CPU LoRA path (``PunicaWrapperCPU``, vLLM 0.32) computes each layer's adapter term with,
per slice of a fused layer, a fresh buffer, two ``repeat_interleave``, two gathers of every
token's own factors, ``lora_a[slot]`` (T, r, in) and ``lora_b[slot]`` (T, out, r), and two
``einsum`` batched products. With the few small adapters of an ES population (L slots of rank r,
L·r in the tens) fewer, larger operations do the same:

- rank 1: a decode step (at most :data:`GATHER_TOKENS` tokens) gathers each token's row of
  lora_A and forms ``h = Σ x ⊙ a_slot`` in one multiply-sum; a prefill multiplies every token with
  all slots, ``x @ A_allᵀ`` (T, L), in one GEMM and keeps each token's column; then
  ``y[:, slice] += h · b_slot`` in one fused multiply-add over the gathered rows of lora_B;
- rank r > 1: ``h = (x @ A_allᵀ)[t, slot_t·r : slot_t·r + r]`` and
  ``y[:, slice] += onehot(slot_t, h) @ B_all``, two GEMMs of T × L·r.

The numbers are the same products, summed in another order. The all-slots GEMMs cost about
L·r·(in + out) multiply-adds per token where the layer costs in·out, so this path is used only
while that is at most :data:`MAX_EXTRA` of the layer; otherwise, and for tensor parallel, sharded
or mixed-dtype cases, vLLM's own path runs. Tokens without an adapter (slot −1) get no term.
"""

from __future__ import annotations

import types

import torch

MAX_EXTRA = 0.25  # the all-slots products may add at most this share of the layer's own multiply-adds
GATHER_TOKENS = 128  # up to this many tokens (decode steps) a rank-1 shrink gathers rows instead


def install(wrapper) -> bool:
    """Route ``wrapper.add_lora_linear`` (a ``PunicaWrapperCPU``) through :func:`add_lora_linear`;
    False (nothing changed) if the wrapper is not vLLM's CPU one."""
    if getattr(wrapper, "_esfit_original", None) is not None:
        return True
    if type(wrapper).__name__ != "PunicaWrapperCPU":
        return False
    wrapper._esfit_original = wrapper.add_lora_linear
    wrapper._esfit_slots = None  # (key of the token indices, slots (T, 1) clamped to ≥ 0, keep (T, 1) or None)
    wrapper.add_lora_linear = types.MethodType(add_lora_linear, wrapper)
    return True


def uninstall(wrapper) -> bool:
    """vLLM's own ``add_lora_linear`` again; always False (the fast product is not in use)."""
    original = getattr(wrapper, "_esfit_original", None)
    if original is not None:
        wrapper.add_lora_linear = original
        wrapper._esfit_original = None
    return False


def _token_slots(wrapper, tokens: int):
    """Each token's slot (T, 1) int64 with −1 clamped to 0, and a (T, 1) mask of tokens that have
    one (None when all do): computed once per scheduler step, shared by every layer."""
    idx = wrapper.token_lora_indices
    key = (idx._version, idx.data_ptr(), idx.numel())
    cached = wrapper._esfit_slots
    if cached is None or cached[0] != key:
        slots = idx.view(-1, 1)
        keep = None
        if bool((slots < 0).any()):
            keep = (slots >= 0)
            slots = slots.clamp_min(0)
        cached = wrapper._esfit_slots = (key, slots, keep)
    return cached[1], cached[2]


def add_lora_linear(self, y: torch.Tensor, x: torch.Tensor, lora_a_stacked, lora_b_stacked, scale: float,
                    output_slices, *, buffer=None, **kwargs) -> None:
    """``y[:, slice s] += scale · (x A_{slot}ᵀ) B_{slot}ᵀ`` for each slice s, in place (see the module
    docstring); vLLM's own implementation where the all-slots products would not pay."""
    x2 = x.view(-1, x.shape[-1])
    t = x2.shape[0]
    if (buffer is not None or kwargs or self.no_lora and self.is_prefill or not _pays(x2, lora_a_stacked, lora_b_stacked)
            or self.indices_len[0] != t):
        return self._esfit_original(y, x, lora_a_stacked, lora_b_stacked, scale, output_slices, buffer=buffer,
                                    **kwargs)
    slots, keep = _token_slots(self, t)
    y2 = y.view(-1, y.shape[-1])
    offset = 0
    for a, b, width in zip(lora_a_stacked, lora_b_stacked, output_slices):
        n, _, r, d_in = a.shape  # (L, 1, r, in), (L, 1, out, r)
        d_out = b.shape[2]
        out = y2[:, offset:offset + min(width, d_out)]
        offset += width
        if r == 1:
            if t <= GATHER_TOKENS:  # a decode step: each token's own row, one fused multiply-sum
                h = (x2 * a.view(n, d_in).index_select(0, slots.view(-1))).sum(-1, keepdim=True)  # (T, 1)
            else:  # a prefill: every token with every slot in one GEMM, each token's column kept
                h = torch.mm(x2, a.view(n, d_in).t()).gather(1, slots)
            h = _masked(h, keep, scale)
            out.addcmul_(b.view(n, d_out).index_select(0, slots.view(-1))[:, :out.shape[1]], h)
            continue
        cols = slots * r + torch.arange(r, device=slots.device)  # (T, r): each token's slot columns
        p = torch.mm(x2, a.view(n * r, d_in).t())  # (T, L·r)
        h = _masked(p.gather(1, cols), keep, scale)
        onehot = torch.zeros_like(p).scatter_(1, cols, h)  # (T, L·r)
        b_all = b.view(n, d_out, r).transpose(1, 2).reshape(n * r, d_out)  # (L·r, out)
        out.addmm_(onehot, b_all[:, :out.shape[1]])


def _masked(h: torch.Tensor, keep: torch.Tensor | None, scale: float) -> torch.Tensor:
    """``h`` with the tokens without an adapter zeroed and ``scale`` applied."""
    if keep is not None:
        h = h * keep
    return h * scale if scale != 1.0 else h


def _pays(x: torch.Tensor, lora_a_stacked, lora_b_stacked) -> bool:
    """The all-slots products are within :data:`MAX_EXTRA` of the layer's work, and the shapes and
    dtypes are the plain ones (one dtype, contiguous buffers)."""
    layer = extra = 0
    for a, b in zip(lora_a_stacked, lora_b_stacked):
        if a.dtype != x.dtype or b.dtype != x.dtype or not (a.is_contiguous() and b.is_contiguous()):
            return False
        n, _, r, d_in = a.shape
        d_out = b.shape[2]
        layer += d_in * d_out
        extra += n * r * (d_in + d_out)
    return extra <= MAX_EXTRA * layer
