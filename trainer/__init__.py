"""trainer: evolution strategies with low-rank perturbations in a patched, batched forward pass.

EGGROLL ("Evolution Strategies at the Hyperscale"): each population member perturbs the target
weights by σ·A_i B_iᵀ/√r; every member decodes in one batched ``generate`` call with the KV cache
intact, and the update Σ f_i A_i B_iᵀ is formed from the stacked factors. Imports none of the
project's other packages: it takes a fitness callable.
"""

from trainer.es import ESConfig, EvolutionStrategy
from trainer.loop import ESTrainer
from trainer.noise import Population, derive_seed, sample_population, sample_prompt_indices
from trainer.patch import PopulationPatch
from trainer.rollout import CommonRandomGumbel, RolloutConfig, Rollouts, format_prompts, generate_rollouts
from trainer.shaping import centered_rank_shaping, raw_shaping, zscore_shaping
from trainer.targets import Target, resolve_targets

__all__ = [
    "CommonRandomGumbel",
    "ESConfig",
    "ESTrainer",
    "EvolutionStrategy",
    "Population",
    "PopulationPatch",
    "RolloutConfig",
    "Rollouts",
    "Target",
    "centered_rank_shaping",
    "derive_seed",
    "format_prompts",
    "generate_rollouts",
    "raw_shaping",
    "resolve_targets",
    "sample_population",
    "sample_prompt_indices",
    "zscore_shaping",
]
