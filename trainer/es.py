"""The ES core with an ask/tell interface (EGGROLL, "Evolution Strategies at the Hyperscale").

``ask()`` draws the generation's low-rank noise; the caller rolls the population out through
``es.patch`` and scores it; ``tell(fitness)`` shapes the fitness, forms the gradient estimate

    ĝ_W = 1/(P σ) · Σ_i f̃_i E_i,        E_i = s_i A_j B_jᵀ / √r

per layer in one matmul over the stacked factors (``Population.weighted_sum``), and hands −ĝ to a
torch optimizer (from :data:`trainer.optim.OPTIMIZERS`: SGD by default, Adam optional, with optional
weight decay) that steps fp32 master weights; a bf16/fp16 model gets a cast copy of the masters
after every step.

Levers against drift (all off by default): anchored weight decay θ ← θ − λ(θ − θ₀) towards the
starting weights after every step (Schweighofer et al. 2026 use it against ES drift); schedules that
decay the learning rate and σ over ``schedule_generations``; and noise reused for ``noise_reuse``
consecutive generations (as eggroll-vllm does).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from trainer.fields import config_field
from trainer.noise import Population, member_layout, sample_population
from trainer.optim import OPTIMIZERS, SCHEDULES, schedule_factor
from trainer.patch import PopulationPatch
from trainer.shaping import SHAPERS, fitness_matrix, get_shaper
from trainer.targets import ALL_LINEAR, TargetSpec, resolve_targets

__all__ = ["ESConfig", "EvolutionStrategy", "NonFiniteUpdateError"]



class NonFiniteUpdateError(FloatingPointError):
    """An update would put NaN or infinity into the weights; nothing should be saved after it."""


@dataclass(frozen=True)
class ESConfig:
    """ES settings, validated on construction; every rule about these fields lives here.

    ``sigma`` is the noise scale per weight entry (each E_i has unit-variance entries);
    ``learning_rate`` multiplies the gradient estimate above. ``target_modules`` takes PEFT-style
    names, a regex, or "all-linear" (every linear layer but the output head).
    """

    population_size: int = config_field(32, "members per generation (even when mirrored)")
    rank: int = config_field(1, "rank r of each member's perturbation A Bᵀ")
    sigma: float = config_field(1e-3, "noise scale per weight entry")
    learning_rate: float = config_field(1e-3, "step size on the gradient estimate")
    optimizer: str = config_field("sgd", "optimizer of the update (trainer.optim.OPTIMIZERS)", choices=OPTIMIZERS)
    momentum: float = config_field(0.0, "SGD momentum")
    weight_decay: float = config_field(0.0, "weight decay of the optimizer (towards zero)")
    shaping: str = config_field("zscore", "fitness shaping (trainer.shaping.SHAPERS)", choices=SHAPERS)
    mirrored: bool = config_field(True, "mirrored pairs (+E, −E)")
    target_modules: TargetSpec = config_field(ALL_LINEAR, "layers to perturb: all-linear, a regex, or a list of names")
    group_by_prompt: bool = config_field(False, "shape with one fitness per (member, prompt): a per-prompt mean (EGGROLL)")
    seed: int = config_field(0, "run seed: noise, prompt sampling and sampling noise derive from it")
    anchor_decay: float = config_field(0.0, "anchored weight decay λ: after each step θ ← θ − λ(θ − θ₀), θ₀ the starting "
                             "weights (0: off)")
    noise_reuse: int = config_field(1, "use each generation's noise for this many consecutive generations (1: fresh noise)")
    schedule: str = config_field("constant", "shape of the learning-rate and σ decay (trainer.optim.SCHEDULES)",
                       choices=SCHEDULES)
    schedule_generations: int = config_field(0, "generations over which the schedule decays (0: no decay)")
    final_lr_fraction: float = config_field(1.0, "learning rate at the end of the schedule, as a fraction of learning_rate")
    final_sigma_fraction: float = config_field(1.0, "σ at the end of the schedule, as a fraction of sigma")

    def __post_init__(self) -> None:
        member_layout(self.population_size, mirrored=self.mirrored)  # the one rule on the size
        checks = [
            (self.rank >= 1, "rank", "an integer ≥ 1"),
            (_finite(self.sigma) and self.sigma > 0, "sigma", "> 0 and finite (the noise scale; typical 1e-3 to 3e-2)"),
            (_finite(self.learning_rate) and self.learning_rate > 0, "learning_rate", "> 0 and finite"),
            (self.optimizer in OPTIMIZERS, "optimizer", f"one of {', '.join(OPTIMIZERS)}"),
            (0 <= self.momentum < 1, "momentum", "in [0, 1)"),
            (_finite(self.weight_decay) and self.weight_decay >= 0, "weight_decay", "≥ 0 and finite"),
            (0 <= self.anchor_decay < 1, "anchor_decay", "in [0, 1) (the share of θ − θ₀ removed per step)"),
            (self.noise_reuse >= 1, "noise_reuse", "an integer ≥ 1"),
            (self.schedule in SCHEDULES, "schedule", f"one of {', '.join(SCHEDULES)}"),
            (self.schedule_generations >= 0, "schedule_generations", "an integer ≥ 0 (0: no decay)"),
            (0 <= self.final_lr_fraction <= 1, "final_lr_fraction", "in [0, 1]"),
            (0 < self.final_sigma_fraction <= 1, "final_sigma_fraction", "in (0, 1] (σ must stay above 0)"),
            (self.seed >= 0, "seed", "an integer ≥ 0"),
        ]
        for ok, name, rule in checks:
            if not ok:
                raise ValueError(f"{name}={getattr(self, name)!r} must be {rule}")
        get_shaper(self.shaping)  # raises, listing the known names
        if not isinstance(self.target_modules, str):
            object.__setattr__(self, "target_modules", tuple(self.target_modules))

    def sigma_at(self, generation: int) -> float:
        """σ of ``generation`` after the schedule."""
        return self.sigma * schedule_factor(self.schedule, generation, self.schedule_generations,
                                            self.final_sigma_fraction)

    def learning_rate_at(self, generation: int) -> float:
        """The learning rate of ``generation`` after the schedule."""
        return self.learning_rate * schedule_factor(self.schedule, generation, self.schedule_generations,
                                                    self.final_lr_fraction)


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


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
            self.optimizers[t.name] = OPTIMIZERS[self.config.optimizer]([master], self.config)
        # θ₀ for anchored weight decay: the weights the run starts from (set_anchor on a resume)
        self.anchor: dict[str, torch.Tensor] = (
            {t.name: self.masters[t.name].detach().clone() for t in self.targets} if self.config.anchor_decay else {})

    def set_anchor(self, weights: dict[str, torch.Tensor]) -> None:
        """θ₀ of anchored weight decay, e.g. the starting model's weights when a run resumes from a
        checkpoint (whose weights are not θ₀). Keys are target names; shapes as the model's weights."""
        missing = [t.name for t in self.targets if t.name not in weights]
        if missing:
            raise ValueError(f"set_anchor: no weight for target(s) {missing[:5]}; pass one per target layer")
        self.anchor = {t.name: weights[t.name].detach().float().clone().to(self.masters[t.name].device)
                       for t in self.targets}

    # -- ask ---------------------------------------------------------------------------------
    def ask(self) -> Population:
        """This generation's noise (regenerated, not stored, if asked again before ``tell``).

        With ``noise_reuse = k`` generations g and g' share their noise when g // k == g' // k.
        """
        c = self.config
        noise_generation = self.generation // c.noise_reuse
        sigma = c.sigma_at(self.generation)
        pop = self._population
        if pop is None or pop.generation != noise_generation or pop.sigma != sigma:
            self._population = sample_population(
                self.targets, seed=c.seed, generation=noise_generation, population_size=c.population_size,
                rank=c.rank, sigma=sigma, mirrored=c.mirrored,
            )
        return self._population

    # -- tell --------------------------------------------------------------------------------
    def gradient_weights(self, fitness) -> torch.Tensor:
        """(P,) coefficients w_i = f̃_i / (P σ) of the gradient estimate Σ_i w_i E_i."""
        c = self.config
        shaped = get_shaper(c.shaping)(fitness, population_size=c.population_size)
        return shaped / (c.population_size * c.sigma_at(self.generation))

    @torch.no_grad()
    def tell(self, fitness) -> dict[str, float]:
        """Update the centre weights from one fitness per member ((P,) or (P, groups)), in member
        order, and start the next generation. Returns the generation's metrics.

        Raises :class:`NonFiniteUpdateError` before touching a layer whose update would not be
        finite (e.g. an infinite fitness under raw shaping): stop the run and do not save.
        """
        c = self.config
        population = self.ask()
        weights = self.gradient_weights(fitness)
        if not torch.isfinite(weights).all():
            raise NonFiniteUpdateError(f"the shaped fitness is not finite ({weights.tolist()[:8]}...): the update "
                                       "would put NaN/inf into the weights; check the fitness values")
        lr = c.learning_rate_at(self.generation)
        sq_update = 0.0
        for t in self.targets:
            master = self.masters[t.name]
            grad = population.weighted_sum(t.name, weights, device=master.device)  # (out, in)
            master.grad = -(grad.T if t.transposed else grad)  # optimizers minimise; ES ascends
            before = master.detach().clone()
            optimizer = self.optimizers[t.name]
            for group in optimizer.param_groups:
                group["lr"] = lr
            optimizer.step()
            master.grad = None
            if c.anchor_decay:
                master.sub_(c.anchor_decay * (master - self.anchor[t.name]))
            step = (master - before).float()
            if not torch.isfinite(step).all():
                master.copy_(before)
                raise NonFiniteUpdateError(
                    f"the update of {t.name!r} at generation {self.generation} is not finite (learning_rate={lr:g}, "
                    f"sigma={population.sigma:g}): the weights were not changed further; lower the learning rate "
                    "or check the fitness, and resume from the last checkpoint")
            sq_update += float(step.pow(2).sum())
            if master is not t.weight:
                t.weight.copy_(master)
        raw = fitness_matrix(fitness, warn=False).mean(1)
        raw = raw[torch.isfinite(raw)]
        self.generation += 1
        return {
            "generation": self.generation - 1,
            "fitness_mean": float(raw.mean()) if raw.numel() else math.nan,
            "fitness_max": float(raw.max()) if raw.numel() else math.nan,
            "fitness_std": float(raw.std(unbiased=False)) if raw.numel() else math.nan,
            "update_norm": math.sqrt(sq_update),
            "sigma": population.sigma,
            "learning_rate": lr,
        }

    # -- checkpoints -------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Generation, config, optimizer states and the fp32 masters of non-fp32 models.

        θ₀ of anchored weight decay is not saved: it is the starting model, which a resume loads
        again (:meth:`set_anchor`), so checkpoints do not double in size."""
        return {
            "generation": self.generation,
            "config": asdict(self.config),
            "optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()},
            "masters": {t.name: self.masters[t.name].detach().clone() for t in self.targets
                        if self.masters[t.name] is not t.weight},
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
