"""A training run end to end: config → data → fitness → model → ES generations → summary.

Each generation: the trainer's noise (``EvolutionStrategy.ask``), this rank's members rolled out
on the generation's prompts in batched ``generate`` calls (``trainer.generate_rollouts``), the
whole batch of completions scored with one extraction call (:mod:`esfit.fitness_glue`), the
fitness values gathered from every rank (:mod:`trainer.distributed`), one update
(``EvolutionStrategy.tell``). Every ``eval_every`` generations the centre model answers the
held-out prompts with fixed sampling seeds; every ``checkpoint_every`` generations an atomic
checkpoint is written (:mod:`trainer.checkpoint`). The run closes with before/after held-out
fitness.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from esfit.config import ConfigError, TrainConfig
from esfit.fitness_glue import CallableFitness, FitnessError, build_population_fitness
from esfit.prompts import PromptSet, load_prompt_set
from esfit.runlog import RunLog, format_metrics

__all__ = ["EvalResult", "FitnessError", "TrainResult", "evaluate", "train"]

EVAL_GENERATION = -1  # the sampling-seed generation of every evaluation: all evaluations share seeds
TRAINING_KEYS = ("population_size", "rank", "sigma", "learning_rate", "optimizer", "momentum", "weight_decay",
                 "shaping", "mirrored", "target_modules", "rollouts_per_prompt", "prompts_per_generation",
                 "max_new_tokens", "greedy", "temperature", "top_k", "top_p", "seed", "group_by_prompt", "fitness")


@dataclass
class EvalResult:
    """The centre model on held-out prompts after ``after_generations`` generations."""

    after_generations: int
    fitness: float
    components: dict[str, float]
    texts: list[list[str]]  # [prompt][rollout]
    per_prompt: dict[str, float] = field(default_factory=dict)  # prompt id -> fitness

    def row(self) -> dict[str, Any]:
        return {"kind": "eval", "after_generations": self.after_generations, "fitness": self.fitness,
                "components": dict(self.components), "per_prompt": dict(self.per_prompt)}


@dataclass
class TrainResult:
    """What a run leaves: the output folder, per-generation metrics and the evaluations."""

    output_dir: Path
    history: list[dict[str, Any]] = field(default_factory=list)
    evals: list[EvalResult] = field(default_factory=list)
    before: EvalResult | None = None
    after: EvalResult | None = None
    checkpoint: Path | None = None


def rollout_config(config: TrainConfig, *, rollouts: int | None = None):
    from trainer import RolloutConfig

    return RolloutConfig(
        max_new_tokens=config.max_new_tokens, rollouts_per_prompt=rollouts or config.rollouts_per_prompt,
        temperature=config.temperature, top_k=config.top_k or None,
        top_p=config.top_p if config.top_p < 1 else None, greedy=config.greedy, max_rows=config.max_rows or None,
    )


def es_config(config: TrainConfig):
    from trainer import ESConfig

    return ESConfig(
        population_size=config.population_size, rank=config.rank, sigma=config.sigma,
        learning_rate=config.learning_rate, optimizer=config.optimizer, momentum=config.momentum,
        weight_decay=config.weight_decay, shaping=config.shaping, mirrored=config.mirrored,
        target_modules=config.target_modules, seed=config.seed,
    )


@torch.no_grad()
def evaluate(model, tokenizer, prompts: PromptSet, scorer, config: TrainConfig, *, after_generations: int) -> EvalResult:
    """Fitness of the centre model on ``prompts`` with the fixed evaluation sampling seeds."""
    from trainer import generate_rollouts

    rollouts = generate_rollouts(model, tokenizer, prompts.messages, rollout_config(config, rollouts=config.eval_rollouts),
                                 seed=config.seed, generation=EVAL_GENERATION)
    texts = rollouts.texts[0]
    scores = scorer.score([texts], prompts.ids, [0])
    comps = dict(zip(scores.component_names, scores.components[0].tolist()))
    per_prompt = dict(zip(prompts.ids, scores.by_prompt[0].tolist()))
    return EvalResult(after_generations, float(scores.totals[0]), comps, texts, per_prompt)


def _device(config: TrainConfig, ctx) -> str:
    if config.device != "auto":
        return f"cuda:{ctx.local_rank}" if config.device == "cuda" and ctx.enabled else config.device
    if torch.cuda.is_available():
        return f"cuda:{ctx.local_rank}"
    return "cpu"


def _member_chunks(members: list[int], rows_per_member: int, max_rows: int) -> list[list[int]]:
    per = max(1, max_rows // rows_per_member) if max_rows else len(members)
    return [members[i : i + per] for i in range(0, len(members), per)]


class _Run:
    """The state of one run (kept out of ``train`` so each step reads as one short method)."""

    def __init__(self, config: TrainConfig, fitness, ctx, echo: Callable[[str], None], progress: bool):
        self.config, self.ctx, self.echo = config, ctx, echo
        self.progress = progress and ctx.is_main
        self.out = Path(config.output_dir)
        kw = dict(data_format=config.data_format, template=config.prompt_template, system_prompt=config.system_prompt)
        self.train_set = load_prompt_set(config.train_data, limit=config.max_train_prompts, **kw)
        self.eval_set = (load_prompt_set(config.eval_data, limit=config.max_eval_prompts, **kw)
                         if config.eval_data else None)
        overlap = set(self.train_set.ids) & set(self.eval_set.ids) if self.eval_set else set()
        if overlap:
            raise ConfigError(f"eval_data shares prompt ids with train_data ({sorted(overlap)[:5]}): held-out "
                              "prompts must not be trained on; split the corpus by prompt id")
        if fitness is None:
            refs = {**self.train_set.references, **(self.eval_set.references if self.eval_set else {})}
            self.scorer = build_population_fitness(config.fitness or None, refs, pipeline=config.pipeline,
                                                   cache=config.extraction_cache)
            self.scorer.warm_up(list(refs))
        elif hasattr(fitness, "score") and hasattr(fitness, "component_names"):
            self.scorer = fitness
        else:
            self.scorer = CallableFitness(fitness, per_prompt=config.group_by_prompt)

    def load(self, resume: str | None) -> dict[str, Any]:
        from esfit.models import load_model
        from trainer import EvolutionStrategy
        from trainer.checkpoint import latest_checkpoint, load_checkpoint

        checkpoint = latest_checkpoint(resume) if resume else None
        if resume and checkpoint is None:
            raise FileNotFoundError(f"--resume {resume}: no checkpoint found there (looked for gen-*/ folders "
                                    "with trainer_state.pt, also under checkpoints/)")
        device = _device(self.config, self.ctx)
        self.model, self.tokenizer = load_model(str(checkpoint) if checkpoint else self.config.model,
                                                dtype=self.config.dtype, device=device)
        self.es = EvolutionStrategy(self.model, es_config(self.config))
        self.checkpoint = checkpoint
        return load_checkpoint(checkpoint, self.es, load_weights=False) if checkpoint else {}

    def rollouts(self, generation: int, indices: list[int], members: list[int]) -> tuple[list, int]:
        from trainer import generate_rollouts

        population = self.es.ask()
        prompts = [self.train_set.messages[j] for j in indices]
        cfg = rollout_config(self.config)
        texts, tokens = [], 0
        chunks = _member_chunks(members, len(indices) * cfg.rollouts_per_prompt, self.config.max_rows)
        with self.es.patch:
            for chunk in tqdm(chunks, desc="rollout batches", leave=False, disable=not self.progress):
                r = generate_rollouts(self.model, self.tokenizer, prompts, cfg, patch=self.es.patch,
                                      population=population, members=chunk, seed=self.config.seed, generation=generation)
                texts.extend(r.texts)
                tokens += r.new_tokens
        return texts, tokens

    def score(self, texts, pids, members):
        try:
            scores = self.scorer.score(texts, pids, members)
        except Exception:
            if self.ctx.enabled:  # let the other ranks stop instead of waiting for our values
                from trainer.distributed import PeerFailure

                with contextlib.suppress(PeerFailure):
                    self.ctx.gather_fitness(None, self.config.population_size)
            raise
        local = torch.cat([scores.by_prompt, scores.components], dim=1)  # (m, G + C)
        full = self.ctx.gather_fitness(local, self.config.population_size)  # (P, G + C)
        g = scores.by_prompt.shape[1]
        return scores, full[:, :g], full[:, g:]

    def step(self, generation: int) -> dict[str, Any]:
        c = self.config
        t0 = time.perf_counter()
        from trainer import sample_prompt_indices

        indices = sample_prompt_indices(len(self.train_set), c.prompts_per_generation, c.seed, generation)
        members = self.ctx.members(c.population_size)
        texts, tokens = self.rollouts(generation, indices, members)
        t1 = time.perf_counter()
        pids = [self.train_set.ids[j] for j in indices]
        scores, by_prompt, comps = self.score(texts, pids, members)
        t2 = time.perf_counter()
        fitness = by_prompt if c.group_by_prompt else by_prompt.mean(1, keepdim=True)
        metrics = self.es.tell(fitness)
        t3 = time.perf_counter()
        metrics.update(
            kind="train", prompts=pids, rollout_s=t1 - t0, extraction_s=scores.extraction_s,
            fitness_s=scores.fitness_s, update_s=t3 - t2, generation_s=t3 - t0,
            tokens_per_s=tokens / max(t1 - t0, 1e-9) * self.ctx.world_size,
            components={n: float(v) for n, v in zip(scores.component_names, comps.nanmean(0).tolist())},
        )
        return metrics

    def save(self, extra: dict[str, Any]) -> Path:
        from trainer.checkpoint import save_checkpoint

        return save_checkpoint(self.out / "checkpoints", self.model, self.es, tokenizer=self.tokenizer,
                               extra=extra, keep=self.config.keep_checkpoints)

    def evaluate(self, log: RunLog) -> EvalResult:
        result = evaluate(self.model, self.tokenizer, self.eval_set, self.scorer, self.config,
                          after_generations=self.es.generation)
        log.write(result.row())
        from infoextract import write_records

        (self.out / "eval").mkdir(parents=True, exist_ok=True)
        write_records(self.eval_set.records(result.texts, meta={"after_generations": result.after_generations}),
                      self.out / "eval" / f"gen-{result.after_generations:06d}.jsonl")
        comps = "  ".join(f"{k}={v:.3f}" for k, v in result.components.items())
        self.echo(f"[eval after {result.after_generations} generations] held-out fitness {result.fitness:.4f}  {comps}")
        for j in range(min(self.config.samples_shown, len(self.eval_set))):
            self.echo(f"  {self.eval_set.ids[j]} Q: {self.eval_set.questions[j]}\n     A: {result.texts[j][0].strip()!r}")
        return result


def _summary(before: EvalResult | None, after: EvalResult | None) -> str:
    if before is None or after is None:
        return "no held-out evaluation (set eval_data)"
    lines = [f"{'held-out':<16} {'before':>9} {'after':>9} {'change':>9}",
             f"{'fitness':<16} {before.fitness:>9.4f} {after.fitness:>9.4f} {after.fitness - before.fitness:>+9.4f}"]
    for k, v in before.components.items():
        if k == "fitness":  # a plain Python fitness has no components beyond its total
            continue
        a = after.components.get(k, float("nan"))
        lines.append(f"{k:<16} {v:>9.4f} {a:>9.4f} {a - v:>+9.4f}")
    return "\n".join(lines)


def train(config: TrainConfig, *, fitness: Any = None, resume: str | None = None, progress: bool = True,
          echo: Callable[[str], None] | None = None) -> TrainResult:
    """Run (or, with ``resume`` = an output or checkpoint folder, continue) a training run.

    ``fitness`` overrides ``config.fitness`` with a Python fitness: a callable
    ``fn(completions_by_prompt, prompt_ids) -> float`` or an object with ``score`` and
    ``component_names`` like :class:`esfit.fitness_glue.PopulationFitness`. Under ``torchrun`` the
    population is split across the ranks; rank 0 evaluates, logs and writes checkpoints.
    """
    from transformers.utils import logging as hf_logging

    from trainer.distributed import init_distributed

    config.validate_paths()
    hf_logging.disable_progress_bar()  # per-file loading bars would drown the per-generation lines
    if config.threads:
        # OpenMP threads spin while they wait: on a shared machine fewer threads can be much faster
        torch.set_num_threads(config.threads)
    echo = echo or (lambda s: tqdm.write(s))
    ctx = init_distributed(config.device if config.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    say = echo if ctx.is_main else (lambda s: None)
    try:
        run = _Run(config, fitness, ctx, say, progress)
        extra = run.load(resume)
        start = run.es.generation
        if resume:
            changed = [k for k in TRAINING_KEYS if extra.get("config", {}).get(k, getattr(config, k)) != config.to_dict()[k]]
            if changed:
                say(f"warning: resuming with changed training settings {changed}: the run is no longer "
                    "reproducible from its seed alone")
            say(f"resuming from {run.checkpoint} at generation {start}")
        result = TrainResult(run.out)
        log = RunLog(run.out, resume_generation=start if resume else None) if ctx.is_main else None
        if ctx.is_main:
            (run.out / "config.json").write_text(json.dumps(config.to_dict(), indent=2, default=str) + "\n")
        before = extra.get("before")
        result.before = EvalResult(**before) if before else None
        if ctx.is_main and run.eval_set and result.before is None:
            result.before = run.evaluate(log)
            result.evals.append(result.before)
        ctx.barrier()
        saved = {"config": config.to_dict(), "before": vars(result.before) if result.before else None}
        bar = tqdm(range(start, config.generations), desc="generations", initial=start, total=config.generations,
                   disable=not run.progress)
        for generation in bar:
            metrics = run.step(generation)
            result.history.append(metrics)
            done = run.es.generation
            if ctx.is_main:
                log.write(metrics)
                say(format_metrics(metrics, config.generations))
                if run.eval_set and config.eval_every and done % config.eval_every == 0 and done < config.generations:
                    result.evals.append(run.evaluate(log))
                if config.checkpoint_every and done % config.checkpoint_every == 0 and done < config.generations:
                    result.checkpoint = run.save(saved)
            ctx.barrier()
        if ctx.is_main:
            if run.eval_set:
                result.after = run.evaluate(log)
                result.evals.append(result.after)
            result.checkpoint = run.save(saved)
            summary = _summary(result.before, result.after)
            say("\n" + summary)
            (run.out / "summary.json").write_text(json.dumps({
                "generations": config.generations, "checkpoint": str(result.checkpoint),
                "before": result.before.row() if result.before else None,
                "after": result.after.row() if result.after else None}, indent=2) + "\n")
            log.close()
        ctx.barrier()
        return result
    finally:
        ctx.shutdown()
