"""The per-member low-rank term as pure functions: the factor record and the torch-ops path.

Member i's rows of a layer's output get ``σ/√r · s_i (x B_i) A_iᵀ`` (EGGROLL). The patched forward
pass (:mod:`trainer.patch`) holds one :class:`LayerFactors` per layer for the members in the batch
and adds the term with the functions here, or with the fused operator ``esfit::lowrank_``
(:mod:`trainer.kernel`) whose reference implementation is :func:`lowrank_reference_`, built from
the same functions.

Layout: the batch's rows are grouped into g factor sets of n rows × tokens each (a member, or a
mirrored pair whose +E member's rows come first), so x reshapes to (g, n, in) and the output to
(g, n, out) without copies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from trainer.noise import Population

# up to this many (rows of one factor set × stacked rank) x B is a broadcast multiply-sum, not bmm
BROADCAST_MAX = 64


@dataclass(frozen=True)
class LayerFactors:
    """One layer's factors for the members in the batch, cast once to the layer's dtype and device.

    With ``paired``, g is the number of mirrored pairs and the second half of each set's n rows is
    the −E_j member (its x B is negated); otherwise g is the number of members, signs folded into A.
    """

    a: torch.Tensor  # (g, r, out): A_jᵀ · σ/√r, times the member's sign when not paired
    b: torch.Tensor  # (g, in, r): B_j, for the product of many rows (bmm)
    b_rows: torch.Tensor  # (g, r, in): B_jᵀ contiguous, for the fused op and the few-row product
    paired: bool

    @property
    def sets(self) -> int:
        return self.a.shape[0]

    @property
    def rank(self) -> int:
        return self.a.shape[1]

    def neg_from(self, n: int) -> int:
        """The first of a set's n rows whose term is negated (n: none)."""
        return n // 2 if self.paired else n


def layer_factors(population: Population, name: str, owners: Sequence[int], *, paired: bool, dtype,
                  device) -> LayerFactors:
    """The record for layer ``name``: one factor set per member of ``owners`` (the +E member of
    each pair when ``paired``)."""
    a, b = population.member_factors(name, owners, dtype=dtype, device=device)  # (g, out, r), (g, in, r)
    return LayerFactors(a.transpose(1, 2).contiguous(), b.contiguous(), b.transpose(1, 2).contiguous(), paired)


def in_mirrored_pairs(population: Population, members: Sequence[int]) -> bool:
    """True when ``members`` is (+E_j, −E_j) couples back to back (positions 2k, 2k+1): then the
    rows of both members of a couple can share one factor set."""
    if len(members) % 2:
        return False
    idx = torch.as_tensor(list(members))
    pair, sign = population.pair_index[idx], population.sign[idx]
    return torch.equal(pair[0::2], pair[1::2]) and bool((sign[0::2] > 0).all()) and bool((sign[1::2] < 0).all())


def few_rows(factors: LayerFactors, x: torch.Tensor) -> bool:
    """Whether x B is a broadcast multiply-sum (decoding) rather than a bmm (prefill)."""
    return x.numel() // (factors.sets * x.shape[-1]) * factors.rank <= BROADCAST_MAX


def project(factors: LayerFactors, x: torch.Tensor, b_rows: torch.Tensor | None = None) -> torch.Tensor:
    """x B per factor set: (g, n, r), signs not applied.

    ``b_rows`` (g, Σr, in) may stack the B rows of several layers that read this same ``x``
    (:func:`stack_rows`): then the result is (g, n, Σr) and column block k is layer k's product.
    Stacking changes no bit of any layer's product (elementwise products, then a sum over each
    contiguous row), so a run gives the same numbers with or without it; resumed runs rely on that.
    """
    g, d = factors.sets, x.shape[-1]
    if b_rows is None and not few_rows(factors, x):
        return torch.bmm(x.reshape(g, -1, d), factors.b)  # (g, n, r): one GEMM per set
    # few rows (decoding): a broadcast multiply-sum beats a batch of tiny GEMVs ~3x on CPU
    rows = factors.b_rows if b_rows is None else b_rows
    return (x.reshape(g, -1, 1, d) * rows.unsqueeze(1)).sum(-1)  # (g, n, 1, in) · (g, 1, Σr, in) -> (g, n, Σr)


def negate_(xb: torch.Tensor, neg_from: int) -> torch.Tensor:
    """x B (g, n, ·) with rows ``neg_from``.. of each set negated in place (exact): the −E_j
    member of each mirrored pair."""
    if neg_from < xb.shape[1]:
        xb[:, neg_from:].neg_()
    return xb


def stack_rows(group: Sequence[LayerFactors]) -> torch.Tensor:
    """The B rows of layers that read one input, side by side: (g, Σr, in)."""
    return torch.cat([f.b_rows for f in group], dim=1)


def add_term(output: torch.Tensor, xb: torch.Tensor, factors: LayerFactors) -> torch.Tensor:
    """``output`` plus (x B) Aᵀ for each set's rows: in place when no gradient is needed (the
    layer's fresh output, no extra (rows, tokens, out) tensor), else a new tensor."""
    a = factors.a  # (g, r, out)
    if torch.is_grad_enabled():
        return output + torch.bmm(xb, a).view(output.shape)
    out = output.view(a.shape[0], -1, output.shape[-1])  # (g, n, out)
    if a.shape[1] == 1:
        out.addcmul_(xb, a)  # (g, n, 1) · (g, 1, out): an outer product; bmm with k=1 is slow on CPU
    else:
        out.baddbmm_(xb, a)
    return output


def lowrank_reference_(out: torch.Tensor, x: torch.Tensor, a: torch.Tensor, b: torch.Tensor, neg_from: int) -> None:
    """The operator ``esfit::lowrank_`` in torch ops, on any device: ``out`` (g·n…, dout) +=
    sign_j (x_j · b_s) a_s for the n rows j of each of the g factor sets s, sign_j = −1 from row
    ``neg_from`` of each set on. a (g, r, dout), b (g, r, din) are the factors as rows."""
    factors = LayerFactors(a, b.transpose(1, 2), b, paired=False)
    with torch.no_grad():
        add_term(out, negate_(project(factors, x), neg_from), factors)
