"""trainer: evolution strategies with low-rank perturbations in a patched, batched forward pass.

EGGROLL ("Evolution Strategies at the Hyperscale"): each population member perturbs the target
weights by σ·A_i B_iᵀ/√r; every member decodes in one batched ``generate`` call with the KV cache
intact, and the update Σ f_i A_i B_iᵀ is formed from the stacked factors. Imports none of the
project's other packages: it takes a scorer or a fitness callable.

Where things are: the loop (:mod:`trainer.loop`), its callbacks (:mod:`trainer.callbacks`), the
fitness protocol (:mod:`trainer.scoring`), the ES update and its config (:mod:`trainer.es`,
:mod:`trainer.optim`, :mod:`trainer.shaping`), the noise (:mod:`trainer.noise`), the patched forward
pass (:mod:`trainer.patch`) and its kernel (:mod:`trainer.kernel`), rollouts and their config
(:mod:`trainer.rollout`; vLLM in :mod:`trainer.vllm_backend`), checkpoints and torchrun (:mod:`trainer.checkpoint`, :mod:`trainer.distributed`).
"""

from trainer.callbacks import (
    CallbackList,
    Checkpointing,
    EarlyStopping,
    EvalResult,
    Evaluation,
    TrainerCallback,
)
from trainer.es import ESConfig, EvolutionStrategy, NonFiniteUpdateError
from trainer.loop import EVAL_GENERATION, ESTrainer
from trainer.noise import Population, derive_seed, sample_population, sample_prompt_indices
from trainer.optim import OPTIMIZERS, SCHEDULES, register_optimizer, register_schedule
from trainer.patch import PopulationPatch
from trainer.rollout import (
    ROLLOUT_BACKENDS,
    CommonRandomGumbel,
    HFBackend,
    RolloutBackend,
    RolloutConfig,
    Rollouts,
    build_backend,
    format_prompts,
    generate_rollouts,
    register_backend,
)
from trainer.scoring import CallableScorer, FitnessError, Scorer, Scores, as_scorer
from trainer.shaping import SHAPERS, centered_rank_shaping, raw_shaping, register_shaper, zscore_shaping
from trainer.targets import Target, resolve_targets

__all__ = [
    "EVAL_GENERATION",
    "OPTIMIZERS",
    "ROLLOUT_BACKENDS",
    "SCHEDULES",
    "SHAPERS",
    "CallableScorer",
    "CallbackList",
    "Checkpointing",
    "CommonRandomGumbel",
    "ESConfig",
    "ESTrainer",
    "EarlyStopping",
    "EvalResult",
    "Evaluation",
    "EvolutionStrategy",
    "FitnessError",
    "HFBackend",
    "NonFiniteUpdateError",
    "Population",
    "PopulationPatch",
    "RolloutBackend",
    "RolloutConfig",
    "Rollouts",
    "Scorer",
    "Scores",
    "Target",
    "TrainerCallback",
    "as_scorer",
    "build_backend",
    "centered_rank_shaping",
    "derive_seed",
    "format_prompts",
    "generate_rollouts",
    "raw_shaping",
    "register_backend",
    "register_optimizer",
    "register_schedule",
    "register_shaper",
    "resolve_targets",
    "sample_population",
    "sample_prompt_indices",
    "zscore_shaping",
]
