"""The patched forward pass: every population member in one batch, KV cache intact.

Each target layer's ``forward`` is wrapped so that it adds the member's low-rank term to its output:

    y = x Wᵀ + b + σ/√r · s_i (x B_i) A_iᵀ      for the rows of x that belong to member i.

Rows are laid out member-major: with m active members and a batch of N rows, rows
[k·N/m, (k+1)·N/m) belong to the k-th active member. Each row keeps its own KV cache entries, and
the wrapper adds the same member's term at every decode step, so the cache holds exactly what a
dense model with W + σE_i would have cached: generation is exact, not approximate. The base layers
are never modified, so unpatching restores the original model bit for bit.

The extra arithmetic is small (0.3% of SmolLM2-135M's at rank 1); what costs time is passes over
the activations (``benchmarks/rollout_throughput.py``). On the CPU, float32 and bfloat16 layers outside autograd
(all rollouts) use a fused C kernel (:mod:`trainer.kernel`) that forms each row's x B and updates
its output row in one pass, on torch's threads. Elsewhere (fp16, CUDA, a pass with gradients, or
no C compiler) the term is a few torch ops per layer, and three things keep those cheap:

- when the active members come in whole mirrored pairs (+E_j at position 2k, −E_j at 2k+1, as
  ``trainer.rollout`` lays out a population), both members' rows use the pair's one copy of A_j and
  B_j and the sign goes on the small (rows, r) product x B_j: half the factor bytes;
- layers that read the same input tensor (q/k/v projections, gate/up projections) are learned on
  the first forward pass, and later passes compute x B for all of them in one stacked product;
- a wrapped ``forward`` instead of a forward hook, whose dispatch costs more than the arithmetic.
"""

from __future__ import annotations

import types
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from trainer.kernel import MAX_RANK, lowrank_kernel
from trainer.noise import Population
from trainer.targets import Target

# up to this many (tokens per factor set × stacked rank) x B is a broadcast multiply-sum, not bmm
BROADCAST_MAX = 64
# the module attribute that holds (patch, the forward it wraps or None for the class's own)
_PATCH_ATTR = "_esfit_population_patch"

Group = tuple[nn.Module, ...]  # target layers that receive the same input tensor


def _patched_forward(module: nn.Module, *args, **kwargs):
    """The ``forward`` of a patched layer: its own output plus the active members' terms."""
    patch, inner = module.__dict__[_PATCH_ATTR]
    output = inner(*args, **kwargs) if inner is not None else type(module).forward(module, *args, **kwargs)
    return patch._perturb(module, args[0] if args else next(iter(kwargs.values())), output)


class PopulationPatch:
    """Wraps the ``forward`` of ``targets`` to perturb them per member; a no-op while no population
    is set.

    Use as a context manager (``with PopulationPatch(targets) as patch:``) or call
    ``attach()``/``detach()``. ``set_population(pop, members)`` chooses the members whose rows make
    up the batch; ``clear()`` returns to the unperturbed centre model.
    """

    def __init__(self, targets: Sequence[Target]):
        self.targets = list(targets)
        self._attached = False
        # per module: A (g, r, out) with σ/√r (and the sign, per member) folded in, B (g, in, r)
        # and B as rows (g, 1, r, in), for g factor sets (members, or mirrored pairs)
        self._factors: dict[nn.Module, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        # per module, where the fused CPU kernel applies: (kernel, dtype, pointers to the A and B rows
        # of _factors, g, r, in, out)
        self._fused: dict[nn.Module, tuple] = {}
        self._paired = False
        self.active_members: int = 0
        self._group_of: dict[nn.Module, Group] = {}  # learned: layers fed the same input tensor
        self._stacked: dict[Group, tuple] = {}  # per group: B of all its layers side by side
        self._memo: tuple | None = None  # (x, x's version, {layer: x B}, group) of the last input
        self._signs: dict[tuple, torch.Tensor] = {}

    # -- lifecycle -------------------------------------------------------------------------
    def attach(self) -> PopulationPatch:
        if self._attached:
            return self
        for t in self.targets:
            if _PATCH_ATTR in t.module.__dict__:
                raise RuntimeError(f"layer {t.name!r} is already patched by another PopulationPatch: detach that one first")
        for t in self.targets:
            inner = t.module.__dict__.get("forward")  # a forward set on the instance (e.g. by accelerate)
            t.module.__dict__[_PATCH_ATTR] = (self, inner)
            t.module.forward = types.MethodType(_patched_forward, t.module)
        self._attached = True
        return self

    def detach(self) -> None:
        if self._attached:
            for t in self.targets:
                _, inner = t.module.__dict__.pop(_PATCH_ATTR)
                if inner is None:
                    del t.module.forward
                else:
                    t.module.forward = inner
            self._attached = False
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
        paired = _in_mirrored_pairs(population, members)
        # paired: one factor set per pair, the +E_j member's (the −E_j member's x B is negated);
        # otherwise one per member, its sign folded into A
        owners = members[0::2] if paired else members
        factors, fused = {}, {}
        for t in self.targets:
            w = t.weight
            a, b = population.member_factors(t.name, owners, dtype=w.dtype, device=w.device)
            a_t, b_rows = a.transpose(1, 2).contiguous(), b.transpose(1, 2).unsqueeze(1).contiguous()
            factors[t.module] = (a_t, b, b_rows)
            kernel = lowrank_kernel(w.dtype) if w.device.type == "cpu" and b.shape[-1] <= MAX_RANK else None
            if kernel is not None:  # A (g, r, out) and B rows (g, r, in), contiguous
                fused[t.module] = (kernel, w.dtype, a_t.data_ptr(), b_rows.data_ptr(), b.shape[0], b.shape[-1],
                                   b.shape[1], a_t.shape[-1])
        self.clear()
        self._factors = factors
        self._fused = fused
        self._paired = paired
        self.active_members = len(members)

    @property
    def fused_layers(self) -> int:
        """How many patched layers run the fused CPU kernel (:mod:`trainer.kernel`) for the current
        population when no gradient is needed; the others use torch ops."""
        return len(self._fused)

    def clear(self) -> None:
        """Back to the centre model: the layers stay wrapped but add nothing."""
        self._factors = {}
        self._fused = {}
        self._stacked = {}
        self._memo = None
        self.active_members = 0

    @contextmanager
    def members(self, population: Population, members: Sequence[int] | None = None) -> Iterator[None]:
        """``set_population`` for the duration of a ``with`` block."""
        self.set_population(population, members)
        try:
            yield
        finally:
            self.clear()

    # -- the perturbation --------------------------------------------------------------------
    def _perturb(self, module: nn.Module, x: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
        factors = self._factors.get(module)
        if factors is None:
            return output
        if x.shape[0] % self.active_members:
            raise ValueError(
                f"the batch has {x.shape[0]} rows, not a whole multiple of the {self.active_members} active "
                "population members: lay the batch out as members × rows-per-member (see trainer.rollout)"
            )
        fused = self._fused.get(module)
        if (fused is not None and x.dtype is fused[1] and output.dtype is fused[1] and not torch.is_grad_enabled()
                and x.is_cpu and x.is_contiguous() and output.is_contiguous()
                and output.numel() * fused[6] == x.numel() * fused[7]):  # the kernel writes n·g·out values
            kernel, _, a_ptr, b_ptr, g, r, d_in, d_out = fused
            n = x.numel() // (g * d_in)  # rows of one factor set × tokens
            kernel(output.data_ptr(), x.data_ptr(), a_ptr, b_ptr, g, n, d_in, d_out, r, n // 2 if self._paired else n,
                   torch.get_num_threads())
            return output
        a_t = factors[0]  # (g, r, out)
        xb = self._project(module, x)  # (g, n, r), signed
        if torch.is_grad_enabled():
            return output + torch.bmm(xb, a_t).view(output.shape)
        # inference: accumulate into the layer's fresh output, no extra (rows, tokens, out) tensor
        out = output.view(a_t.shape[0], -1, output.shape[-1])  # (g, n, out)
        if a_t.shape[1] == 1:
            out.addcmul_(xb, a_t)  # (g, n, 1) · (g, 1, out): an outer product; bmm with k=1 is slow on CPU
        else:
            out.baddbmm_(xb, a_t)
        return output

    def _project(self, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """x B of ``module`` (g, n, r), with the pair signs applied; computed together with the
        layers known to share the input ``x``, and looked up when one of them computed it."""
        try:
            version = x._version
        except RuntimeError:  # an inference-mode tensor has no version counter: no sharing
            return self._products(module, (module,), x)[module]
        memo = self._memo
        if memo is not None and memo[0] is x and memo[1] == version:
            xb = memo[2].get(module)
            if xb is None:  # a layer fed the same input as memo's group: share from now on
                xb = self._products(module, (module,), x)[module]
                memo[2][module] = xb
                self._learn(memo[3], module)
            return xb
        group = self._group_of.get(module, (module,))
        products = self._products(module, group, x)
        self._memo = (x, version, products, group)
        return products[module]

    def _products(self, module: nn.Module, group: Group, x: torch.Tensor) -> dict[nn.Module, torch.Tensor]:
        """{layer: x B (g, n, r)} for every layer of ``group`` (``module``'s group, each with the
        same r) in one product when decoding, else for ``module`` alone.

        Stacking changes no bit of any layer's product (elementwise products, then a sum over
        each contiguous row), so a run gives the same numbers whether or not the groups are
        learned yet; that keeps a resumed run bit-identical to an uninterrupted one.
        """
        _, b, b_rows = self._factors[module]
        g, r, d = b.shape[0], b.shape[-1], x.shape[-1]
        n = x.numel() // (g * d)  # rows of one factor set (member or pair) × tokens
        if n * r > BROADCAST_MAX:  # prefill: one bmm per layer
            group = (module,)
            xb = torch.bmm(x.reshape(g, n, d), b)  # (g, n, r)
        else:
            # decoding (n small): a broadcast multiply-sum beats a batch of tiny GEMVs ~3x on CPU
            if len(group) > 1:
                b_rows, slices = self._stack(group)  # (g, 1, Σr, in)
            xb = (x.reshape(g, n, 1, d) * b_rows).sum(-1)  # (g, n, 1, in) · (g, 1, Σr, in) -> (g, n, Σr)
        if self._paired:
            xb.mul_(self._pair_sign(n, xb))  # the −E_j member of each pair: rows n/2.. (exact)
        if len(group) == 1:
            return {module: xb}
        return {m: xb[..., s] for m, s in zip(group, slices)}

    def _pair_sign(self, n: int, like: torch.Tensor) -> torch.Tensor:
        """(n, 1): +1 for the first member's n/2 rows of a pair, −1 for the second's."""
        key = (n, like.dtype, like.device)
        sign = self._signs.get(key)
        if sign is None:
            sign = torch.ones(n, 1, dtype=like.dtype, device=like.device)
            sign[n // 2 :] = -1
            self._signs[key] = sign
        return sign

    def _stack(self, group: Group) -> tuple[torch.Tensor, list[slice]]:
        """The B rows of the group's layers side by side (g, 1, Σr, in), and each layer's columns;
        built once per population."""
        stacked = self._stacked.get(group)
        if stacked is None:
            rows = [self._factors[m][2] for m in group]  # (g, 1, r, in) each, one population: one r
            r = rows[0].shape[2]
            slices = [slice(k * r, (k + 1) * r) for k in range(len(group))]
            stacked = self._stacked[group] = (torch.cat(rows, dim=2), slices)
        return stacked

    def _learn(self, group: Group, module: nn.Module) -> None:
        """Record that ``module`` is fed the same input as ``group`` (e.g. k_proj after q_proj)."""
        group = self._group_of.get(group[0], group)  # it may have grown since the memo was made
        merged = tuple(dict.fromkeys(group + self._group_of.get(module, (module,))))
        for m in merged:
            self._group_of[m] = merged


def _in_mirrored_pairs(population: Population, members: Sequence[int]) -> bool:
    """True when ``members`` is (+E_j, −E_j) couples back to back (positions 2k, 2k+1): then the
    rows of both members of a couple can share one factor set."""
    if len(members) % 2:
        return False
    idx = torch.as_tensor(list(members))
    pair, sign = population.pair_index[idx], population.sign[idx]
    return torch.equal(pair[0::2], pair[1::2]) and bool((sign[0::2] > 0).all()) and bool((sign[1::2] < 0).all())
