"""Reproducible low-rank population noise (EGGROLL, "Evolution Strategies at the Hyperscale").

Member i perturbs a weight W (out, in) by σ·E_i with E_i = A_j B_jᵀ / √r · s_i, where j is the
member's mirrored pair (members 2j and 2j+1 share A_j, B_j with signs +1 and −1) and A_j (out, r),
B_j (in, r) are standard normal. The entries of E_i then have unit variance whatever the rank.
A_j, B_j come from a seed derived from (run seed, generation, pair, layer name), so any process can
regenerate any member's factors, and nothing larger than the factors is ever stored: no (out, in)
matrix per member exists outside the naive reference in ``trainer.reference``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from trainer.targets import Target


def derive_seed(*parts: int | str) -> int:
    """A 63-bit seed from a tuple of ints and strings, stable across processes and machines
    (unlike ``hash()``, which Python salts per process)."""
    digest = hashlib.blake2b(repr(tuple(parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def member_layout(population_size: int, *, mirrored: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(pair index, sign) of each member: (P,) int64 and (P,) float32.

    Mirrored: member 2j is +E_j and member 2j+1 is −E_j. Otherwise member i is +E_i.
    """
    if population_size < 1 or (mirrored and population_size % 2):
        rule = ("even when mirrored (an even number ≥ 2: members come in ±E pairs); use an even number or "
                "mirrored = false") if mirrored else "≥ 1"
        raise ValueError(f"population_size={population_size} must be {rule}")
    idx = torch.arange(population_size)
    if mirrored:
        return idx // 2, 1.0 - 2.0 * (idx % 2).float()
    return idx, torch.ones(population_size)


def pair_factors(
    seed: int, generation: int, pair: int, layer: str, out_features: int, in_features: int, rank: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """A (out, r), B (in, r) of one pair and layer, fp32 on the CPU, from their derived seed.

    Drawn on the CPU so that every device and process regenerates the same numbers.
    """
    gen = torch.Generator().manual_seed(derive_seed(seed, generation, pair, layer))
    ab = torch.randn(out_features + in_features, rank, generator=gen)
    return ab[:out_features], ab[out_features:]


@dataclass
class Population:
    """One generation's noise: stacked per-pair factors for every target layer.

    ``factors[name] = (A, B)`` with A (n_pairs, out, r) and B (n_pairs, in, r), fp32.
    """

    seed: int
    generation: int
    sigma: float
    rank: int
    pair_index: torch.Tensor  # (P,) pair of each member
    sign: torch.Tensor  # (P,) +1 / −1
    factors: dict[str, tuple[torch.Tensor, torch.Tensor]]

    @property
    def size(self) -> int:
        return int(self.pair_index.numel())

    @property
    def scale(self) -> float:
        """σ/√r: the factor in front of A_j B_jᵀ in each member's perturbation."""
        return self.sigma / math.sqrt(self.rank)

    def member_factors(
        self, name: str, members: Sequence[int] | None = None, *, dtype=None, device=None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-member (A_i · s_i σ/√r, B_i) of one layer: (m, out, r) and (m, in, r).

        These are what the patched forward pass multiplies with: its extra term for member i's
        rows is (x B_i) (A_i s_i σ/√r)ᵀ.
        """
        a, b = self.factors[name]
        idx = torch.arange(self.size) if members is None else torch.as_tensor(list(members))
        coef = (self.sign[idx] * self.scale).view(-1, 1, 1)
        pairs = self.pair_index[idx]
        return (a[pairs] * coef).to(dtype=dtype, device=device), b[pairs].to(dtype=dtype, device=device)

    def dense_perturbation(self, name: str, member: int) -> torch.Tensor:
        """σ E_i (out, in) of one member, materialised. For the naive reference and tests only."""
        a, b = self.factors[name]
        j = int(self.pair_index[member])
        return (self.sign[member] * self.scale) * (a[j] @ b[j].T)

    def weighted_sum(self, name: str, weights: torch.Tensor, *, device=None) -> torch.Tensor:
        """Σ_i w_i E_i (out, in) in one matmul over the stacked factors; no per-member matrix.

        Members of a mirrored pair share factors, so their weights fold into one coefficient per
        pair first: c_j = Σ_{i in j} s_i w_i, and Σ_j c_j A_j B_jᵀ / √r = (A ⊙ c)_flat B_flatᵀ / √r.
        """
        a, b = self.factors[name]  # (n, out, r), (n, in, r)
        w = torch.as_tensor(weights, dtype=torch.float32)
        coef = torch.zeros(a.shape[0]).index_add_(0, self.pair_index, self.sign * w)
        a, b, coef = a.to(device), b.to(device), coef.to(device)
        n, out_f, r = a.shape
        a_flat = (a * coef.view(-1, 1, 1)).permute(1, 0, 2).reshape(out_f, n * r)  # (out, n·r)
        b_flat = b.permute(1, 0, 2).reshape(b.shape[1], n * r)  # (in, n·r)
        return (a_flat @ b_flat.T) / math.sqrt(r)


def sample_population(
    targets: Sequence[Target],
    *,
    seed: int,
    generation: int,
    population_size: int,
    rank: int,
    sigma: float,
    mirrored: bool = True,
) -> Population:
    """The noise of one generation for ``targets``, regenerated from (seed, generation)."""
    if rank < 1:
        raise ValueError(f"rank={rank} must be ≥ 1")
    if not sigma >= 0:
        raise ValueError(f"sigma={sigma} must be ≥ 0")
    pair_index, sign = member_layout(population_size, mirrored=mirrored)
    n_pairs = int(pair_index.max()) + 1
    factors = {}
    for t in targets:
        drawn = [
            pair_factors(seed, generation, j, t.name, t.out_features, t.in_features, rank)
            for j in range(n_pairs)
        ]
        factors[t.name] = (torch.stack([a for a, _ in drawn]), torch.stack([b for _, b in drawn]))
    return Population(seed, generation, float(sigma), rank, pair_index, sign, factors)


def sample_prompt_indices(n_prompts: int, per_generation: int | None, seed: int, generation: int) -> list[int]:
    """The prompts of one generation: ``per_generation`` of ``n_prompts``, sampled from a seed of
    (seed, generation), so every rank and a resumed run pick the same ones; all of them when
    ``per_generation`` is None/0 or not smaller than ``n_prompts``."""
    if not per_generation or per_generation >= n_prompts:
        return list(range(n_prompts))
    gen = torch.Generator().manual_seed(derive_seed(seed, generation, "prompts"))
    return sorted(torch.randperm(n_prompts, generator=gen)[:per_generation].tolist())
