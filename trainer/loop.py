"""``ESTrainer``: the thin loop over ask → population rollout → fitness → tell.

The fitness is any callable ``fitness(completions_by_prompt, prompts, **columns) -> float``,
called once per member with all of that member's rollouts (``completions_by_prompt[j][k]`` is
rollout k of prompt j), so it can score a property of the whole set of answers. ``columns`` are
per-prompt side data (references, sources), passed sliced to the same prompts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

from torch import nn

from trainer.es import ESConfig, EvolutionStrategy
from trainer.noise import sample_prompt_indices
from trainer.rollout import Prompt, RolloutConfig, Rollouts, generate_rollouts

FitnessFn = Callable[..., float]


class ESTrainer:
    """Trains ``model`` so that ``fitness`` of its rollouts on ``prompts`` goes up.

    ``prompts_per_generation`` samples that many prompts per generation (all by default), the
    same for every member. ``fitness_per_prompt=True`` calls the fitness once per (member, prompt)
    instead, which gives z-score shaping a per-prompt mean (EGGROLL's group normalisation).
    """

    def __init__(
        self,
        model: nn.Module,
        tokenizer,
        prompts: Sequence[Prompt],
        fitness: FitnessFn,
        *,
        es: ESConfig | None = None,
        rollout: RolloutConfig | None = None,
        columns: Mapping[str, Sequence] | None = None,
        prompts_per_generation: int | None = None,
        fitness_per_prompt: bool = False,
    ):
        if not prompts:
            raise ValueError("prompts is empty: pass at least one prompt")
        columns = dict(columns or {})
        for name, values in columns.items():
            if len(values) != len(prompts):
                raise ValueError(
                    f"column {name!r} has {len(values)} values for {len(prompts)} prompts: give one per prompt"
                )
        if prompts_per_generation is not None and prompts_per_generation < 1:
            raise ValueError(f"prompts_per_generation={prompts_per_generation} must be None or ≥ 1")
        self.model, self.tokenizer, self.fitness = model, tokenizer, fitness
        self.prompts, self.columns = list(prompts), columns
        self.es = EvolutionStrategy(model, es)
        self.rollout_config = rollout or RolloutConfig()
        self.prompts_per_generation = prompts_per_generation
        self.fitness_per_prompt = fitness_per_prompt

    @property
    def generation(self) -> int:
        return self.es.generation

    def prompt_indices(self, generation: int) -> list[int]:
        """The prompts of one generation: a seeded sample when ``prompts_per_generation`` is set."""
        return sample_prompt_indices(len(self.prompts), self.prompts_per_generation, self.es.config.seed, generation)

    def score(self, rollouts: Rollouts, indices: Sequence[int]) -> list:
        """One fitness per member (or a list per member and prompt with ``fitness_per_prompt``)."""
        prompts = [self.prompts[j] for j in indices]
        cols = {name: [values[j] for j in indices] for name, values in self.columns.items()}
        scores = []
        for i, texts in enumerate(rollouts.texts):
            if self.fitness_per_prompt:
                scores.append([
                    self._call(i, [texts[j]], [prompts[j]], {c: [v[j]] for c, v in cols.items()}, prompt=prompts[j])
                    for j in range(len(prompts))
                ])
            else:
                scores.append(self._call(i, texts, prompts, cols))
        return scores

    def _call(self, member: int, texts, prompts, cols, *, prompt=None):
        try:
            value = self.fitness(texts, prompts, **cols)
        except Exception as exc:
            where = f" on prompt {prompt!r}" if prompt is not None else ""
            raise RuntimeError(f"the fitness raised for member {member}{where}: {exc!r}") from exc
        return None if value is None else float(value)

    def step(self) -> dict[str, float]:
        """One generation: roll out the whole population, score it, update. Returns metrics."""
        gen = self.es.generation
        indices = self.prompt_indices(gen)
        population = self.es.ask()
        t0 = time.perf_counter()
        with self.es.patch:
            rollouts = generate_rollouts(
                self.model, self.tokenizer, [self.prompts[j] for j in indices], self.rollout_config,
                patch=self.es.patch, population=population, seed=self.es.config.seed, generation=gen,
            )
        t1 = time.perf_counter()
        scores = self.score(rollouts, indices)
        t2 = time.perf_counter()
        metrics = self.es.tell(scores)
        t3 = time.perf_counter()
        metrics.update(
            rollout_s=t1 - t0, fitness_s=t2 - t1, update_s=t3 - t2,
            tokens_per_s=rollouts.new_tokens / max(t1 - t0, 1e-9),
        )
        return metrics

    def train(self, generations: int, *, callback: Callable[[dict], None] | None = None) -> list[dict]:
        """Run ``generations`` steps; ``callback(metrics)`` after each. Returns all metrics."""
        history = []
        for _ in range(generations):
            metrics = self.step()
            history.append(metrics)
            if callback is not None:
                callback(metrics)
        return history

    def evaluate(
        self, prompts: Sequence[Prompt] | None = None, *, columns: Mapping[str, Sequence] | None = None,
        generation: int = -1,
    ) -> tuple[float, Rollouts]:
        """Fitness of the unperturbed centre model on ``prompts`` (default: the training prompts),
        with the sampling seeds of ``generation`` (fixed by default, so evaluations compare)."""
        prompts = self.prompts if prompts is None else list(prompts)
        cols = self.columns if columns is None else dict(columns)
        rollouts = generate_rollouts(
            self.model, self.tokenizer, prompts, self.rollout_config, seed=self.es.config.seed, generation=generation
        )
        return float(self.fitness(rollouts.texts[0], prompts, **cols)), rollouts
