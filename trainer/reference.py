"""The naive reference ES: each member's weights W + σE_i materialised densely, one at a time.

For parity tests and benchmarks only: it is what the patched forward pass must equal, and what it
must beat. Not for users: it costs a dense (out, in) matrix per layer and member, and one
``generate`` call per member.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from trainer.noise import Population
from trainer.rollout import Prompt, RolloutConfig, Rollouts, generate_rollouts
from trainer.targets import Target


@contextmanager
@torch.no_grad()
def dense_member(targets: Sequence[Target], population: Population, member: int) -> Iterator[None]:
    """Inside the block the target weights are W + σE_i of ``member``; restored exactly after."""
    saved = [t.weight.detach().clone() for t in targets]
    try:
        _add_dense(targets, population, member)
        yield
    finally:
        for t, w in zip(targets, saved):
            t.weight.copy_(w)


def dense_member_copy(model: nn.Module, targets: Sequence[Target], population: Population, member: int) -> nn.Module:
    """A deep copy of ``model`` whose target weights are W + σE_i of ``member``."""
    clone = copy.deepcopy(model)
    clone_targets = [Target(t.name, clone.get_submodule(t.name), t.out_features, t.in_features) for t in targets]
    _add_dense(clone_targets, population, member)
    return clone


@torch.no_grad()
def _add_dense(targets: Sequence[Target], population: Population, member: int) -> None:
    for t in targets:
        e = population.dense_perturbation(t.name, member).to(t.weight.device)
        t.weight.add_((e.T if t.transposed else e).to(t.weight.dtype))


def naive_rollouts(
    model: nn.Module,
    tokenizer,
    prompts: Sequence[Prompt],
    config: RolloutConfig,
    *,
    targets: Sequence[Target],
    population: Population,
    seed: int = 0,
    generation: int = 0,
    members: Sequence[int] | None = None,
) -> Rollouts:
    """The rollouts of ``members`` (all by default), one member at a time on dense perturbed
    weights; same sampling seeds as ``generate_rollouts``, so the texts match the patched
    population's."""
    texts, tokens, rows = [], 0, 0
    for i in range(population.size) if members is None else members:
        with dense_member(targets, population, i):
            r = generate_rollouts(model, tokenizer, prompts, config, seed=seed, generation=generation)
        texts.append(r.texts[0])
        tokens += r.new_tokens
        rows += r.rows
    return Rollouts(texts, tokens, rows)


def naive_weighted_sum(population: Population, name: str, weights: Sequence[float]) -> torch.Tensor:
    """Σ_i w_i E_i (out, in) summed one dense E_i at a time (``dense_perturbation`` is σE_i)."""
    total = None
    for i, w in enumerate(weights):
        term = float(w) * population.dense_perturbation(name, i) / population.sigma
        total = term if total is None else total + term
    return total
