"""Registries of the ES update's collaborators: optimizers and step-size schedules.

Each registry is a dict and a ``register`` decorator; configuration validates names against the dict,
so a newly registered optimizer or schedule can be chosen from TOML and the command line with no other
change (evosax/optax style).

- An optimizer factory ``fn(params, config) -> torch.optim.Optimizer`` builds the optimizer of one
  layer's fp32 master weight from an :class:`~trainer.es.ESConfig`.
- A schedule ``fn(progress) -> float`` maps the fraction of the schedule done (0 at the first
  generation, 1 at ``schedule_generations`` and after) to a factor between 1 and the final fraction
  given in the config: ``factor = final + (1 - final) · fn(progress)`` with ``fn(0) = 1``, ``fn(1) = 0``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

__all__ = ["OPTIMIZERS", "SCHEDULES", "register_optimizer", "register_schedule", "schedule_factor"]

OptimizerFactory = Callable[[list[torch.Tensor], object], torch.optim.Optimizer]

OPTIMIZERS: dict[str, OptimizerFactory] = {}
SCHEDULES: dict[str, Callable[[float], float]] = {}


def register_optimizer(name: str):
    """Register an optimizer factory ``fn(params, config)`` under ``name`` (a decorator)."""

    def deco(fn: OptimizerFactory) -> OptimizerFactory:
        if name in OPTIMIZERS:
            raise ValueError(f"optimizer {name!r} is already registered; pick another name")
        OPTIMIZERS[name] = fn
        return fn

    return deco


def register_schedule(name: str):
    """Register a schedule shape ``fn(progress in [0, 1]) -> [0, 1]`` with fn(0)=1, fn(1)=0."""

    def deco(fn: Callable[[float], float]) -> Callable[[float], float]:
        if name in SCHEDULES:
            raise ValueError(f"schedule {name!r} is already registered; pick another name")
        SCHEDULES[name] = fn
        return fn

    return deco


@register_optimizer("sgd")
def _sgd(params, config) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=config.learning_rate, momentum=config.momentum, weight_decay=config.weight_decay)


@register_optimizer("adam")
def _adam(params, config) -> torch.optim.Optimizer:
    # decoupled weight decay (AdamW), so weight_decay means the same shrinkage as with SGD
    return torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)


@register_schedule("constant")
def _constant(progress: float) -> float:
    return 1.0


@register_schedule("linear")
def _linear(progress: float) -> float:
    return 1.0 - progress


@register_schedule("cosine")
def _cosine(progress: float) -> float:
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def schedule_factor(name: str, generation: int, horizon: int, final: float) -> float:
    """The multiplier of generation ``generation``: 1 at the start, ``final`` from ``horizon`` on
    (always 1 when ``horizon`` is 0, the schedule's off switch)."""
    if horizon <= 0:
        return 1.0
    progress = min(max(generation / horizon, 0.0), 1.0)
    return final + (1.0 - final) * SCHEDULES[name](progress)
