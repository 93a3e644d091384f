"""The one fitness protocol of the trainer: a :class:`Scorer` turns a generation's texts into scores.

``scorer.score(texts, prompt_ids, members) -> Scores``: ``texts[i][j][k]`` is rollout k of prompt
``prompt_ids[j]`` by the member whose global index is ``members[i]`` (a rank of a distributed run
scores only its own block of members). :class:`Scores` holds a (members, groups) matrix of fitness
values, higher is better: one column per prompt (EGGROLL's groups for z-score shaping) or a single
column when the fitness scores each member's whole set of answers at once; plus named components
for logging and the seconds spent.

A plain Python fitness ``fn(completions_by_prompt, prompt_ids, **columns) -> float`` becomes a
scorer in one place, :class:`CallableScorer`: called once per (member, prompt) with
``group_by_prompt``, else once per member with all its prompts. ``columns`` are per-prompt side data
(references, sources) passed sliced to the same prompts.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch

__all__ = ["CallableScorer", "FitnessError", "Scorer", "Scores", "as_scorer"]

Texts = Sequence[Sequence[Sequence[str]]]  # [member][prompt][rollout]


class FitnessError(RuntimeError):
    """The fitness raised; ``member`` and ``prompt_id`` say where (None when not known)."""

    def __init__(self, message: str, *, member: int | None = None, prompt_id: str | None = None):
        super().__init__(message)
        self.member, self.prompt_id = member, prompt_id


@dataclass
class Scores:
    """Fitness of some members.

    ``by_prompt`` (m, G) float64: one value per member and group (G = prompts, or 1 for a
    fitness of the whole set of a member's answers); NaN marks a missing value (ranked worst by
    the shapers). ``components`` (m, C) float64 with ``component_names``: each member's component
    means, for logging. ``extraction_s``/``fitness_s``: seconds spent; ``details``: anything the
    scorer wants to hand to callbacks (e.g. per-member result objects).
    """

    by_prompt: torch.Tensor
    components: torch.Tensor
    component_names: list[str]
    extraction_s: float = 0.0
    fitness_s: float = 0.0
    details: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.by_prompt.dim() != 2 or self.components.dim() != 2 or self.by_prompt.shape[0] != self.components.shape[0]:
            raise ValueError(f"Scores needs by_prompt (m, G) and components (m, C) with the same m; got "
                             f"{tuple(self.by_prompt.shape)} and {tuple(self.components.shape)}")
        if self.components.shape[1] != len(self.component_names):
            raise ValueError(f"{self.components.shape[1]} component columns but {len(self.component_names)} names")

    @property
    def totals(self) -> torch.Tensor:
        """(m,) each member's mean over its groups (NaN-aware)."""
        return self.by_prompt.nanmean(1)

    def component_means(self) -> dict[str, float]:
        """Each component's mean over the members (NaN-aware)."""
        return {n: float(v) for n, v in zip(self.component_names, self.components.nanmean(0).tolist())}


@runtime_checkable
class Scorer(Protocol):
    """What the trainer scores with (see the module docstring)."""

    def score(self, texts: Texts, prompt_ids: Sequence[str], members: Sequence[int]) -> Scores: ...


class CallableScorer:
    """A plain fitness ``fn(completions_by_prompt, prompt_ids, **columns) -> float`` as a :class:`Scorer`.

    With ``group_by_prompt`` it is called once per (member, prompt) (a list of one prompt each), so
    that shaping can subtract each prompt's mean; otherwise once per member with all its prompts.
    ``columns`` map a name to one value per prompt id (e.g. references); each call gets them sliced
    to its prompts. A ``None`` return is a missing value (NaN, ranked worst); an exception becomes a
    :class:`FitnessError` naming the member and the prompt.
    """

    component_names = ["fitness"]

    def __init__(self, fn: Callable[..., float], *, group_by_prompt: bool = False,
                 columns: Mapping[str, Mapping[str, Any]] | None = None):
        if not callable(fn):
            raise TypeError(f"fitness must be callable, got {type(fn).__name__}")
        self.fn, self.group_by_prompt = fn, group_by_prompt
        self.columns = {name: dict(values) for name, values in (columns or {}).items()}

    def _call(self, member: int, groups, pids: list[str]) -> float:
        cols = {name: [values[p] for p in pids] for name, values in self.columns.items()}
        try:
            value = self.fn(groups, pids, **cols)
        except Exception as exc:
            where = f" on prompt {pids[0]!r}" if len(pids) == 1 else f" on prompts {pids[:4]}"
            raise FitnessError(f"the fitness raised for member {member}{where}: {exc!r}", member=member,
                               prompt_id=pids[0] if len(pids) == 1 else None) from exc
        return _as_float(value, member, pids)

    def score(self, texts: Texts, prompt_ids: Sequence[str], members: Sequence[int]) -> Scores:
        t0 = time.perf_counter()
        pids = [str(p) for p in prompt_ids]
        rows = []
        for i, groups in enumerate(texts):
            if self.group_by_prompt:
                rows.append([self._call(members[i], [g], [p]) for g, p in zip(groups, pids)])
            else:
                rows.append([self._call(members[i], list(groups), pids)])
        by_prompt = torch.tensor(rows, dtype=torch.float64)
        return Scores(by_prompt, by_prompt.nanmean(1, keepdim=True), list(self.component_names),
                      fitness_s=time.perf_counter() - t0)


def _as_float(value: Any, member: int, pids: list[str]) -> float:
    """A fitness value as a float; None is missing (NaN). A non-number is a clear error."""
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
        raise FitnessError(f"the fitness returned {value!r} ({type(value).__name__}) for member {member} on "
                           f"prompt(s) {pids[:4]}: return a float (higher is better), or None for a missing value",
                           member=member, prompt_id=pids[0] if len(pids) == 1 else None)
    return float(value)


def as_scorer(fitness: Any, *, group_by_prompt: bool = False,
              columns: Mapping[str, Mapping[str, Any]] | None = None) -> Scorer:
    """``fitness`` itself when it is a :class:`Scorer`, else a :class:`CallableScorer` around it."""
    if isinstance(fitness, Scorer):
        if columns:
            raise ValueError("columns are for a plain fitness callable; a Scorer holds its own side data")
        return fitness
    return CallableScorer(fitness, group_by_prompt=group_by_prompt, columns=columns)
