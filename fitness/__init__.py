"""fitness: distribution-matching and depth/precision fitness functions over extracted facts.

``build_fitness(spec)`` makes a :class:`Fitness` (higher is better) from registered components;
``Fitness.score`` scores extractions grouped by prompt; :class:`TextFitness` is the trainer-facing
form that takes texts; :func:`score_corpus` scores whole corpora (``esfit score``).
Imports neither torch nor transformers.
"""

from fitness.bootstrap import bootstrap_answers_ci, bootstrap_mean_ci
from fitness.components import (
    COMPONENTS,
    KL_CAP,
    PromptContext,
    make_component,
    precision,
    register,
    w1_position,
)
from fitness.compose import DEFAULT_SPEC, Fitness, FitnessResult, Term, build_fitness, parse_spec, term
from fitness.depth import f1_at_k_score, informative, length_penalty, precision_score, reference_k
from fitness.distributions import CATEGORICAL_VIEWS, ORDINAL_VIEWS, FactDistribution, fact_distributions
from fitness.divergences import (
    DIVERGENCES,
    estimate,
    hellinger_divergence,
    js_divergence,
    kl_divergence,
    tv_divergence,
    wasserstein_divergence,
)
from fitness.presence import (
    PRESENCE_THRESHOLD,
    ROLE_WEIGHTS,
    WEIGHTED_PRESENCE_THRESHOLD,
    Presence,
    presence,
    presence_scores,
    statement_roles,
    statement_weights,
)
from fitness.recall import answer_recall, recall_score
from fitness.rewards import leave_one_out_reward, per_sample_reward
from fitness.scoring import CorpusScore, ScoreReport, score_corpus
from fitness.setlevel import SetReport, paired_delta_ci, set_metrics, set_report
from fitness.support import MATCH_RULES, Match, SupportIndex, supported
from fitness.text import TextFitness

__all__ = [
    "CATEGORICAL_VIEWS",
    "COMPONENTS",
    "DEFAULT_SPEC",
    "DIVERGENCES",
    "KL_CAP",
    "MATCH_RULES",
    "PRESENCE_THRESHOLD",
    "WEIGHTED_PRESENCE_THRESHOLD",
    "ROLE_WEIGHTS",
    "ORDINAL_VIEWS",
    "CorpusScore",
    "FactDistribution",
    "Fitness",
    "FitnessResult",
    "Match",
    "Presence",
    "PromptContext",
    "ScoreReport",
    "SetReport",
    "SupportIndex",
    "Term",
    "TextFitness",
    "answer_recall",
    "bootstrap_answers_ci",
    "bootstrap_mean_ci",
    "build_fitness",
    "estimate",
    "f1_at_k_score",
    "fact_distributions",
    "hellinger_divergence",
    "informative",
    "js_divergence",
    "kl_divergence",
    "leave_one_out_reward",
    "length_penalty",
    "make_component",
    "paired_delta_ci",
    "parse_spec",
    "per_sample_reward",
    "precision",
    "precision_score",
    "presence",
    "statement_roles",
    "presence_scores",
    "statement_weights",
    "recall_score",
    "reference_k",
    "register",
    "score_corpus",
    "set_metrics",
    "set_report",
    "supported",
    "term",
    "tv_divergence",
    "w1_position",
    "wasserstein_divergence",
]
