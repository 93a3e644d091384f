"""The patched forward pass: every population member in one batch, KV cache intact.

A forward hook on each target layer adds the member's low-rank term to the layer's output:

    y = x Wᵀ + b + σ/√r · s_i (x B_i) A_iᵀ      for the rows of x that belong to member i.

Rows are laid out member-major: with m active members and a batch of N rows, rows
[k·N/m, (k+1)·N/m) belong to the k-th active member. When the active members come in whole
mirrored pairs (+E_j at position 2k, −E_j at 2k+1, as ``trainer.rollout`` lays out a population),
both members' rows are multiplied with the pair's one copy of A_j and B_j and the sign is applied to
the small (rows, r) product: the hooks then read half the factor bytes, which is most of their cost
at decode time. Each row keeps its own KV cache entries, and
the hook adds the same member's term at every decode step, so the cache holds exactly what a dense
model with W + σE_i would have cached: generation is exact, not approximate. The base layers are
never modified, so removing the hooks restores the original model bit for bit.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from trainer.noise import Population
from trainer.targets import Target

# up to this many (tokens per member × rank) the hook multiplies by B with a broadcast, not bmm
BROADCAST_MAX = 64


class PopulationPatch:
    """Forward hooks that perturb ``targets`` per member; a no-op while no population is set.

    Use as a context manager (``with PopulationPatch(model, targets) as patch:``) or call
    ``attach()``/``detach()``. ``set_population(pop, members)`` chooses the members whose rows make
    up the batch; ``clear()`` returns to the unperturbed centre model.
    """

    def __init__(self, targets: Sequence[Target]):
        self.targets = list(targets)
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._factors: dict[nn.Module, tuple[torch.Tensor, ...]] = {}
        self.active_members: int = 0
        self._paired = False

    # -- lifecycle -------------------------------------------------------------------------
    def attach(self) -> PopulationPatch:
        if not self._handles:
            self._handles = [t.module.register_forward_hook(self._hook) for t in self.targets]
        return self

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self.clear()

    def __enter__(self) -> PopulationPatch:
        return self.attach()

    def __exit__(self, *exc) -> None:
        self.detach()

    # -- which members the batch holds -------------------------------------------------------
    def set_population(self, population: Population, members: Sequence[int] | None = None) -> None:
        """Perturb the batch with ``members`` of ``population`` (all of them by default), in order.

        The factors are cast to each layer's dtype and device once here, not at every step.
        """
        members = list(range(population.size)) if members is None else list(members)
        if not members:
            raise ValueError("members is empty: pass at least one member index, or call clear()")
        bad = [i for i in members if not 0 <= i < population.size]
        if bad:
            raise ValueError(f"members {bad} are outside the population of {population.size}")
        pairs = _aligned_pairs(population, members)
        factors = {}
        for t in self.targets:
            w = t.weight
            if pairs is None:  # one factor set per member, its sign folded into A
                a, b = population.member_factors(t.name, members, dtype=w.dtype, device=w.device)
            else:  # one factor set per mirrored pair; the hook negates the second member's x B
                a, b = population.pair_factors_of(t.name, pairs, dtype=w.dtype, device=w.device)
            # A as (g, r, out); B as (g, in, r) and as rows (g, 1, r, in) for the hook's broadcast path
            factors[t.module] = (a.transpose(1, 2).contiguous(), b, b.transpose(1, 2).unsqueeze(1).contiguous())
        self._factors = factors
        self._paired = pairs is not None
        self.active_members = len(members)

    def clear(self) -> None:
        """Back to the centre model: the hooks stay but add nothing."""
        self._factors = {}
        self.active_members = 0

    @contextmanager
    def members(self, population: Population, members: Sequence[int] | None = None) -> Iterator[None]:
        """``set_population`` for the duration of a ``with`` block."""
        self.set_population(population, members)
        try:
            yield
        finally:
            self.clear()

    # -- the hook ----------------------------------------------------------------------------
    def _hook(self, module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor | None:
        factors = self._factors.get(module)
        if factors is None:
            return None
        # g factor sets (members, or mirrored pairs): A (g, r, out) with σ/√r (and the sign, per
        # member) folded in, B (g, in, r), B as rows (g, 1, r, in)
        a_t, b, b_rows = factors
        x = args[0]
        rows = x.shape[0]
        if rows % self.active_members:
            raise ValueError(
                f"the batch has {rows} rows, not a whole multiple of the {self.active_members} active population "
                "members: lay the batch out as members × rows-per-member (see trainer.rollout)"
            )
        g, r = a_t.shape[0], a_t.shape[1]
        # member-major rows, so each factor set's rows are contiguous: (rows, ..., in) -> (g, n, in)
        xg = x.reshape(g, -1, x.shape[-1])
        if xg.shape[1] * r <= BROADCAST_MAX:
            # decoding (n small): a broadcast multiply-sum beats a batch of tiny GEMVs ~3x on CPU
            xb = (xg.unsqueeze(2) * b_rows).sum(-1)  # (g, n, 1, in) · (g, 1, r, in) -> (g, n, r)
        else:
            xb = torch.bmm(xg, b)  # (g, n, r)
        if self._paired:
            xb.view(g, 2, -1, r)[:, 1].neg_()  # the −E_j member of each pair (negation is exact)
        if torch.is_grad_enabled():
            return output + torch.bmm(xb, a_t).view(output.shape)
        # inference: accumulate into the layer's fresh output, no extra (rows, tokens, out) tensor
        out = output.view(g, -1, output.shape[-1])  # (g, n, out)
        if r == 1:
            out.addcmul_(xb, a_t)  # (g, n, 1) · (g, 1, out): an outer product; bmm with k=1 is slow on CPU
        else:
            out.baddbmm_(xb, a_t)
        return output


def _aligned_pairs(population: Population, members: Sequence[int]) -> torch.Tensor | None:
    """The pair index of each (+E_j, −E_j) couple when ``members`` is such couples back to back
    (positions 2k, 2k+1), else None: then the rows of both members can share one factor set."""
    if len(members) % 2:
        return None
    idx = torch.as_tensor(list(members))
    pair, sign = population.pair_index[idx], population.sign[idx]
    if torch.equal(pair[0::2], pair[1::2]) and bool((sign[0::2] > 0).all()) and bool((sign[1::2] < 0).all()):
        return pair[0::2]
    return None
