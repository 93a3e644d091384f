"""Callbacks of the training loop, in the manner of transformers' ``TrainerCallback``.

A callback overrides any of ``on_train_begin(trainer)``, ``on_step_end(trainer, metrics)``,
``on_evaluate(trainer, result)``, ``on_save(trainer, path)`` and ``on_train_end(trainer)``. Hooks
run on every rank of a distributed run (evaluations too, so every rank sees the same results);
a callback that writes files checks ``trainer.dist.is_main``. Setting ``trainer.should_stop`` ends
the run after the current step.

Built in: :class:`Evaluation` (the centre model on a prompt set before, every N generations and at
the end), :class:`Checkpointing` (atomic checkpoints every N generations and at the end) and
:class:`EarlyStopping` (stop when an evaluation stops improving and go back to its best weights).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:  # pragma: no cover
    from trainer.loop import ESTrainer
    from trainer.rollout import Prompt, RolloutConfig, Rollouts
    from trainer.scoring import Scorer, Scores

__all__ = ["CallbackList", "Checkpointing", "EarlyStopping", "EvalResult", "Evaluation", "TrainerCallback"]


@dataclass
class EvalResult:
    """The centre model on one prompt set after ``after_generations`` generations."""

    name: str
    after_generations: int
    prompt_ids: list[str]
    scores: Scores
    rollouts: Rollouts

    @property
    def fitness(self) -> float:
        """Mean over prompts of the per-prompt fitness (the value of a group-level fitness)."""
        return float(self.scores.totals[0])

    @property
    def components(self) -> dict[str, float]:
        return dict(zip(self.scores.component_names, self.scores.components[0].tolist()))

    @property
    def per_prompt(self) -> dict[str, float]:
        """Prompt id -> fitness, when the fitness is per prompt (empty for a group-level one)."""
        row = self.scores.by_prompt[0].tolist()
        return dict(zip(self.prompt_ids, row)) if len(row) == len(self.prompt_ids) else {}

    @property
    def texts(self) -> list[list[str]]:
        """The centre model's completions, [prompt][rollout]."""
        return self.rollouts.texts[0]


class TrainerCallback:
    """No-op hooks; override the ones you need."""

    def on_train_begin(self, trainer: ESTrainer) -> None: ...

    def on_step_end(self, trainer: ESTrainer, metrics: dict[str, Any]) -> None: ...

    def on_evaluate(self, trainer: ESTrainer, result: EvalResult) -> None: ...

    def on_save(self, trainer: ESTrainer, path: Path) -> None: ...

    def on_train_end(self, trainer: ESTrainer) -> None: ...


class CallbackList(TrainerCallback):
    """Calls each callback's hook in order."""

    def __init__(self, callbacks: Sequence[TrainerCallback] = ()):
        self.callbacks = list(callbacks)

    def add(self, callback: TrainerCallback) -> None:
        self.callbacks.append(callback)

    def on_train_begin(self, trainer):
        for c in self.callbacks:
            c.on_train_begin(trainer)

    def on_step_end(self, trainer, metrics):
        for c in self.callbacks:
            c.on_step_end(trainer, metrics)

    def on_evaluate(self, trainer, result):
        for c in self.callbacks:
            c.on_evaluate(trainer, result)

    def on_save(self, trainer, path):
        for c in self.callbacks:
            c.on_save(trainer, path)

    def on_train_end(self, trainer):
        for c in self.callbacks:
            c.on_train_end(trainer)


def _due(trainer: ESTrainer, every: int) -> bool:
    """Whether a periodic action is due after this step (the final generation is ``at_end``'s)."""
    done = trainer.generation
    return bool(every) and done % every == 0 and done < trainer.target_generation and not trainer.should_stop


class Evaluation(TrainerCallback):
    """Evaluate the centre model on ``prompts`` at the start (``at_start``), every ``every``
    generations and at the end, and report each result to every callback's ``on_evaluate``.

    ``rollout`` overrides the decoding (e.g. more rollouts per prompt); ``scorer`` the fitness.
    """

    def __init__(self, prompts: Sequence[Prompt], prompt_ids: Sequence[str], *, name: str = "eval", every: int = 0,
                 at_start: bool = True, at_end: bool = True, rollout: RolloutConfig | None = None,
                 scorer: Scorer | None = None):
        self.prompts, self.prompt_ids = list(prompts), list(prompt_ids)
        self.name, self.every, self.at_start, self.at_end = name, every, at_start, at_end
        self.rollout, self.scorer = rollout, scorer
        self.results: list[EvalResult] = []

    def run(self, trainer: ESTrainer) -> EvalResult:
        result = trainer.evaluate_and_report(self.prompts, self.prompt_ids, name=self.name, rollout=self.rollout,
                                             scorer=self.scorer)
        self.results.append(result)
        return result

    def on_train_begin(self, trainer):
        if self.at_start:
            self.run(trainer)

    def on_step_end(self, trainer, metrics):
        if _due(trainer, self.every):
            self.run(trainer)

    def on_train_end(self, trainer):
        # the weights the run ends with: the last step's, or an earlier generation's that
        # EarlyStopping restored (then they are evaluated again, under that generation's number)
        if self.at_end and not (self.results and self.results[-1].after_generations == trainer.weights_generation):
            self.run(trainer)


class Checkpointing(TrainerCallback):
    """Write an atomic checkpoint (:func:`trainer.checkpoint.save_checkpoint`) into ``root`` every
    ``every`` generations and at the end, on the main rank; ``extra()`` gives the data saved beside
    the state (plain values only); ``keep`` recent checkpoints are kept (0: all)."""

    def __init__(self, root: str | os.PathLike, *, every: int = 0, keep: int = 0,
                 extra: Callable[[], dict[str, Any]] | None = None, at_end: bool = True):
        self.root, self.every, self.keep, self.extra, self.at_end = Path(root), every, keep, extra, at_end
        self.last: Path | None = None

    def save(self, trainer: ESTrainer) -> Path | None:
        from trainer.checkpoint import save_checkpoint

        if trainer.dist.is_main:
            self.last = save_checkpoint(self.root, trainer.model, trainer.es, tokenizer=trainer.tokenizer,
                                        extra=self.extra() if self.extra else None, keep=self.keep)
            trainer.callbacks.on_save(trainer, self.last)
        return self.last

    def on_step_end(self, trainer, metrics):
        if _due(trainer, self.every):
            self.save(trainer)

    def on_train_end(self, trainer):
        if self.at_end:
            self.save(trainer)


class EarlyStopping(TrainerCallback):
    """Stop when the evaluation ``name`` has not improved for ``patience`` evaluations, and (with
    ``restore_best``) put the centre weights back to those of the best evaluation at the end.

    ``metric(result) -> float`` is higher-is-better (default: the evaluation's fitness). Use a
    validation split here, never the held-out prompts whose results you report. The best weights
    are kept in memory (one copy of the target layers). Weights that the watched evaluation has not
    seen at the end (the last generations) are evaluated by it first, so the final generation
    competes too. Put it before the other :class:`Evaluation` callbacks and :class:`Checkpointing`
    in the callback list, so that their final evaluation and checkpoint see the restored weights.
    """

    def __init__(self, name: str = "validation", *, patience: int = 3, min_delta: float = 0.0,
                 metric: Callable[[EvalResult], float] | None = None, restore_best: bool = True):
        if patience < 1:
            raise ValueError(f"patience={patience} must be ≥ 1 (evaluations without improvement before stopping)")
        self.name, self.patience, self.min_delta = name, patience, min_delta
        self.metric = metric or (lambda r: r.fitness)
        self.restore_best = restore_best
        self.best_value = -math.inf
        self.best_generation: int | None = None
        self._best_weights: dict[str, torch.Tensor] | None = None
        self._bad = 0
        self._seen: int | None = None

    def on_evaluate(self, trainer, result):
        if result.name != self.name:
            return
        self._seen = result.after_generations
        value = float(self.metric(result))
        if value > self.best_value + self.min_delta:
            self.best_value, self.best_generation, self._bad = value, result.after_generations, 0
            if self.restore_best:
                self._best_weights = {t.name: trainer.es.masters[t.name].detach().clone() for t in trainer.es.targets}
        else:
            self._bad += 1
            if self._bad >= self.patience:
                trainer.should_stop = True

    @torch.no_grad()
    def on_train_end(self, trainer):
        if self.restore_best and self._seen is not None and self._seen != trainer.weights_generation:
            # the last generations were never evaluated (the final one is the evaluation's at_end):
            # evaluate them now, so that they are not thrown away unseen
            watched = [c for c in getattr(trainer.callbacks, "callbacks", ())
                       if isinstance(c, Evaluation) and c.name == self.name and c.at_end]
            if watched:
                watched[0].run(trainer)
        if not (self.restore_best and self._best_weights is not None and self.best_generation != trainer.generation):
            return
        for t in trainer.es.targets:
            master = trainer.es.masters[t.name]
            master.copy_(self._best_weights[t.name])
            if master is not t.weight:
                t.weight.copy_(master)
        trainer.weights_generation = self.best_generation
        trainer.backend.refresh()
