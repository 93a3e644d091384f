"""The patched forward pass: every population member in one batch, KV cache intact.

Each target layer's ``forward`` is wrapped so that it adds the member's low-rank term to its output:

    y = x Wᵀ + b + σ/√r · s_i (x B_i) A_iᵀ      for the rows of x that belong to member i.

Rows are laid out member-major: with m active members of ``rows_per_member`` rows each, rows
[k·rows, (k+1)·rows) belong to the k-th active member. Each row keeps its own KV cache entries, and
the wrapper adds the same member's term at every decode step, so the cache holds exactly what a
dense model with W + σE_i would have cached: generation is exact, not approximate. The base layers
are never modified, so unpatching restores the original model bit for bit.

This module only wraps and dispatches; the term itself is :mod:`trainer.lowrank` (the factor
record and the torch ops) or the fused operator ``esfit::lowrank_`` (:mod:`trainer.kernel`), which
CPU layers in float32 and bfloat16 use outside autograd (every rollout). Elsewhere (CUDA, fp16, a
pass with gradients, rank above the kernel's limit, no C++ compiler) the torch ops run, and two
things keep them cheap:

- when the active members come in whole mirrored pairs (+E_j at position 2k, −E_j at 2k+1, as
  ``trainer.rollout`` lays out a population), both members' rows use the pair's one copy of A_j and
  B_j and the sign goes on the small (rows, r) product x B_j: half the factor bytes;
- layers of one ``input_group`` (q/k/v, gate/up; named when the targets are resolved) form x B
  together in one product while decoding, once the wrapper has seen that they got the same tensor.
"""

from __future__ import annotations

import types
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from trainer import kernel, lowrank
from trainer.lowrank import LayerFactors
from trainer.noise import Population
from trainer.targets import Target

# the module attribute that holds (patch, the forward it wraps or None for the class's own)
_PATCH_ATTR = "_esfit_population_patch"


def _patched_forward(module: nn.Module, *args, **kwargs):
    """The ``forward`` of a patched layer: its own output plus the active members' terms."""
    patch, inner = module.__dict__[_PATCH_ATTR]
    output = inner(*args, **kwargs) if inner is not None else type(module).forward(module, *args, **kwargs)
    return patch._perturb(module, args[0] if args else next(iter(kwargs.values())), output)


class _Layer:
    """What the wrapper needs of one layer for the current population (slots: read every step)."""

    __slots__ = ("factors", "fused", "dtype", "group", "stacked", "columns")

    def __init__(self, factors: LayerFactors, fused: bool, dtype: torch.dtype):
        self.factors, self.fused, self.dtype = factors, fused, dtype
        self.group: tuple[nn.Module, ...] = ()  # the layers of its input group, itself included
        self.stacked: torch.Tensor | None = None  # (g, Σr, in): the group's B rows side by side
        self.columns = slice(None)  # its columns of the group's stacked x B


class PopulationPatch:
    """Wraps the ``forward`` of ``targets`` to perturb them per member; a no-op while no population
    is set.

    Use as a context manager (``with PopulationPatch(targets) as patch:``) or call
    ``attach()``/``detach()``. ``set_population(pop, members, rows_per_member=...)`` chooses the
    members whose rows make up the batch; ``clear()`` returns to the unperturbed centre model.
    """

    def __init__(self, targets: Sequence[Target]):
        self.targets = list(targets)
        self._attached = False
        self._layers: dict[nn.Module, _Layer] = {}
        self.active_members: int = 0
        self._rows_per_member: int | None = None
        self._memo: tuple | None = None  # (x, x's version, its input group, the group's x B (g, n, Σr))

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
    def set_population(self, population: Population, members: Sequence[int] | None = None, *,
                       rows_per_member: int | None = None) -> None:
        """Perturb the batch with ``members`` of ``population`` (all of them by default), in order,
        ``rows_per_member`` rows each: every patched pass then checks that the batch has exactly
        len(members) × rows_per_member rows. None accepts any whole multiple of len(members).

        The factors are cast to each layer's dtype and device once here, not at every step.
        """
        members = list(range(population.size)) if members is None else list(members)
        if not members:
            raise ValueError("members is empty: pass at least one member index, or call clear()")
        bad = [i for i in members if not 0 <= i < population.size]
        if bad:
            raise ValueError(f"members {bad} are outside the population of {population.size}")
        if rows_per_member is not None and rows_per_member < 1:
            raise ValueError(f"rows_per_member={rows_per_member} must be an integer ≥ 1 (or None)")
        paired = lowrank.in_mirrored_pairs(population, members)
        # paired: one factor set per pair, the +E_j member's (the −E_j member's x B is negated);
        # otherwise one per member, its sign folded into A
        owners = members[0::2] if paired else members
        layers, groups = {}, {}
        for t in self.targets:
            w = t.weight
            factors = lowrank.layer_factors(population, t.name, owners, paired=paired, dtype=w.dtype, device=w.device)
            fused = w.device.type == "cpu" and factors.rank <= kernel.MAX_RANK and kernel.fused_op(w.dtype) is not None
            layers[t.module] = _Layer(factors, fused, w.dtype)
            if t.input_group is not None:
                groups.setdefault(t.input_group, []).append(t.module)
        for modules in groups.values():
            group, stacked, r = tuple(modules), lowrank.stack_rows([layers[m].factors for m in modules]), population.rank
            for k, m in enumerate(group):
                layers[m].group, layers[m].stacked, layers[m].columns = group, stacked, slice(k * r, (k + 1) * r)
        self.clear()
        self._layers = layers
        self.active_members = len(members)
        self._rows_per_member = rows_per_member

    @property
    def fused_layers(self) -> int:
        """How many patched layers run the fused operator (:mod:`trainer.kernel`) for the current
        population when no gradient is needed; the others use torch ops."""
        return sum(layer.fused for layer in self._layers.values())

    def clear(self) -> None:
        """Back to the centre model: the layers stay wrapped but add nothing."""
        self._layers = {}
        self._memo = None
        self.active_members = 0
        self._rows_per_member = None

    @contextmanager
    def members(self, population: Population, members: Sequence[int] | None = None, *,
                rows_per_member: int | None = None) -> Iterator[None]:
        """``set_population`` for the duration of a ``with`` block."""
        self.set_population(population, members, rows_per_member=rows_per_member)
        try:
            yield
        finally:
            self.clear()

    # -- the perturbation --------------------------------------------------------------------
    def _perturb(self, module: nn.Module, x: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
        layer = self._layers.get(module)
        if layer is None:
            return output
        self._check_batch(x.shape[0])
        f = layer.factors
        if (layer.fused and x.dtype is layer.dtype and output.dtype is layer.dtype and not torch.is_grad_enabled()
                and x.is_contiguous() and output.is_contiguous()):
            n = x.numel() // (f.sets * x.shape[-1])  # rows of one factor set × tokens
            kernel.lowrank_op(output, x, f.a, f.b_rows, f.neg_from(n))  # checks out's rows against x's
            return output
        xb = self._project(layer, x)  # (g, n, r), signed
        return lowrank.add_term(output, xb, f)

    def _check_batch(self, rows: int) -> None:
        members, per = self.active_members, self._rows_per_member
        if per is not None and rows != members * per:
            raise ValueError(
                f"the batch has {rows} rows, not the {members} active population members × rows_per_member={per} "
                f"= {members * per} that set_population was given: pass the rows_per_member of this batch"
            )
        if rows % members:
            raise ValueError(
                f"the batch has {rows} rows, not a whole multiple of the {members} active population members: "
                "lay the batch out as members × rows-per-member (see trainer.rollout)"
            )

    def _project(self, layer: _Layer, x: torch.Tensor) -> torch.Tensor:
        """x B of ``layer`` (g, n, r), signed. While decoding, a layer of an input group forms
        the product for its whole group, and the others take their columns when they are handed
        the very same tensor (same object, unchanged since: its version counter)."""
        f = layer.factors
        try:
            version = x._version
        except RuntimeError:  # an inference-mode tensor has no version counter: no sharing
            version = None
        if layer.stacked is None or version is None or not lowrank.few_rows(f, x):
            return lowrank.negate_(lowrank.project(f, x), f.neg_from(x.numel() // (f.sets * x.shape[-1])))
        memo = self._memo
        if memo is None or memo[0] is not x or memo[1] != version or memo[2] is not layer.group:
            xb = lowrank.project(f, x, layer.stacked)  # (g, n, Σr) for the whole group
            memo = self._memo = (x, version, layer.group, lowrank.negate_(xb, f.neg_from(xb.shape[1])))
        return memo[3][..., layer.columns]
