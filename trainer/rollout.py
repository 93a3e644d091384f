"""Population rollouts: members × prompts × rollouts as the rows of one batched ``generate``.

Rows are laid out member-major, then prompt, then rollout index k, which is the layout the patched
forward pass expects (``trainer.patch``). Sampling uses common random numbers: the row for
(member, prompt, k) draws its sampling noise from a seed of (run seed, generation, prompt, k) that
every member shares (Gumbel-max with seeded noise), so two members differ only by their
perturbation and fitness differences are signal, not sampling luck.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn
from tqdm.auto import tqdm

from trainer.fields import config_field
from trainer.noise import Population, derive_seed
from trainer.patch import PopulationPatch

Prompt = str | list[dict]  # plain text, or chat messages [{"role": ..., "content": ...}]
# the sampling is ours (CommonRandomGumbel): a model's own generation_config neither applies nor warns
NEUTRAL_SAMPLING = dict(temperature=None, top_p=None, top_k=None)
# name -> factory(es, tokenizer, **context) -> RolloutBackend; filled by register_backend below
ROLLOUT_BACKENDS: dict[str, Callable[..., RolloutBackend]] = {}


@dataclass(frozen=True)
class RolloutConfig:
    """Which prompts each generation rolls out, and how each member's completions are decoded.

    ``prompts_per_generation`` samples that many training prompts per generation (0: all), the
    same for every member. ``min_new_tokens`` holds back the end-of-sequence token that long.
    ``greedy`` decodes argmax tokens (then all k rollouts of a prompt are equal); otherwise tokens
    are sampled at ``temperature`` with optional ``top_k``/``top_p`` and common random numbers.
    ``max_rows`` caps the rows of one ``generate`` call (chunks split at member boundaries);
    ``chat_template`` None applies the tokenizer's template when it has one.
    """

    max_new_tokens: int = config_field(64, "longest completion in tokens")
    rollouts_per_prompt: int = config_field(1, "completions per prompt and member")
    prompts_per_generation: int = config_field(0, "training prompts per generation, the same for every member (0: all)")
    temperature: float = config_field(1.0, "sampling temperature (when greedy is false)")
    top_k: int | None = config_field(None, "top-k filter when sampling (0: off)", none_as=0)
    top_p: float | None = config_field(None, "nucleus filter when sampling (1: off)", none_as=1.0)
    greedy: bool = config_field(False, "argmax decoding; false samples at temperature with common random numbers")
    max_rows: int | None = config_field(None, "most rows in one generate call (0: the whole population at once)", none_as=0)
    chat_template: bool | None = config_field(None, "apply the tokenizer's chat template (unset: when it has one)")
    min_new_tokens: int = config_field(0, "shortest completion in tokens: end-of-sequence is held back until then")
    share_prefill: bool = config_field(True, "compute each member's prompt once and copy its KV cache to its "
                                       "rollouts_per_prompt rollouts (the same numbers, less work)")
    rollout_backend: str = config_field("hf", "what decodes the population: hf (generate with the patched forward "
                                        "pass, the reference) or vllm (one LoRA adapter per member; needs vLLM)",
                                        choices=ROLLOUT_BACKENDS)
    vllm_options: str | Mapping = config_field("", "vLLM engine options for rollout_backend = vllm, a table or a JSON "
                                               "object, e.g. {gpu_memory_utilization = 0.5, tensor_parallel_size = 2}")

    def __post_init__(self) -> None:
        _check(self.max_new_tokens >= 1, "max_new_tokens", self.max_new_tokens, "an integer ≥ 1")
        _check(0 <= self.min_new_tokens <= self.max_new_tokens, "min_new_tokens", self.min_new_tokens,
               f"in [0, max_new_tokens={self.max_new_tokens}]")
        _check(self.rollouts_per_prompt >= 1, "rollouts_per_prompt", self.rollouts_per_prompt, "an integer ≥ 1")
        _check(self.prompts_per_generation >= 0, "prompts_per_generation", self.prompts_per_generation,
               "an integer ≥ 0 (0: all prompts)")
        _check(math.isfinite(self.temperature) and self.temperature > 0, "temperature", self.temperature,
               "> 0 and finite (use greedy=True for argmax)")
        _check(self.top_k is None or self.top_k >= 1, "top_k", self.top_k, "None or an integer ≥ 1")
        _check(self.top_p is None or 0 < self.top_p <= 1, "top_p", self.top_p, "None or in (0, 1]")
        _check(self.max_rows is None or self.max_rows >= 1, "max_rows", self.max_rows, "None or ≥ 1")
        _check(self.rollout_backend in ROLLOUT_BACKENDS, "rollout_backend", self.rollout_backend,
               f"one of {', '.join(ROLLOUT_BACKENDS)}")
        from trainer.vllm_backend import parse_options  # no vLLM import: only the option rules

        parse_options(self.vllm_options)


def _check(ok: bool, name: str, value, rule: str) -> None:
    if not ok:
        raise ValueError(f"{name}={value!r} must be {rule}")


@dataclass
class Rollouts:
    """Completions grouped ``texts[member][prompt][rollout]``, and how many tokens were generated."""

    texts: list[list[list[str]]]
    new_tokens: int
    rows: int


class CommonRandomGumbel:
    """A logits processor that samples by Gumbel-max with noise seeded per row.

    ``row_seeds[i]`` seeds row i's noise stream; rows with equal seeds get equal noise at every
    step. Returned scores are (logits / T, masked by top-k/top-p) + Gumbel noise, so greedy
    ``generate`` on them draws exact samples from the tempered distribution.
    """

    def __init__(self, row_seeds: Sequence[int], *, temperature: float = 1.0, top_k=None, top_p=None):
        from transformers.generation.logits_process import TopKLogitsWarper, TopPLogitsWarper

        self.temperature = temperature
        self.warpers = []
        if top_k is not None:
            self.warpers.append(TopKLogitsWarper(top_k))
        if top_p is not None and top_p < 1:
            self.warpers.append(TopPLogitsWarper(top_p))
        unique = sorted(set(row_seeds))
        self.row_key = torch.tensor([unique.index(s) for s in row_seeds])
        # one CPU stream per seed, advanced once per step, so noise does not depend on the device
        self.generators = [torch.Generator().manual_seed(s) for s in unique]

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        scores = scores.float() / self.temperature
        for warp in self.warpers:
            scores = warp(input_ids, scores)
        vocab = scores.shape[-1]
        u = torch.stack([torch.rand(vocab, generator=g) for g in self.generators])  # (seeds, vocab)
        gumbel = -torch.log(-torch.log(u.clamp_(1e-20, 1.0 - 1e-7)))
        return scores + gumbel[self.row_key].to(scores.device)


def format_prompts(tokenizer, prompts: Sequence[Prompt], *, chat_template: bool | None = None) -> list[str]:
    """Prompt strings as the model sees them: through the chat template when there is one."""
    use_template = getattr(tokenizer, "chat_template", None) is not None if chat_template is None else chat_template
    if use_template and getattr(tokenizer, "chat_template", None) is None:
        raise ValueError("chat_template=True but the tokenizer has no chat template: pass chat_template=None")
    out = []
    for p in prompts:
        if use_template:
            messages = [{"role": "user", "content": p}] if isinstance(p, str) else p
            out.append(tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))
        elif isinstance(p, str):
            out.append(p)
        else:
            raise ValueError("a prompt given as chat messages needs a tokenizer with a chat template")
    return out


def _chunks(n_members: int, rows_per_member: int, max_rows: int | None) -> list[tuple[list[int], slice]]:
    """(member positions, row slice within each member) per generate call.

    Whole members when at least one fits in ``max_rows``; otherwise one member's rows in pieces
    (a single member's rows can be split anywhere: they all carry the same perturbation).
    """
    if max_rows is None or max_rows >= n_members * rows_per_member:
        return [(list(range(n_members)), slice(0, rows_per_member))]
    if max_rows >= rows_per_member:
        per = max_rows // rows_per_member
        return [(list(range(s, min(s + per, n_members))), slice(0, rows_per_member)) for s in range(0, n_members, per)]
    return [([i], slice(s, min(s + max_rows, rows_per_member))) for i in range(n_members) for s in range(0, rows_per_member, max_rows)]


@torch.no_grad()
def generate_rollouts(
    model: nn.Module,
    tokenizer,
    prompts: Sequence[Prompt],
    config: RolloutConfig,
    *,
    patch: PopulationPatch | None = None,
    population: Population | None = None,
    members: Sequence[int] | None = None,
    seed: int = 0,
    generation: int = 0,
    progress: bool = False,
) -> Rollouts:
    """Roll out ``members`` of ``population`` (or the centre model when ``population`` is None)
    on every prompt, ``config.rollouts_per_prompt`` times each, in as few ``generate`` calls as
    ``config.max_rows`` allows (``progress`` shows a bar over them). Returns texts grouped
    [member][prompt][rollout].
    """
    if not prompts:
        raise ValueError("prompts is empty: pass at least one prompt")
    if population is not None and patch is None:
        raise ValueError("a population needs the PopulationPatch attached to the model: pass patch=")
    members = ([None] if population is None else list(range(population.size)) if members is None else list(members))
    k = config.rollouts_per_prompt
    texts = format_prompts(tokenizer, prompts, chat_template=config.chat_template)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    enc = tokenizer(texts, padding=True, padding_side="left", add_special_tokens=False, return_tensors="pt")
    # rows of one member: prompt-major, then rollout index
    ids = enc["input_ids"].repeat_interleave(k, dim=0)
    mask = enc["attention_mask"].repeat_interleave(k, dim=0)
    # common random numbers: the seed depends on (run seed, generation, prompt, k), not the member
    row_seeds = [derive_seed(seed, generation, "sample", text, j) for text in texts for j in range(k)]
    device = next(model.parameters()).device
    out: list[list[str]] = [[] for _ in members]
    new_tokens = 0
    chunks = _chunks(len(members), len(row_seeds), config.max_rows)
    for positions, rows in tqdm(chunks, desc="rollout batches", leave=False, disable=not progress or len(chunks) < 2):
        n = len(positions)
        batch_ids = ids[rows].repeat(n, 1).to(device)
        batch_mask = mask[rows].repeat(n, 1).to(device)
        kwargs = dict(max_new_tokens=config.max_new_tokens, min_new_tokens=config.min_new_tokens,
                      pad_token_id=pad_id, do_sample=False)
        if not config.greedy:
            kwargs["logits_processor"] = [
                CommonRandomGumbel(
                    row_seeds[rows] * n, temperature=config.temperature, top_k=config.top_k, top_p=config.top_p
                )
            ]
        chosen = None if population is None else [members[p] for p in positions]
        try:
            # whole members in this call: their k rollouts of a prompt share one prefill
            if config.share_prefill and k > 1 and rows == slice(0, len(row_seeds)) and enc["input_ids"].shape[1] > 1:
                if chosen is not None:
                    patch.set_population(population, chosen, rows_per_member=len(texts))
                kwargs["past_key_values"] = _prefill(model, enc["input_ids"].repeat(n, 1).to(device),
                                                     enc["attention_mask"].repeat(n, 1).to(device), k)
            if chosen is not None:
                patch.set_population(population, chosen, rows_per_member=len(row_seeds[rows]))
            with warnings.catch_warnings():  # transformers 5 renames the argument; 4.x knows only this name
                warnings.filterwarnings("ignore", message=".*past_key_values.*deprecated", category=FutureWarning)
                seq = model.generate(input_ids=batch_ids, attention_mask=batch_mask, **NEUTRAL_SAMPLING, **kwargs)
        finally:
            if population is not None:
                patch.clear()
        completion = seq[:, batch_ids.shape[1] :]
        new_tokens += _count_new_tokens(completion, tokenizer.eos_token_id, pad_id)
        decoded = tokenizer.batch_decode(completion, skip_special_tokens=True)
        per = len(decoded) // n
        for i, p in enumerate(positions):
            out[p].extend(decoded[i * per : (i + 1) * per])
    grouped = [[row[j * k : (j + 1) * k] for j in range(len(prompts))] for row in out]
    return Rollouts(grouped, new_tokens, len(members) * len(row_seeds))


def _prefill(model: nn.Module, ids: torch.Tensor, mask: torch.Tensor, k: int):
    """The KV cache of the prompts ``ids`` (rows, T) without their last token, each row repeated k
    times (``generate`` then feeds the last token to every copy).

    Every rollout of a (member, prompt) starts from the same prefix and the same weights, so its
    cache is the same: computing it once and copying it saves (k − 1)/k of the prefill, which is
    most of a rollout's arithmetic when passages are long and answers short. Positions follow the
    left padding exactly as ``generate`` computes them.
    """
    positions = mask.long().cumsum(-1) - 1
    positions.masked_fill_(mask == 0, 1)
    out = model(input_ids=ids[:, :-1], attention_mask=mask[:, :-1], position_ids=positions[:, :-1], use_cache=True)
    cache = out.past_key_values
    cache.batch_repeat_interleave(k)
    return cache


def _count_new_tokens(completion: torch.Tensor, eos_id: int | None, pad_id: int) -> int:
    """Tokens generated up to and including each row's first end-of-sequence token."""
    if eos_id is None:
        return int(completion.numel())
    done = (completion == eos_id).int().cumsum(1)
    return int(((done == 0) | ((done == 1) & (completion == eos_id))).sum())


@runtime_checkable
class RolloutBackend(Protocol):
    """What the training loop rolls out with: members × prompts × rollouts in, texts out.

    ``rollout(prompts, config, population=None, members=None, seed=0, generation=0)`` returns
    :class:`Rollouts` with texts ``[member][prompt][rollout]`` (``members`` in the order given; the
    centre model when ``population`` is None), sampling with the common random numbers of
    (seed, generation, prompt, rollout index), so every backend gives the members the same noise.
    ``refresh()`` is called after each update, for backends that hold a copy of the weights.
    """

    def rollout(self, prompts: Sequence[Prompt], config: RolloutConfig, *, population: Population | None = None,
                members: Sequence[int] | None = None, seed: int = 0, generation: int = 0,
                progress: bool = False) -> Rollouts: ...

    def refresh(self) -> None: ...


class HFBackend:
    """Hugging Face ``generate`` with the patched forward pass (:class:`~trainer.patch.PopulationPatch`):
    the default backend and the reference the others are tested against."""

    def __init__(self, model: nn.Module, tokenizer, patch: PopulationPatch):
        self.model, self.tokenizer, self.patch = model, tokenizer, patch

    def rollout(self, prompts, config, *, population=None, members=None, seed=0, generation=0,
                progress=False) -> Rollouts:
        if population is None:
            return generate_rollouts(self.model, self.tokenizer, prompts, config, seed=seed, generation=generation,
                                     progress=progress)
        with self.patch:
            return generate_rollouts(self.model, self.tokenizer, prompts, config, patch=self.patch,
                                     population=population, members=members, seed=seed, generation=generation,
                                     progress=progress)

    def refresh(self) -> None:
        """Nothing to do: ``generate`` reads the model's own (updated) weights."""


def register_backend(name: str) -> Callable[[Callable[..., RolloutBackend]], Callable[..., RolloutBackend]]:
    """Register ``factory(es, tokenizer, *, rollout, model_dir, world_size, local_rank)`` under
    ``name``, for ``rollout_backend = name``. ``es`` is the run's
    :class:`~trainer.es.EvolutionStrategy` (its model, targets, patch and config)."""

    def decorate(factory):
        ROLLOUT_BACKENDS[name] = factory
        return factory

    return decorate


def build_backend(name: str, es, tokenizer, *, rollout: RolloutConfig | None = None, model_dir: Any = None,
                  world_size: int = 1, local_rank: int = 0) -> RolloutBackend:
    """The backend registered as ``name`` for the model ``es`` trains; an unknown name lists the known ones."""
    if name not in ROLLOUT_BACKENDS:
        raise ValueError(f"rollout_backend={name!r} is unknown; known: {', '.join(ROLLOUT_BACKENDS)}")
    return ROLLOUT_BACKENDS[name](es, tokenizer, rollout=rollout or RolloutConfig(), model_dir=model_dir,
                                  world_size=world_size, local_rank=local_rank)


@register_backend("hf")
def _hf_backend(es, tokenizer, **_) -> HFBackend:
    return HFBackend(es.model, tokenizer, es.patch)


@register_backend("vllm")
def _vllm_backend(es, tokenizer, *, rollout: RolloutConfig, model_dir, world_size: int, local_rank: int):
    from trainer.vllm_backend import vllm_backend_from_config  # imports vLLM only now

    if model_dir is None:
        raise ValueError("rollout_backend='vllm' needs model_dir: a save_pretrained folder of the model")
    return vllm_backend_from_config(es.model, tokenizer, es.targets, model_dir=model_dir,
                                    population_size=es.config.population_size, rank=es.config.rank,
                                    options=rollout.vllm_options, world_size=world_size, local_rank=local_rank)
