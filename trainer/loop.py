"""``ESTrainer``: the one training loop — prompts → ask → roll out → score → tell, then callbacks.

Everything that trains with ES goes through :meth:`ESTrainer.step`: the Python API, ``esfit train``
and runs under ``torchrun``. What varies is injected: the fitness (any :class:`~trainer.scoring.Scorer`,
or a plain callable adapted by :func:`~trainer.scoring.as_scorer`), the rollout backend (HF
``generate`` with the patched forward by default, :class:`~trainer.rollout.RolloutBackend`), the
distributed context (each rank rolls out and scores its block of members; only fitness values
travel) and callbacks for logging, evaluation and checkpoints (:mod:`trainer.callbacks`, in the
manner of transformers' ``TrainerCallback``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from trainer.callbacks import CallbackList, EvalResult, TrainerCallback
from trainer.distributed import DistributedContext, PeerFailure
from trainer.es import ESConfig, EvolutionStrategy
from trainer.noise import sample_prompt_indices
from trainer.rollout import HFBackend, Prompt, RolloutBackend, RolloutConfig, Rollouts
from trainer.scoring import Scorer, Scores, as_scorer

__all__ = ["EVAL_GENERATION", "ESTrainer"]

EVAL_GENERATION = -1  # the sampling-seed generation of every evaluation: evaluations compare


def _prompt_ids(prompts: Sequence[Prompt], ids: Sequence[str] | None) -> list[str]:
    """Given ids, or each prompt itself when it is text (its index otherwise); unique."""
    out = [str(i) for i in ids] if ids is not None else [p if isinstance(p, str) else str(j) for j, p in enumerate(prompts)]
    if len(out) != len(prompts):
        raise ValueError(f"prompt_ids has {len(out)} ids for {len(prompts)} prompts: give one id per prompt")
    if len(set(out)) != len(out):
        dupes = sorted({p for p in out if out.count(p) > 1})[:5]
        raise ValueError(f"prompt ids must be unique, got {dupes} more than once: pass prompt_ids=")
    return out


class ESTrainer:
    """Trains ``model`` so that ``fitness`` of its rollouts on ``prompts`` goes up.

    Args:
        model, tokenizer: a Hugging Face causal LM and its tokenizer.
        prompts: texts or chat messages; ``prompt_ids`` names them (default: the text itself).
        fitness: a :class:`~trainer.scoring.Scorer`, or ``fn(completions_by_prompt, prompt_ids,
            **columns) -> float`` called once per member with all its rollouts, or once per
            (member, prompt) when ``es.group_by_prompt`` (then z-score shaping gets a per-prompt
            mean, EGGROLL's group normalisation).
        es, rollout: :class:`~trainer.es.ESConfig` and :class:`~trainer.rollout.RolloutConfig`.
        columns: per-prompt side data for a plain fitness (name -> one value per prompt).
        backend: a :class:`~trainer.rollout.RolloutBackend` (default HF generate, patched).
        dist: a :class:`~trainer.distributed.DistributedContext` (default: one process).
        callbacks: :class:`~trainer.callbacks.TrainerCallback` objects, called in order.
        prompts_per_generation: shorthand for ``rollout.prompts_per_generation``.
        fitness_per_prompt: deprecated name of ``es.group_by_prompt``.
    """

    def __init__(
        self,
        model: nn.Module,
        tokenizer,
        prompts: Sequence[Prompt],
        fitness: Scorer | Callable[..., float],
        *,
        es: ESConfig | None = None,
        rollout: RolloutConfig | None = None,
        prompt_ids: Sequence[str] | None = None,
        columns: Mapping[str, Sequence] | None = None,
        backend: RolloutBackend | None = None,
        dist: DistributedContext | None = None,
        callbacks: Sequence[TrainerCallback] = (),
        prompts_per_generation: int | None = None,
        fitness_per_prompt: bool | None = None,
        progress: bool = False,
    ):
        if not prompts:
            raise ValueError("prompts is empty: pass at least one prompt")
        es = es or ESConfig()
        if fitness_per_prompt is not None:
            warnings.warn("fitness_per_prompt is deprecated: use ESConfig(group_by_prompt=...)", FutureWarning,
                          stacklevel=2)
            es = dataclasses.replace(es, group_by_prompt=fitness_per_prompt)
        rollout = rollout or RolloutConfig()
        if prompts_per_generation is not None:
            if prompts_per_generation < 1:
                raise ValueError(f"prompts_per_generation={prompts_per_generation} must be None or ≥ 1")
            rollout = dataclasses.replace(rollout, prompts_per_generation=prompts_per_generation)
        self.prompts = list(prompts)
        self.prompt_ids = _prompt_ids(self.prompts, prompt_ids)
        cols = {}
        for name, values in (columns or {}).items():
            if len(values) != len(self.prompts):
                raise ValueError(f"column {name!r} has {len(values)} values for {len(self.prompts)} prompts: "
                                 "give one per prompt")
            cols[name] = dict(zip(self.prompt_ids, values))
        self.model, self.tokenizer = model, tokenizer
        self.scorer = as_scorer(fitness, group_by_prompt=es.group_by_prompt, columns=cols)
        self.es = EvolutionStrategy(model, es)
        self.rollout_config = rollout
        self.backend = backend or HFBackend(model, tokenizer, self.es.patch)
        self.dist = dist or DistributedContext()
        self.callbacks = CallbackList(callbacks)
        self.progress = progress and self.dist.is_main
        self.should_stop = False  # a callback sets it (early stopping); the loop ends after the step
        self.target_generation = self.es.generation  # set by train(): the generation the run ends at
        self._weights_generation: int | None = None  # set when earlier weights are restored

    @property
    def generation(self) -> int:
        """Generations done so far (the next step is this one)."""
        return self.es.generation

    @property
    def weights_generation(self) -> int:
        """After how many generations the centre weights were those the model holds now: the
        generation count, unless a callback restored earlier weights (:class:`~trainer.callbacks.EarlyStopping`)."""
        return self.es.generation if self._weights_generation is None else self._weights_generation

    @weights_generation.setter
    def weights_generation(self, value: int | None) -> None:
        self._weights_generation = value

    def prompt_indices(self, generation: int) -> list[int]:
        """The prompts of one generation: a seeded sample of ``prompts_per_generation`` (all when 0)."""
        return sample_prompt_indices(len(self.prompts), self.rollout_config.prompts_per_generation,
                                     self.es.config.seed, generation)

    # -- one generation ------------------------------------------------------------------------
    def _score(self, texts, prompt_ids: list[str], members: list[int], population_size: int) -> Scores:
        """This rank's scores; on a failure the other ranks are released before the error propagates."""
        try:
            return self.scorer.score(texts, prompt_ids, members)
        except Exception:
            if self.dist.enabled:  # let the other ranks stop instead of waiting for our values
                with contextlib.suppress(PeerFailure):
                    self.dist.gather_fitness(None, population_size)
            raise

    def step(self) -> dict[str, Any]:
        """One generation: roll out this rank's members, score them, gather every rank's fitness,
        update. Returns the generation's metrics."""
        c = self.es.config
        gen = self.es.generation
        indices = self.prompt_indices(gen)
        pids = [self.prompt_ids[j] for j in indices]
        members = self.dist.members(c.population_size)
        population = self.es.ask()
        t0 = time.perf_counter()
        rollouts = self.backend.rollout([self.prompts[j] for j in indices], self.rollout_config, population=population,
                                        members=members, seed=c.seed, generation=gen, progress=self.progress)
        t1 = time.perf_counter()
        scores = self._score(rollouts.texts, pids, members, c.population_size)
        groups = scores.by_prompt.shape[1]
        local = torch.cat([scores.by_prompt, scores.components], dim=1)  # (m, G + C)
        full = self.dist.gather_fitness(local, c.population_size)  # (P, G + C)
        by_prompt, comps = full[:, :groups], full[:, groups:]
        fitness = by_prompt if c.group_by_prompt else by_prompt.mean(1, keepdim=True)
        t2 = time.perf_counter()
        metrics = self.es.tell(fitness)
        self._weights_generation = None
        self.backend.refresh()
        t3 = time.perf_counter()
        metrics.update(
            kind="train", prompts=pids, rollout_s=t1 - t0, extraction_s=scores.extraction_s,
            fitness_s=scores.fitness_s, update_s=t3 - t2, generation_s=t3 - t0,
            tokens_per_s=rollouts.new_tokens / max(t1 - t0, 1e-9) * self.dist.world_size,
            new_tokens=rollouts.new_tokens * self.dist.world_size,
            components={n: float(v) for n, v in zip(scores.component_names, comps.nanmean(0).tolist())},
        )
        return metrics

    def train(self, generations: int, *, callback: Callable[[dict], None] | None = None) -> list[dict]:
        """Run ``generations`` more steps (fewer if a callback sets ``should_stop``), calling the
        callbacks around them and ``callback(metrics)`` after each step. Returns all metrics."""
        self.target_generation = self.es.generation + generations
        self.should_stop = False
        history = []
        self.callbacks.on_train_begin(self)
        while self.es.generation < self.target_generation and not self.should_stop:
            metrics = self.step()
            history.append(metrics)
            if callback is not None:
                callback(metrics)
            self.callbacks.on_step_end(self, metrics)
            self.should_stop = bool(self.dist.broadcast_object(self.should_stop))
            self.dist.barrier()
        self.callbacks.on_train_end(self)
        self.dist.barrier()
        return history

    # -- the centre model ----------------------------------------------------------------------
    @torch.no_grad()
    def evaluate_set(self, prompts: Sequence[Prompt] | None = None, prompt_ids: Sequence[str] | None = None, *,
                     name: str = "eval", rollout: RolloutConfig | None = None, scorer: Scorer | None = None,
                     generation: int = EVAL_GENERATION) -> EvalResult:
        """The unperturbed centre model on ``prompts`` (default: the training prompts), sampled with
        the seeds of ``generation`` (fixed by default, so evaluations compare), scored by ``scorer``
        (default: the training fitness). Callbacks are not called; see :meth:`evaluate_and_report`."""
        if prompts is None:
            prompts, prompt_ids = self.prompts, self.prompt_ids
        prompts = list(prompts)
        ids = _prompt_ids(prompts, prompt_ids)
        rollouts = self.backend.rollout(prompts, rollout or self.rollout_config, seed=self.es.config.seed,
                                        generation=generation, progress=self.progress)
        scores = (scorer or self.scorer).score(rollouts.texts, ids, [0])
        return EvalResult(name, self.weights_generation, ids, scores, rollouts)

    def evaluate_and_report(self, prompts=None, prompt_ids=None, **kwargs) -> EvalResult:
        """:meth:`evaluate_set`, then every callback's ``on_evaluate``."""
        result = self.evaluate_set(prompts, prompt_ids, **kwargs)
        self.callbacks.on_evaluate(self, result)
        return result

    def evaluate(self, prompts: Sequence[Prompt] | None = None, *, prompt_ids: Sequence[str] | None = None,
                 generation: int = EVAL_GENERATION) -> tuple[float, Rollouts]:
        """Fitness of the centre model on ``prompts`` (default: the training prompts) and its
        rollouts, with the fixed evaluation sampling seeds."""
        result = self.evaluate_set(prompts, prompt_ids, generation=generation)
        return result.fitness, result.rollouts
