"""A faster multi-LoRA product for vLLM's CPU engine, installed by esfit's worker extension.

vLLM's CPU LoRA path (``PunicaWrapperCPU``, vLLM 0.32) computes each layer's adapter term by
gathering every token's own factors, ``lora_a[token_slot]`` (T, r, in) and ``lora_b[token_slot]``
(T, out, r), and multiplying them with ``einsum``: per slice of a fused layer a buffer, two
``repeat_interleave``, two gathers and two batched products, and in a prefill of T tokens the
gathers copy T·r·(in + out) numbers per slice. With the few small adapters of an ES population
(L slots of rank r, L·r in the tens) it is cheaper to multiply every token with *all* slots'
factors in one matrix product and keep each token's own columns:

    h = (x @ A_allᵀ)[t, slot_t·r : slot_t·r + r]        (T, r)     A_all (L·r, in)
    y[:, slice] += onehot(slot_t, h) @ B_all             (T, out)   B_all (L·r, out)

two GEMMs of T × L·r per slice and no copies of factors. It is exact (the same products, summed in
another order) and costs about L·r·(in + out) multiply-adds per token where the layer costs in·out,
so it is used only while that is at most :data:`MAX_EXTRA` of the layer; otherwise, and for tensor
parallel, sharded or mixed-dtype cases, vLLM's own path runs. Tokens without an adapter (slot −1)
get no term, as in vLLM.
"""

from __future__ import annotations

import types

import torch

MAX_EXTRA = 0.25  # the all-slots products may add at most this share of the layer's own multiply-adds


def install(wrapper) -> bool:
    """Route ``wrapper.add_lora_linear`` (a ``PunicaWrapperCPU``) through :func:`add_lora_linear`;
    False (nothing changed) if the wrapper is not vLLM's CPU one."""
    if getattr(wrapper, "_esfit_original", None) is not None:
        return True
    if type(wrapper).__name__ != "PunicaWrapperCPU":
        return False
    wrapper._esfit_original = wrapper.add_lora_linear
    wrapper._esfit_slots = None  # (version, T) -> (slots clamped (T, 1), keep (T, 1) or None)
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
        p = torch.mm(x2, a.view(n * r, d_in).t())  # (T, L·r): every token with every slot
        if r == 1:
            h = p.gather(1, slots)  # (T, 1)
            b_all = b.view(n, d_out)  # (L, out)
        else:
            cols = slots * r + torch.arange(r, device=slots.device)  # (T, r)
            h = p.gather(1, cols)
            b_all = b.view(n, d_out, r).transpose(1, 2).reshape(n * r, d_out)
            slots_r = cols
        if keep is not None:
            h = h * keep
        if scale != 1.0:
            h = h * scale
        onehot = torch.zeros_like(p).scatter_(1, slots if r == 1 else slots_r, h)  # (T, L·r)
        y2[:, offset:offset + width].addmm_(onehot, b_all[:, :width])
        offset += width


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
