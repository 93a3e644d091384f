"""The ES core with an ask/tell interface (EGGROLL, "Evolution Strategies at the Hyperscale").

``ask()`` draws the generation's low-rank noise; the caller rolls the population out through
``es.patch`` and scores it; ``tell(fitness)`` shapes the fitness, forms the gradient estimate

    ĝ_W = 1/(P σ) · Σ_i f̃_i E_i,        E_i = s_i A_j B_jᵀ / √r

per layer in one matmul over the stacked factors (``Population.weighted_sum``), and hands −ĝ to a
torch optimizer (SGD by default, Adam optional, with optional weight decay) that steps fp32 master
weights; a bf16/fp16 model gets a cast copy of the masters after every step.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from trainer.noise import Population, member_layout, sample_population
from trainer.patch import PopulationPatch
from trainer.shaping import fitness_matrix, get_shaper
from trainer.targets import ALL_LINEAR, TargetSpec, resolve_targets

OPTIMIZERS = ("sgd", "adam")


@dataclass(frozen=True)
class ESConfig:
    """ES settings, validated on construction.

    ``sigma`` is the noise scale per weight entry (each E_i has unit-variance entries);
    ``learning_rate`` multiplies the gradient estimate above. ``target_modules`` takes PEFT-style
    names, a regex, or "all-linear" (every linear layer but the output head).
    """

    population_size: int = 32
    rank: int = 1
    sigma: float = 1e-3
    learning_rate: float = 1e-3
    optimizer: str = "sgd"
    momentum: float = 0.0
    weight_decay: float = 0.0
    shaping: str = "zscore"
    mirrored: bool = True
    target_modules: TargetSpec = ALL_LINEAR
    seed: int = 0

    def __post_init__(self) -> None:
        member_layout(self.population_size, mirrored=self.mirrored)  # raises on a bad size
        checks = [
            (self.rank >= 1, "rank", "an integer ≥ 1"),
            (self.sigma > 0, "sigma", "> 0 (the noise scale; typical 1e-3 to 3e-2)"),
            (self.learning_rate > 0, "learning_rate", "> 0"),
            (self.optimizer in OPTIMIZERS, "optimizer", f"one of {OPTIMIZERS}"),
            (0 <= self.momentum < 1, "momentum", "in [0, 1)"),
            (self.weight_decay >= 0, "weight_decay", "≥ 0"),
        ]
        for ok, name, rule in checks:
            if not ok:
                raise ValueError(f"{name}={getattr(self, name)!r} must be {rule}")
        get_shaper(self.shaping)  # raises, listing the known names
        if not isinstance(self.target_modules, str):
            object.__setattr__(self, "target_modules", tuple(self.target_modules))


class EvolutionStrategy:
    """Low-rank ES on a model's target layers: ``ask()`` → roll out → ``tell(fitness)``."""

    def __init__(self, model: nn.Module, config: ESConfig | None = None):
        self.model = model
        self.config = config or ESConfig()
        self.targets = resolve_targets(model, self.config.target_modules)
        self.patch = PopulationPatch(self.targets)
        self.generation = 0
        self._population: Population | None = None
        # fp32 master copy of each target weight; an fp32 model's own weight is its master
        self.masters: dict[str, torch.Tensor] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        for t in self.targets:
            w = t.weight
            master = w if w.dtype == torch.float32 else torch.nn.Parameter(w.detach().float().clone())
            self.masters[t.name] = master
            # one optimizer per layer, so only one layer's gradient exists at a time
            self.optimizers[t.name] = self._make_optimizer(master)

    def _make_optimizer(self, master: torch.Tensor) -> torch.optim.Optimizer:
        c = self.config
        if c.optimizer == "adam":
            return torch.optim.AdamW([master], lr=c.learning_rate, weight_decay=c.weight_decay)
        return torch.optim.SGD([master], lr=c.learning_rate, momentum=c.momentum, weight_decay=c.weight_decay)

    # -- ask ---------------------------------------------------------------------------------
    def ask(self) -> Population:
        """This generation's noise (regenerated, not stored, if asked again before ``tell``)."""
        c = self.config
        if self._population is None or self._population.generation != self.generation:
            self._population = sample_population(
                self.targets, seed=c.seed, generation=self.generation, population_size=c.population_size,
                rank=c.rank, sigma=c.sigma, mirrored=c.mirrored,
            )
        return self._population

    # -- tell --------------------------------------------------------------------------------
    def gradient_weights(self, fitness) -> torch.Tensor:
        """(P,) coefficients w_i = f̃_i / (P σ) of the gradient estimate Σ_i w_i E_i."""
        c = self.config
        shaped = get_shaper(c.shaping)(fitness, population_size=c.population_size)
        return shaped / (c.population_size * c.sigma)

    @torch.no_grad()
    def tell(self, fitness) -> dict[str, float]:
        """Update the centre weights from one fitness per member ((P,) or (P, groups)), in member
        order, and start the next generation. Returns the generation's metrics."""
        population = self.ask()
        weights = self.gradient_weights(fitness)
        sq_update = 0.0
        for t in self.targets:
            master = self.masters[t.name]
            grad = population.weighted_sum(t.name, weights, device=master.device)  # (out, in)
            master.grad = -(grad.T if t.transposed else grad)  # optimizers minimise; ES ascends
            before = master.detach().clone()
            self.optimizers[t.name].step()
            master.grad = None
            sq_update += float((master - before).float().pow(2).sum())
            if master is not t.weight:
                t.weight.copy_(master)
        raw = fitness_matrix(fitness, warn=False).mean(1)
        raw = raw[torch.isfinite(raw)]
        self.generation += 1
        self._population = None
        return {
            "generation": population.generation,
            "fitness_mean": float(raw.mean()) if raw.numel() else math.nan,
            "fitness_max": float(raw.max()) if raw.numel() else math.nan,
            "fitness_std": float(raw.std(unbiased=False)) if raw.numel() else math.nan,
            "update_norm": math.sqrt(sq_update),
            "sigma": self.config.sigma,
        }

    # -- checkpoints -------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Generation, config, optimizer states and the fp32 masters of non-fp32 models."""
        return {
            "generation": self.generation,
            "config": asdict(self.config),
            "optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()},
            "masters": {t.name: self.masters[t.name].detach().clone() for t in self.targets if self.masters[t.name] is not t.weight},
        }

    @torch.no_grad()
    def load_state_dict(self, state: dict) -> None:
        self.generation = int(state["generation"])
        self._population = None
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
        for t in self.targets:
            if t.name in state["masters"]:
                self.masters[t.name].copy_(state["masters"][t.name])
                t.weight.copy_(self.masters[t.name])

