"""From a fitness spec to the trainer's :class:`~trainer.scoring.Scores`, with extraction batched per generation.

The trainer asks its :class:`~trainer.scoring.Scorer` for a whole generation's scores at once;
extraction (spaCy) is the expensive part, and doing it member by member would parse the same
completions again and again. Here a whole generation's completions (this rank's members × prompts ×
rollouts) go through one :meth:`fitness.TextFitness.score_population` call: one extractor call for
every distinct text, then cheap per-member scoring. The result is a (members, prompts) matrix of
per-prompt totals (the groups of EGGROLL's z-score shaping) plus each member's component means for
logging. A plain Python fitness needs none of this: the trainer adapts it itself
(:class:`trainer.scoring.CallableScorer`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from trainer.scoring import FitnessError, Scores

__all__ = ["FitnessError", "PopulationFitness", "TimedExtractor", "build_population_fitness"]


class TimedExtractor:
    """Wraps an extractor and adds the seconds spent in ``extract`` to ``seconds``."""

    def __init__(self, extractor: Any):
        self.extractor = extractor
        self.seconds = 0.0

    def extract(self, texts, sources=None, *, progress: bool = False):
        t0 = time.perf_counter()
        try:
            return self.extractor.extract(texts, sources, progress=progress)
        finally:
            self.seconds += time.perf_counter() - t0


class PopulationFitness:
    """A :class:`fitness.TextFitness` applied to a whole generation at once.

    ``score(texts, prompt_ids, members)``: ``texts[i][j][k]`` is rollout k of prompt
    ``prompt_ids[j]`` by the member whose global index is ``members[i]``.
    """

    def __init__(self, text_fitness: Any, timer: TimedExtractor | None = None):
        self.text_fitness = text_fitness
        self.timer = timer
        self.component_names = [t.label for t in text_fitness.fitness.terms]

    def warm_up(self, prompt_ids: Sequence[str]) -> None:
        """Extract the references (and prompts, sources) of ``prompt_ids`` now, in one batch, so
        that a generation's extraction time is its completions' alone."""
        if prompt_ids:
            self.text_fitness.score_population([[[""] for _ in prompt_ids]], list(prompt_ids))

    def score(self, texts: Sequence[Sequence[Sequence[str]]], prompt_ids: Sequence[str],
              members: Sequence[int]) -> Scores:
        before = self.timer.seconds if self.timer else 0.0
        t0 = time.perf_counter()
        try:
            results = self.text_fitness.score_population(texts, prompt_ids)
        except Exception as exc:  # locate the culprit, so the error names member and prompt
            raise self._locate(texts, prompt_ids, members, exc) from exc
        elapsed = time.perf_counter() - t0
        extraction = (self.timer.seconds - before) if self.timer else 0.0
        by_prompt = torch.tensor([[r.per_prompt[str(p)]["total"] for p in prompt_ids] for r in results],
                                 dtype=torch.float64)
        comps = torch.tensor([[r.components[c] for c in self.component_names] for r in results], dtype=torch.float64)
        return Scores(by_prompt, comps, list(self.component_names), extraction, max(0.0, elapsed - extraction),
                      results)

    def _locate(self, texts, prompt_ids, members, exc: Exception) -> FitnessError:
        for i, groups in enumerate(texts):
            for pid, rollouts in zip(prompt_ids, groups):
                try:
                    self.text_fitness.score_population([[list(rollouts)]], [pid])
                except Exception as inner:
                    return FitnessError(
                        f"the fitness raised for member {members[i]} on prompt {pid!r}: {inner!r} "
                        f"(completions: {[r[:80] for r in rollouts]})", member=members[i], prompt_id=str(pid))
        return FitnessError(f"the fitness raised scoring members {list(members)[:4]}... on prompts "
                            f"{list(prompt_ids)[:4]}: {exc!r}")


def build_population_fitness(spec: Any, references_by_prompt: Mapping[str, Sequence[Any]], *,
                             pipeline: str | None = None, cache: str | None = None) -> PopulationFitness:
    """A :class:`PopulationFitness` from a fitness spec (string, mapping or TOML path) and the
    reference records of every prompt it will see (training and held-out)."""
    from fitness import TextFitness
    from infoextract import Extractor

    timer = TimedExtractor(Extractor(pipeline or None, cache=cache or None))
    return PopulationFitness(TextFitness(spec, references_by_prompt, extractor=timer), timer)
