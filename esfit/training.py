"""``esfit train`` as a function: config → data → model → scorer → the trainer's loop → summary.

The loop itself is :class:`trainer.ESTrainer`; this module only loads what it needs and says what to
record. It reads the prompt sets (:mod:`esfit.prompts`), loads the model (or the checkpoint of a
resumed run), builds the scorer from the fitness spec (:mod:`esfit.fitness_glue`: one batched
extraction call per generation), and hands the loop its callbacks: the metrics log and the
per-generation line (:mod:`esfit.runlog`), evaluations of the centre model on the held-out (and
validation) prompts with fixed sampling seeds, their completions written as corpora under
``eval/``, early stopping on the validation split, and atomic checkpoints (:mod:`trainer.checkpoint`).
The run closes with before/after held-out fitness.

Before anything loads, the output folder is checked and locked (:func:`esfit.runlog.check_run_dir`,
:class:`esfit.runlog.RunLock`; under ``torchrun`` by rank 0, which tells the others): a fresh run
refuses a folder that holds another run unless ``overwrite_output_dir``, and a resumed run writes
only into the folder it resumes (:func:`find_resume`), from a checkpoint checked to be intact.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from esfit.config import ConfigError, TrainConfig
from esfit.fitness_glue import FitnessError, build_population_fitness
from esfit.prompts import PromptSet, load_prompt_set, shared_prompt_ids
from esfit.runlog import (
    Resume,
    RunLock,
    RunLog,
    check_resume_folder,
    check_run_dir,
    clear_run,
    find_resume,
    format_metrics,
    run_inputs,
)
from trainer.callbacks import Checkpointing, EarlyStopping, Evaluation, TrainerCallback
from trainer.scoring import Scores

__all__ = ["EvalSummary", "FitnessError", "Resume", "TrainResult", "find_resume", "train"]


@dataclass
class EvalSummary:
    """The centre model on the held-out prompts after ``after_generations`` generations (plain
    values: it is saved in checkpoints, so a resumed run keeps its "before")."""

    after_generations: int
    fitness: float
    components: dict[str, float]
    texts: list[list[str]]  # [prompt][rollout]
    per_prompt: dict[str, float] = field(default_factory=dict)  # prompt id -> fitness

    @classmethod
    def of(cls, result) -> EvalSummary:
        """From a :class:`trainer.EvalResult`."""
        return cls(result.after_generations, result.fitness, result.components, result.texts, result.per_prompt)

    def row(self) -> dict[str, Any]:
        return {"kind": "eval", "after_generations": self.after_generations, "fitness": self.fitness,
                "components": dict(self.components), "per_prompt": dict(self.per_prompt)}


@dataclass
class TrainResult:
    """What a run leaves: the output folder, per-generation metrics and the evaluations."""

    output_dir: Path
    history: list[dict[str, Any]] = field(default_factory=list)
    evals: list[EvalSummary] = field(default_factory=list)
    before: EvalSummary | None = None
    after: EvalSummary | None = None
    checkpoint: Path | None = None


class _Record(TrainerCallback):
    """What the main rank writes and prints: metrics.jsonl lines, one line per generation, the
    held-out evaluations (their completions as corpora under ``eval/``), the progress bar."""

    def __init__(self, result: TrainResult, log: RunLog | None, eval_set: PromptSet | None, config: TrainConfig,
                 say: Callable[[str], None], bar: tqdm | None):
        self.result, self.log, self.eval_set, self.config, self.say, self.bar = result, log, eval_set, config, say, bar

    def on_step_end(self, trainer, metrics):
        self.result.history.append(metrics)
        if self.bar is not None:
            self.bar.update(1)
        if self.log is not None:
            self.log.write(metrics)
            self.say(format_metrics(metrics, self.config.generations))

    def on_evaluate(self, trainer, result):
        if result.name != "eval":
            if self.log is not None:
                self.log.write({"kind": result.name, "after_generations": result.after_generations,
                                "fitness": result.fitness, "components": result.components})
                self.say(f"[{result.name} after {result.after_generations} generations] fitness {result.fitness:.4f}")
            return
        summary = EvalSummary.of(result)
        self.result.evals.append(summary)
        if self.result.before is None:
            self.result.before = summary
        self.result.after = summary
        if self.log is None:
            return
        from infoextract import write_records

        self.log.write(summary.row())
        folder = Path(self.config.output_dir) / "eval"
        folder.mkdir(parents=True, exist_ok=True)
        write_records(self.eval_set.records(summary.texts, meta={"after_generations": summary.after_generations}),
                      folder / f"gen-{summary.after_generations:06d}.jsonl")
        comps = "  ".join(f"{k}={v:.3f}" for k, v in summary.components.items())
        self.say(f"[eval after {summary.after_generations} generations] held-out fitness {summary.fitness:.4f}  {comps}")
        for j in range(min(self.config.samples_shown, len(self.eval_set))):
            self.say(f"  {self.eval_set.ids[j]} Q: {self.eval_set.questions[j]}\n"
                     f"     A: {summary.texts[j][0].strip()!r}")

    def on_save(self, trainer, path):
        self.result.checkpoint = path


def _summary(before: EvalSummary | None, after: EvalSummary | None) -> str:
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


class _Evaluating:
    """The training scorer, used for an evaluation of the centre model: a failure names the
    evaluation (the centre model is not a population member)."""

    def __init__(self, trainer, name: str):
        self.trainer, self.name = trainer, name

    def score(self, texts, prompt_ids, members) -> Scores:
        try:
            return self.trainer.scorer.score(texts, prompt_ids, members)
        except FitnessError as err:
            what = (f"the fitness raised evaluating the centre model on the {self.name} prompts after "
                    f"{self.trainer.weights_generation} generations")
            text, prefix = str(err), f"the fitness raised for member {members[0]}"
            message = what + text[len(prefix):] if text.startswith(prefix) else f"{what}: {text}"
            raise FitnessError(message, prompt_id=err.prompt_id) from err


def _claim_output(config: TrainConfig, resume: Resume | None, overwrite: bool, ctx) -> RunLock | None:
    """Check the output folder, create it and lock it (rank 0), or raise the same error on every rank."""
    from trainer.distributed import PeerFailure

    lock = error = None
    if ctx.is_main:
        try:
            continuing = resume is not None and resume.run_dir is not None
            folder = check_run_dir(config.output_dir, inputs=run_inputs(config, resume), fresh=not continuing,
                                   overwrite=overwrite)
            lock = RunLock(folder).acquire(create=True)
            if overwrite:
                clear_run(folder)
        except Exception as err:  # every rank must hear of it, or the others wait forever
            error = err
            if lock is not None:
                lock.release()
    message = ctx.broadcast_object(None if error is None else str(error))
    if error is not None:
        raise error
    if message is not None:
        raise PeerFailure(f"rank 0 refused the output folder: {message}")
    return lock


def _device(config: TrainConfig, ctx) -> str:
    if config.device != "auto":
        return f"cuda:{ctx.local_rank}" if config.device == "cuda" and ctx.enabled else config.device
    return f"cuda:{ctx.local_rank}" if torch.cuda.is_available() else "cpu"


def _prompt_sets(config: TrainConfig) -> dict[str, PromptSet]:
    """train, and when given eval (held-out) and validation; no prompt may be in two of them."""
    kw = dict(data_format=config.data_format, template=config.prompt_template, system_prompt=config.system_prompt)
    sets = {"train": load_prompt_set(config.train_data, limit=config.max_train_prompts, **kw)}
    for name, path in (("eval", config.eval_data), ("validation", config.validation_data)):
        if path:
            sets[name] = load_prompt_set(path, limit=config.max_eval_prompts, **kw)
    shared = shared_prompt_ids(sets)
    if shared:
        a, b, ids = shared
        raise ConfigError(f"{b}_data shares prompt ids with {a}_data ({ids[:5]}): training, "
                          "validation and held-out prompts must be disjoint (held-out prompts must not be "
                          "trained on); split the corpus by prompt id")
    return sets


def _scorer(config: TrainConfig, fitness: Any, sets: dict[str, PromptSet]):
    if fitness is not None:
        return fitness  # a Scorer or a plain callable; the trainer adapts a callable
    refs = {pid: recs for s in sets.values() for pid, recs in s.references.items()}
    scorer = build_population_fitness(config.fitness or None, refs, pipeline=config.pipeline,
                                      cache=config.extraction_cache)
    scorer.warm_up(list(refs))
    return scorer


def _anchor_weights(config: TrainConfig, es) -> dict[str, torch.Tensor]:
    """θ₀ of anchored weight decay on a resume: the starting model's target weights."""
    from esfit.models import load_model

    base, _ = load_model(config.model, dtype="float32", device="cpu")
    modules = dict(base.named_modules())
    return {t.name: modules[t.name].weight.detach() for t in es.targets}  # as stored (Conv1D: transposed)


def train(config: TrainConfig, *, fitness: Any = None, resume: str | os.PathLike | None = None, progress: bool = True,
          echo: Callable[[str], None] | None = None, overwrite_output_dir: bool = False,
          callbacks: Sequence[TrainerCallback] = ()) -> TrainResult:
    """Run (or, with ``resume`` = an output or checkpoint folder, continue) a training run.

    ``fitness`` overrides ``config.fitness`` with a Python fitness: a callable
    ``fn(completions_by_prompt, prompt_ids) -> float`` (called per (member, prompt) when
    ``group_by_prompt``, else per member) or a :class:`trainer.Scorer` such as
    :class:`esfit.fitness_glue.PopulationFitness`. Under ``torchrun`` the population is split across
    the ranks; every rank evaluates, rank 0 logs and writes checkpoints.

    A fresh run refuses an ``output_dir`` that holds another run unless ``overwrite_output_dir``
    (then esfit's files there are deleted first: :data:`esfit.runlog.RUN_FILES`). A resumed run
    writes into the run folder it resumes, so ``output_dir`` must be that folder; a checkpoint
    folder outside a run's ``checkpoints/`` continues into a new ``output_dir``. ``callbacks`` are
    added after the built-in ones (records, evaluations, checkpoints).
    """
    from transformers.utils import logging as hf_logging

    from esfit.models import EMBEDDED_MODELS, check_device, embedded_model_dir, load_model
    from trainer import ESTrainer
    from trainer.checkpoint import load_checkpoint
    from trainer.distributed import init_distributed
    from trainer.rollout import build_backend
    from trainer.targets import resolve_targets

    config.validate_paths()
    if config.device != "auto":
        check_device(config.device, option="device")
    found = find_resume(resume) if resume else None
    if found is not None:
        check_resume_folder(config, found, overwrite_output_dir)
    hf_logging.disable_progress_bar()  # per-file loading bars would drown the per-generation lines
    if config.threads:
        # OpenMP threads spin while they wait: on a shared machine fewer threads can be much faster
        torch.set_num_threads(config.threads)
    echo = echo or (lambda s: tqdm.write(s))
    ctx = init_distributed(config.device if config.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    say = echo if ctx.is_main else (lambda s: None)
    out = Path(config.output_dir)
    lock = None
    try:
        lock = _claim_output(config, found, overwrite_output_dir, ctx)
        checkpoint = found.checkpoint if found else None
        sets = _prompt_sets(config)
        model, tokenizer = load_model(str(checkpoint) if checkpoint else config.model, dtype=config.dtype,
                                      device=_device(config, ctx))
        resolve_targets(model, config.target_modules)  # a bad layer name fails before the scorer loads spaCy
        scorer = _scorer(config, fitness, sets)
        result = TrainResult(out)
        log = RunLog(out, resume_generation=None) if ctx.is_main and not checkpoint else None
        train_set = sets["train"]
        trainer = ESTrainer(model, tokenizer, train_set.messages, scorer, es=config.es, rollout=config.rollout,
                            prompt_ids=train_set.ids, dist=ctx, progress=progress)
        extra = load_checkpoint(checkpoint, trainer.es, load_weights=False) if checkpoint else {}
        # the rollout backend (trainer.rollout.ROLLOUT_BACKENDS), built on the loaded centre weights:
        # HF generate by default, or vLLM, whose engine loads the model's own save_pretrained folder
        trainer.backend = build_backend(
            config.rollout_backend, trainer.es, tokenizer, rollout=config.rollout, world_size=ctx.world_size,
            local_rank=ctx.local_rank,
            model_dir=embedded_model_dir(config.model) if config.model in EMBEDDED_MODELS else config.model)
        start = trainer.generation
        if checkpoint:
            if config.anchor_decay:
                trainer.es.set_anchor(_anchor_weights(config, trainer.es))
            log = RunLog(out, resume_generation=start) if ctx.is_main else None
            say(f"resuming from {checkpoint} at generation {start}")
        if ctx.is_main:
            out.mkdir(parents=True, exist_ok=True)
            (out / "config.json").write_text(json.dumps(config.to_dict(), indent=2, default=str) + "\n")
        saved_before = extra.get("before")
        result.before = EvalSummary(**saved_before) if isinstance(saved_before, dict) else None
        if result.before is not None:
            result.evals.append(result.before)
        eval_rollout = dataclasses.replace(config.rollout, rollouts_per_prompt=config.eval_rollouts)
        built: list[TrainerCallback] = []
        bar = tqdm(total=config.generations, initial=start, desc="generations",
                   disable=not (progress and ctx.is_main))
        built.append(_Record(result, log, sets.get("eval"), config, say, bar))
        if "validation" in sets:
            v = sets["validation"]
            built.append(Evaluation(v.messages, v.ids, name="validation", every=config.eval_every,
                                    rollout=eval_rollout, scorer=_Evaluating(trainer, "validation")))
        # after the validation Evaluation (whose final evaluation it weighs), before the held-out one
        # and the checkpoint (which then see the weights it restores)
        if "validation" in sets and config.early_stopping_patience:
            built.append(EarlyStopping("validation", patience=config.early_stopping_patience))
        if "eval" in sets:
            e = sets["eval"]
            built.append(Evaluation(e.messages, e.ids, name="eval", every=config.eval_every,
                                    at_start=result.before is None, rollout=eval_rollout,
                                    scorer=_Evaluating(trainer, "held-out")))
        saved = lambda: {"config": config.to_dict(),  # noqa: E731 - read at save time: "before" is known by then
                         "before": dataclasses.asdict(result.before) if result.before else None}
        built.append(Checkpointing(out / "checkpoints", every=config.checkpoint_every,
                                   keep=config.keep_checkpoints, extra=saved))
        for c in [*built, *callbacks]:
            trainer.callbacks.add(c)
        try:
            trainer.train(max(0, config.generations - start))
        finally:
            bar.close()
        if ctx.is_main:
            say("\n" + _summary(result.before, result.after))
            (out / "summary.json").write_text(json.dumps({
                "generations": config.generations, "checkpoint": str(result.checkpoint),
                "before": result.before.row() if result.before else None,
                "after": result.after.row() if result.after else None}, indent=2) + "\n")
            log.close()
        return result
    finally:
        if lock is not None:
            lock.release()
        ctx.shutdown()
