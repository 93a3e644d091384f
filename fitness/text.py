"""The trainer-facing form of a fitness: texts in, one float (or one result) per population member.

The ES trainer hands over raw completions, ``[member][prompt][rollout]``. :class:`TextFitness`
extracts the texts of *all* members in one batched extractor call (identical texts, frequent with
greedy decoding, are extracted once), extracts each prompt's references, prompt text and (when a
component needs it) source once and caches them, then scores every member with the wrapped
:class:`~fitness.compose.Fitness`. It imports neither torch nor the trainer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from fitness.compose import Fitness, FitnessResult, build_fitness
from infoextract import Extraction, Record

__all__ = ["TextFitness"]


def _text(value: Any) -> str:
    """A completion as text: ``None`` (a failed rollout) counts as the empty answer."""
    return value if isinstance(value, str) else ""


class TextFitness:
    """Score completions (texts) against reference records.

    Args:
        fitness: a :class:`Fitness` or anything :func:`build_fitness` accepts (``None``: default).
        references_by_prompt: prompt id -> reference records (their ``prompt`` and ``source``
            fields, when present, give the prompt text whose facts do not count and the source).
        extractor: an object with ``extract(texts, sources=None, *, progress=False)`` returning one
            :class:`~infoextract.Extraction` per text; default ``infoextract.Extractor()``.

    A member whose total is not finite (it cannot be with the built-in components) gets
    ``fitness.worst``, the total with every component at its worst value; so does a member whose
    completions are all empty, through the components themselves. Never NaN.
    """

    def __init__(self, fitness: Fitness | str | Mapping | None, references_by_prompt: Mapping[str, Sequence[Record]],
                 extractor: Any = None):
        self.fitness = build_fitness(fitness)
        if not references_by_prompt:
            raise ValueError("references_by_prompt is empty: give prompt id -> reference records")
        self.references_by_prompt = {str(k): list(v) for k, v in references_by_prompt.items()}
        empty = [k for k, v in self.references_by_prompt.items() if not v]
        if empty:
            raise ValueError(f"prompt id(s) {empty[:5]} have no reference records; drop them or add references")
        if extractor is None:
            from infoextract import Extractor  # spaCy loads here, not at import time

            extractor = Extractor()
        self.extractor = extractor
        self._refs: dict[str, list[Extraction]] = {}
        self._prompts: dict[str, Extraction | None] = {}
        self._sources: dict[str, Extraction | None] = {}

    def _source_text(self, pid: str) -> str | None:
        return next((r.source for r in self.references_by_prompt[pid] if r.source), None)

    def _ensure(self, prompt_ids: Sequence[str]) -> None:
        """Extract references, prompt and source of prompts not seen yet, in one batch."""
        todo = [p for p in dict.fromkeys(prompt_ids) if p not in self._refs]
        unknown = [p for p in todo if p not in self.references_by_prompt]
        if unknown:
            raise KeyError(f"prompt id(s) {unknown[:5]} have no references; known ids start with "
                           f"{list(self.references_by_prompt)[:5]}")
        texts, sources, slots = [], [], []
        want_source = self.fitness.needs_source
        for pid in todo:
            recs = self.references_by_prompt[pid]
            src = self._source_text(pid) if want_source else None
            for r in recs:
                texts.append(r.text)
                sources.append(src)
                slots.append(("ref", pid))
            prompt = next((r.prompt for r in recs if r.prompt), None)
            if prompt:
                texts.append(prompt)
                sources.append(None)
                slots.append(("prompt", pid))
            if src:
                texts.append(src)
                sources.append(None)
                slots.append(("source", pid))
        if not texts:
            return
        extractions = self.extractor.extract(texts, sources if want_source else None, progress=False)
        for pid in todo:
            self._refs[pid], self._prompts[pid], self._sources[pid] = [], None, None
        for (what, pid), e in zip(slots, extractions):
            if what == "ref":
                self._refs[pid].append(e)
            elif what == "prompt":
                self._prompts[pid] = e
            else:
                self._sources[pid] = e

    def score_population(self, member_completions: Sequence[Sequence[Sequence[str]]],
                         prompt_ids: Sequence[str]) -> list[FitnessResult]:
        """One :class:`FitnessResult` per member; ``member_completions[m][p][r]`` is rollout r of
        member m for ``prompt_ids[p]``. A prompt id listed twice pools its rollouts."""
        prompt_ids = [str(p) for p in prompt_ids]
        if not prompt_ids:
            raise ValueError("prompt_ids is empty: give the id of each prompt the completions answer")
        for m, groups in enumerate(member_completions):
            if len(groups) != len(prompt_ids):
                raise ValueError(f"member {m} has completions for {len(groups)} prompts but prompt_ids has "
                                 f"{len(prompt_ids)}; give one list of rollouts per prompt id")
        self._ensure(prompt_ids)
        want_source = self.fitness.needs_source
        # dedupe across the whole population (greedy rollouts repeat a lot): one extractor call;
        # a text is aligned to its prompt's source only when a component reads the source
        src = {pid: (self._source_text(pid) if want_source else None) for pid in prompt_ids}
        index: dict[tuple[str, str | None], int] = {}
        for groups in member_completions:
            for pid, rollouts in zip(prompt_ids, groups):
                for text in rollouts:
                    index.setdefault((_text(text), src[pid]), len(index))
        keys = list(index)
        sources = [s for _, s in keys] if want_source else None
        extractions = self.extractor.extract([t for t, _ in keys], sources, progress=False) if keys else []
        results = []
        for groups in member_completions:
            cands: dict[str, list[Extraction]] = {}
            for pid, rollouts in zip(prompt_ids, groups):
                cands.setdefault(pid, []).extend(extractions[index[(_text(t), src[pid])]] for t in rollouts)
            result = self.fitness.score(cands, self._refs, sources=self._sources, prompts=self._prompts)
            if not math.isfinite(result.total):
                result.total = self.fitness.worst
            results.append(result)
        return results

    def __call__(self, completions_by_prompt: Sequence[Sequence[str]], prompt_ids: Sequence[str]) -> float:
        """The fitness of one population member: ``completions_by_prompt[p]`` are its rollouts for
        ``prompt_ids[p]``."""
        return self.score_population([completions_by_prompt], prompt_ids)[0].total
