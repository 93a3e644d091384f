"""Any esfit fitness as a TRL reward function: per sample, or leave-one-out set credit.

TRL's ``GRPOTrainer`` calls each reward function as ``fn(prompts=..., completions=..., **kwargs)``
with one entry per completion (the ``num_generations`` completions of a prompt side by side) and
the dataset's other columns in ``kwargs`` (one value per completion, e.g. ``prompt_id=[...]``); it
wants one float per completion. It then subtracts each group's mean reward, so a score that the
whole group shares (a set-level fitness such as a divergence between fact shares) becomes zero
advantage. Two stand-ins for a set fitness F are offered:

- :func:`per_sample_reward`: completion i gets F({i}), its own score against the references (a
  group of one);
- :func:`leave_one_out_reward`: completion i of the group S of its prompt gets F(S) - F(S minus i),
  what it adds to the set, the best per-sample credit for F (it sums to no constant the group shares,
  so GRPO's mean subtraction keeps it).

Both batch the whole call: one extractor call for every completion text (a text's extraction is
reused across every subset it belongs to). No torch, no TRL import: TRL needs only the signature.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from fitness.compose import Fitness
from fitness.text import TextFitness
from infoextract import Record

__all__ = ["FitnessReward", "leave_one_out_reward", "per_sample_reward"]


def completion_text(completion: Any) -> str:
    """The text of one TRL completion: a string as is; a conversational completion (a list of
    ``{"role", "content"}`` messages, content a string or a list of ``{"type": "text", "text"}``
    parts) as its assistant messages' text joined by newlines; ``None`` as the empty answer."""
    if completion is None:
        return ""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Mapping):
        completion = [completion]
    parts = []
    for message in completion:
        if not isinstance(message, Mapping):
            raise TypeError(f"a conversational completion is a list of {{'role', 'content'}} messages; got an "
                            f"item of type {type(message).__name__}: {message!r:.80}")
        if message.get("role", "assistant") != "assistant":
            continue  # tool results and the like are not the model's answer
        parts.append(_content_text(message.get("content")))
    return "\n".join(p for p in parts if p)


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content if isinstance(p, Mapping) and p.get("type", "text") == "text")


def _prompt_key(prompt: Any) -> str:
    """A hashable stand-in for one prompt (a string, or chat messages) to group completions by."""
    if isinstance(prompt, str):
        return prompt
    if prompt is None:
        return ""
    return "\x1e".join(f"{m.get('role', '')}\x1f{_content_text(m.get('content'))}" for m in prompt)


def _last_user_text(prompt: Any) -> str:
    if isinstance(prompt, str) or prompt is None:
        return prompt or ""
    users = [m for m in prompt if isinstance(m, Mapping) and m.get("role") == "user"]
    return _content_text(users[-1].get("content")) if users else ""


def _as_records(references_by_prompt: Mapping[str, Sequence[Record | str]]) -> dict[str, list[Record]]:
    """References as records: plain strings become human records of that prompt id."""
    out = {}
    for pid, refs in references_by_prompt.items():
        out[str(pid)] = [r if isinstance(r, Record) else Record(str(pid), str(r)) for r in refs]
    return out


class FitnessReward:
    """A TRL reward function scoring completions with an esfit fitness (see the module docstring).

    Built by :func:`per_sample_reward` or :func:`leave_one_out_reward`. Attributes after each call:
    ``last_set_fitness`` (prompt id -> F(S) of the call's group, leave-one-out only), ``calls``.
    """

    def __init__(self, text_fitness: TextFitness, *, mode: str, prompt_id_key: str | None, name: str):
        if mode not in ("per_sample", "leave_one_out"):
            raise ValueError(f"mode must be 'per_sample' or 'leave_one_out', got {mode!r}")
        self.text_fitness = text_fitness
        self.mode = mode
        self.prompt_id_key = prompt_id_key
        self.__name__ = name  # TRL logs each reward as rewards/<__name__>/mean
        self.calls = 0
        self.last_set_fitness: dict[str, float] = {}
        self._by_question: dict[str, str] | None = None

    def __repr__(self) -> str:
        return f"FitnessReward({self.__name__}: {self.mode}, {self.text_fitness.fitness!r})"

    @property
    def worst(self) -> float:
        """F(empty set): the fitness's worst total (every component at its worst value)."""
        return self.text_fitness.fitness.worst

    # --- which prompt each completion answers --------------------------------------------------

    def _prompt_ids(self, prompts: Sequence[Any], n: int, kwargs: Mapping[str, Any]) -> list[str]:
        refs = self.text_fitness.references_by_prompt
        key = self.prompt_id_key
        if key and kwargs.get(key) is not None:
            ids = [str(p) for p in kwargs[key]]
            if len(ids) != n:
                raise ValueError(f"{key} has {len(ids)} values but there are {n} completions; TRL passes one "
                                 f"value of each dataset column per completion")
        else:
            if prompts is None or len(prompts) != n:
                got = "none" if prompts is None else len(prompts)
                raise ValueError(f"no {key!r} column and {got} prompts for {n} completions: add a {key!r} column "
                                 "to the dataset (GRPOTrainer passes it through) or pass one prompt per completion")
            ids = [self._id_of_prompt(p) for p in prompts]
        missing = sorted({p for p in ids if p not in refs})
        if missing:
            raise KeyError(f"prompt id(s) {missing[:5]} have no references; add their reference answers to "
                           f"references_by_prompt (known ids start with {list(refs)[:5]}) or drop those prompts "
                           "from the training dataset")
        return ids

    def _id_of_prompt(self, prompt: Any) -> str:
        """Without an id column: the prompt text itself when references are keyed by it; the only
        prompt id when there is one; else the one prompt id whose question (the records' ``prompt``
        field) ends the prompt's last user message (esfit's "passage, blank line, question")."""
        refs = self.text_fitness.references_by_prompt
        text = _prompt_key(prompt)
        if text in refs:
            return text
        if len(refs) == 1:
            return next(iter(refs))
        if self._by_question is None:
            self._by_question = {}
            for pid, recs in refs.items():
                question = next((r.prompt for r in recs if r.prompt), None)
                if question:
                    self._by_question.setdefault(question.strip(), pid)
        user = _last_user_text(prompt).strip()
        hits = [pid for q, pid in self._by_question.items() if user == q or user.endswith(q)]
        if len(hits) != 1:
            what = "no prompt id matches" if not hits else f"prompt ids {hits[:3]} all match"
            raise KeyError(f"{what} the prompt {user[-80:]!r}; add a {self.prompt_id_key!r} column to the "
                           "training dataset (GRPOTrainer passes dataset columns to reward functions) or key "
                           "references_by_prompt by the prompt text")
        return hits[0]

    # --- scoring -------------------------------------------------------------------------------

    def __call__(self, prompts: Sequence[Any] | None = None, completions: Sequence[Any] | None = None,
                 **kwargs: Any) -> list[float]:
        """One reward per completion, in order (TRL's reward-function signature)."""
        if completions is None:
            raise TypeError("a reward function needs completions=[...] (TRL passes prompts= and completions=)")
        texts = [completion_text(c) for c in completions]
        if not texts:
            return []
        ids = self._prompt_ids(prompts, len(texts), kwargs)
        groups: dict[str, list[int]] = {}  # prompt id -> positions of its completions, in call order
        for pos, pid in enumerate(ids):
            groups.setdefault(pid, []).append(pos)
        order = list(groups)
        width = max(len(g) for g in groups.values())
        # One "member" per subset slot, every prompt side by side, so that one score_population call
        # (one extractor call over the deduplicated texts) scores every subset of every group; the
        # fitness of a prompt depends only on that prompt's candidates (FitnessResult.per_prompt).
        # per sample: member k holds completion k of each group alone;
        # leave-one-out: member 0 holds each whole group S, member k+1 holds S without its completion k.
        members: list[list[list[str]]] = []
        if self.mode == "per_sample":
            for k in range(width):
                members.append([[texts[groups[p][k]]] if k < len(groups[p]) else [] for p in order])
        else:
            members.append([[texts[i] for i in groups[p]] for p in order])
            for k in range(width):
                members.append([[texts[i] for j, i in enumerate(groups[p]) if j != k] if k < len(groups[p]) else []
                                for p in order])
        results = self.text_fitness.score_population(members, order)
        worst = self.worst

        def value(member: int, pid: str, size: int) -> float:
            if size == 0:
                return worst  # F(empty set) is defined as the worst total, not scored
            v = results[member].per_prompt[pid]["total"]
            return v if math.isfinite(v) else worst

        rewards = [0.0] * len(texts)
        if self.mode == "per_sample":
            for p in order:
                for k, pos in enumerate(groups[p]):
                    rewards[pos] = value(k, p, 1)
            self.last_set_fitness = {}
        else:
            self.last_set_fitness = {p: value(0, p, len(groups[p])) for p in order}
            for p in order:
                whole = self.last_set_fitness[p]
                for k, pos in enumerate(groups[p]):
                    rewards[pos] = whole - value(k + 1, p, len(groups[p]) - 1)
            log_metric = kwargs.get("log_metric")
            if callable(log_metric):  # TRL >= 1.x passes it: the set fitness itself, beside the credit
                log_metric(f"{self.__name__}/set_fitness", sum(self.last_set_fitness.values()) / len(order))
        self.calls += 1
        return [float(r) for r in rewards]


def _build(spec_or_fitness: Fitness | TextFitness | str | Mapping | None,
           references_by_prompt: Mapping[str, Sequence[Record | str]] | None, extractor: Any) -> TextFitness:
    if isinstance(spec_or_fitness, TextFitness):
        if references_by_prompt is not None or extractor is not None:
            raise ValueError("a TextFitness already holds its references and extractor: pass "
                             "references_by_prompt=None and extractor=None, or pass a spec/Fitness instead")
        return spec_or_fitness
    if references_by_prompt is None:
        raise ValueError("references_by_prompt is required: prompt id -> reference records (or texts)")
    return TextFitness(spec_or_fitness, _as_records(references_by_prompt), extractor=extractor)


def per_sample_reward(spec_or_fitness: Fitness | TextFitness | str | Mapping | None,
                      references_by_prompt: Mapping[str, Sequence[Record | str]] | None, *,
                      extractor: Any = None, prompt_id_key: str = "prompt_id",
                      name: str = "esfit_per_sample") -> FitnessReward:
    """A TRL reward function ``(prompts, completions, **kwargs) -> list[float]``: each completion
    scored alone (a group of one) against its prompt's references, F({i}).

    Args:
        spec_or_fitness: a fitness spec (e.g. ``"f1_at_k"``), a :class:`~fitness.Fitness`, ``None``
            (the default spec), or a ready :class:`~fitness.TextFitness` (then references and
            extractor come from it: pass ``None`` for both).
        references_by_prompt: prompt id -> reference :class:`~infoextract.Record` s (their ``prompt``
            and ``source`` fields are used as in :class:`~fitness.TextFitness`) or plain texts.
        extractor: as for :class:`~fitness.TextFitness` (default: the spaCy ``Extractor``).
        prompt_id_key: the dataset column holding each completion's prompt id (TRL passes dataset
            columns through ``kwargs``, one value per completion). Without it, completions are
            matched to references by prompt text (see :meth:`FitnessReward._id_of_prompt`).
        name: the function's ``__name__``, under which TRL logs the reward.

    Completions may be strings or TRL's conversational form (lists of ``{"role", "content"}``
    messages). A prompt id without references raises ``KeyError`` naming it.
    """
    return FitnessReward(_build(spec_or_fitness, references_by_prompt, extractor), mode="per_sample",
                         prompt_id_key=prompt_id_key, name=name)


def leave_one_out_reward(spec_or_fitness: Fitness | TextFitness | str | Mapping | None,
                         references_by_prompt: Mapping[str, Sequence[Record | str]] | None, *,
                         extractor: Any = None, prompt_id_key: str = "prompt_id",
                         name: str = "esfit_leave_one_out") -> FitnessReward:
    """A TRL reward function giving leave-one-out set credit: completions are grouped by prompt id
    (all completions of one prompt in the call form its set S), and completion i of S gets
    ``F(S) - F(S minus i)``, where F is the set fitness (one prompt's total).

    F of the empty set is defined as ``fitness.worst`` (every component at its worst value), so a
    lone completion (a group of one) gets ``F({i}) - worst``: its per-sample score shifted by a
    constant. Arguments as for :func:`per_sample_reward`. After each call ``last_set_fitness``
    holds F(S) per prompt id; when TRL passes ``log_metric``, its mean is logged as
    ``<name>/set_fitness``. Cost per call: one extractor call over the distinct completion texts,
    and ``1 + |S|`` fitness evaluations per group.
    """
    return FitnessReward(_build(spec_or_fitness, references_by_prompt, extractor), mode="leave_one_out",
                         prompt_id_key=prompt_id_key, name=name)
