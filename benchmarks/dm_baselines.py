"""TRL baselines for the distribution-matching benchmark: GRPO and SFT on one generated-token budget.

``benchmarks/distribution_matching.py`` imports this module (it sits beside it) and trains the
same model on the same prompts with each method:

- :func:`train_grpo` runs TRL's ``GRPOTrainer`` with any reward function of TRL's form, e.g.
  ``fitness.per_sample_reward("f1_at_k", refs)`` (``grpo``) or
  ``fitness.leave_one_out_reward(spec, refs)`` (``grpo_loo``), and stops at the first optimizer
  step by which the policy has generated ``token_budget`` completion tokens (counted exactly from
  the completion ids TRL hands the reward function: up to and including each completion's first
  end-of-sequence token, as ``trainer.generate_rollouts`` counts ES's tokens);
- :func:`train_sft` runs TRL's ``SFTTrainer`` on the human references (user = the prompt's chat
  messages, assistant = one reference) and stops once ``token_budget`` reference tokens have been
  trained on (SFT generates nothing; the count is the tokens that carry a loss).

Both call ``eval_fn(model, tokens_so_far)`` before the first step, whenever the count crosses a
multiple of ``eval_every_tokens``, and after the last step; the evaluation's time is kept out of
the training wall time and the random-number state is restored after it, so how often one
evaluates does not change the training run. Everything runs offline (``HF_HUB_OFFLINE=1``,
``report_to="none"``, nothing saved or pushed), in float32, on the device the model is on.

    .venv/bin/python benchmarks/dm_baselines.py --smoke      # a few steps of each on SmolLM2, timed

TRL is the optional extra ``baselines`` (``pip install -e ".[baselines]"``); this module imports
it only when a baseline runs.
"""

from __future__ import annotations

import os

# before anything imports huggingface_hub: its offline switch is read once, at import
for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import argparse  # noqa: E402
import math  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Mapping, Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

# GRPO on a 135M model on CPU. One generation batch is one optimizer step (gradient accumulation 1,
# num_iterations 1: fully on-policy, so PPO clipping never binds). AdamW at a constant rate (the
# number of steps a token budget buys is not known in advance, so no decay schedule can be set
# honestly); 1e-5 sits between TRL's default 1e-6, which barely moves a model in the few hundred
# steps a CPU budget affords, and the 1e-5..5e-5 used for small full fine-tunes; gradients
# clipped at norm 1 (TRL default). beta = 0: no KL penalty and no reference model (TRL's default,
# following DAPO / Dr. GRPO): a second 135M forward pass per step would cost CPU time the ES arm
# does not pay, and held-out evaluation, not a KL leash, is what the benchmark judges drift by.
# TRL's loss defaults are kept (loss_type "dapo", rewards scaled by the group std).
GRPO_DEFAULTS: dict[str, Any] = dict(
    num_generations=4, prompts_per_step=2, learning_rate=1e-5, beta=0.0, max_grad_norm=1.0,
    weight_decay=0.0, loss_type="dapo", scale_rewards="group",
)
# SFT: TRL's default rate for full fine-tuning (2e-5), constant; 4 references a step; loss on the
# assistant turn only (TRL's default for prompt-completion data).
SFT_DEFAULTS: dict[str, Any] = dict(batch_size=4, learning_rate=2e-5, max_grad_norm=1.0, weight_decay=0.0,
                                    max_length=1024)


def _require_trl() -> str:
    """TRL's version (results record it: TRL's defaults move between releases); a clear error without it."""
    try:
        import trl
    except ImportError as err:
        raise ImportError("the GRPO and SFT baselines need TRL: pip install -e '.[baselines]' "
                          "(or `make install`)") from err
    return trl.__version__


def _check(ok: bool, name: str, value: Any, rule: str) -> None:
    if not ok:
        raise ValueError(f"{name}={value!r} must be {rule}")


# --- building the datasets from an esfit prompt set ---------------------------------------------

def grpo_prompts(prompt_set) -> list[dict[str, Any]]:
    """``train_prompts`` for :func:`train_grpo` from an ``esfit.prompts.PromptSet``: one
    ``{"prompt_id", "prompt": chat messages}`` per prompt."""
    return [{"prompt_id": pid, "prompt": list(msgs)} for pid, msgs in zip(prompt_set.ids, prompt_set.messages)]


def sft_examples(prompt_set) -> list[dict[str, Any]]:
    """``train_examples`` for :func:`train_sft`: one ``{"prompt_id", "prompt", "completion"}`` per
    reference answer (the prompt's chat messages, the reference's text)."""
    return [{"prompt_id": pid, "prompt": list(msgs), "completion": rec.text}
            for pid, msgs in zip(prompt_set.ids, prompt_set.messages) for rec in prompt_set.references[pid]]


# --- budget, evaluation and history (shared by both trainers) ----------------------------------

class _TokenCountingReward:
    """Wraps a reward function: counts the completion tokens of every call (TRL passes their ids)
    and keeps the call's mean reward; TRL sees the wrapped function's ``__name__``."""

    def __init__(self, reward_fn: Callable):
        self.reward_fn = reward_fn
        self.__name__ = getattr(reward_fn, "__name__", type(reward_fn).__name__)
        self.tokens = 0
        self.last_mean = float("nan")
        self.last_set_fitness = float("nan")

    def __call__(self, prompts=None, completions=None, completion_ids=None, **kwargs):
        if completion_ids is None:
            raise RuntimeError("TRL did not pass completion_ids to the reward function; this TRL version is "
                               "not supported (the baselines extra pins a range that is)")
        self.tokens += sum(len(ids) for ids in completion_ids)
        rewards = self.reward_fn(prompts=prompts, completions=completions, completion_ids=completion_ids, **kwargs)
        values = [r for r in rewards if r is not None and math.isfinite(r)]
        self.last_mean = sum(values) / len(values) if values else float("nan")
        sets = getattr(self.reward_fn, "last_set_fitness", None)
        if isinstance(sets, Mapping) and sets:
            self.last_set_fitness = sum(sets.values()) / len(sets)
        return rewards


def _rng_state() -> tuple:
    import numpy as np
    import torch

    return random.getstate(), np.random.get_state(), torch.random.get_rng_state(), (
        torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None)


def _set_rng_state(state: tuple) -> None:
    import numpy as np
    import torch

    random.setstate(state[0])
    np.random.set_state(state[1])
    torch.random.set_rng_state(state[2])
    if state[3] is not None:
        torch.cuda.set_rng_state_all(state[3])


class _Run:
    """Token budget, evaluation milestones, wall time and the per-step history of one run."""

    def __init__(self, method: str, model, tokens: Callable[[], int], budget: int, eval_fn, eval_every: int | None,
                 log: Callable[[str], None] | None):
        _check(isinstance(budget, int) and budget >= 1, "token_budget", budget, "an integer ≥ 1")
        _check(eval_every is None or (isinstance(eval_every, int) and eval_every >= 1), "eval_every_tokens",
               eval_every, "None or an integer ≥ 1")
        self.method, self.model, self.tokens, self.budget = method, model, tokens, budget
        self.eval_fn, self.eval_every, self.log = eval_fn, eval_every, log or (lambda _msg: None)
        self.history: list[dict[str, Any]] = []
        self.evals: list[dict[str, Any]] = []
        self.summary: dict[str, Any] = {}  # TRL's closing log (train_runtime, train_loss, ...)
        self.eval_s = self.eval_cpu_s = 0.0
        self.next_eval = eval_every or 0
        self.start()

    def start(self) -> None:
        """(Re)start the clocks: wall time and this process's CPU time (a fairer measure than wall
        time on a shared machine; with one torch thread it is what an idle machine's wall time is)."""
        self.started = self.step_started = time.perf_counter()
        self.cpu_started = self.step_cpu_started = time.process_time()
        self.eval_s = self.eval_cpu_s = 0.0

    def wall(self) -> float:
        """Seconds of training so far, evaluation excluded."""
        return time.perf_counter() - self.started - self.eval_s

    def cpu(self) -> float:
        """CPU seconds of training so far, evaluation excluded."""
        return time.process_time() - self.cpu_started - self.eval_cpu_s

    def evaluate(self, step: int) -> None:
        if self.eval_fn is None:
            return
        import torch

        tokens = self.tokens()
        if self.evals and self.evals[-1]["tokens"] == tokens:
            return
        t0, c0, state, was_training = time.perf_counter(), time.process_time(), _rng_state(), self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                result = self.eval_fn(self.model, tokens)
        finally:
            self.model.train(was_training)
            _set_rng_state(state)
            self.eval_s += time.perf_counter() - t0
            self.eval_cpu_s += time.process_time() - c0
        self.evals.append({"tokens": tokens, "step": step, "wall_s": self.wall(), "result": result})
        self.log(f"{self.method} eval at {tokens} tokens (step {step}): {result}")

    def step_done(self, step: int, extra: Mapping[str, Any]) -> bool:
        """Record a finished optimizer step; evaluate at milestones. True once the budget is spent."""
        now = time.perf_counter()
        tokens = self.tokens()
        prev = self.history[-1]["tokens"] if self.history else 0
        entry = {"step": step, "tokens": tokens, "step_tokens": tokens - prev, "step_s": now - self.step_started,
                 "step_cpu_s": time.process_time() - self.step_cpu_started, "wall_s": self.wall(), **extra}
        self.history.append(entry)
        shown = " ".join(f"{k} {v:+.4f}" for k, v in extra.items() if isinstance(v, float) and math.isfinite(v))
        self.log(f"{self.method} step {step}: {tokens}/{self.budget} tokens, {entry['step_s']:.1f} s {shown}")
        if self.eval_every and tokens >= self.next_eval:
            self.evaluate(step)
            self.next_eval = (tokens // self.eval_every + 1) * self.eval_every
        return tokens >= self.budget

    def result(self, config: Mapping[str, Any]) -> dict[str, Any]:
        wall = self.wall()
        tokens = self.tokens()
        return {"method": self.method, "tokens": tokens, "token_budget": self.budget, "steps": len(self.history),
                "wall_s": wall, "cpu_s": self.cpu(), "eval_s": self.eval_s,
                "tokens_per_s": tokens / wall if wall > 0 else float("nan"),
                "s_per_step": wall / len(self.history) if self.history else float("nan"),
                "history": self.history, "evals": self.evals, "trl_summary": self.summary, "config": dict(config)}


def _callback(run: _Run, extra: Callable[[], dict[str, Any]]):
    from transformers import TrainerCallback

    class BudgetCallback(TrainerCallback):
        """Evaluate before the first step; after each step record it, evaluate at milestones and stop
        once the budget is spent; attach TRL's logged metrics of a step to its history entry."""

        def on_train_begin(self, args, state, control, **kwargs):
            run.evaluate(0)
            run.start()

        def on_step_begin(self, args, state, control, **kwargs):
            run.step_started, run.step_cpu_started = time.perf_counter(), time.process_time()

        def on_step_end(self, args, state, control, **kwargs):
            if run.step_done(state.global_step, extra()):
                control.should_training_stop = True

        def on_log(self, args, state, control, logs=None, **kwargs):
            numbers = {k: v for k, v in (logs or {}).items() if isinstance(v, (int, float))}
            if "train_runtime" in numbers:  # the closing summary, not a step's metrics
                run.summary = numbers
            elif run.history and numbers and run.history[-1]["step"] == state.global_step:
                run.history[-1].setdefault("trl", {}).update(numbers)

    return BudgetCallback()


def _common_args(output_dir, *, seed: int, learning_rate: float, max_steps: int, max_grad_norm: float,
                 weight_decay: float, use_cpu: bool) -> dict[str, Any]:
    return dict(
        output_dir=str(output_dir), seed=seed, data_seed=seed, learning_rate=learning_rate,
        lr_scheduler_type="constant", warmup_steps=0, max_steps=max_steps, max_grad_norm=max_grad_norm,
        weight_decay=weight_decay, gradient_accumulation_steps=1,
        bf16=False, fp16=False, gradient_checkpointing=False, use_cpu=use_cpu,  # fp32, no recomputation
        logging_steps=1, save_strategy="no", eval_strategy="no", report_to="none", push_to_hub=False,
        disable_tqdm=True, dataloader_num_workers=0,
    )


def _quiet(trainer) -> None:
    """No printed log dict per step: the history (and ``log``) carries the same numbers."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)


def _on_cpu(model) -> bool:
    return next(model.parameters()).device.type == "cpu"


# --- GRPO --------------------------------------------------------------------------------------

def train_grpo(model, tokenizer, train_prompts: Sequence[Mapping[str, Any]], reward_fn: Callable, *,
               token_budget: int, num_generations: int = GRPO_DEFAULTS["num_generations"],
               prompts_per_step: int = GRPO_DEFAULTS["prompts_per_step"], max_new_tokens: int = 48,
               temperature: float = 1.0, learning_rate: float = GRPO_DEFAULTS["learning_rate"],
               beta: float = GRPO_DEFAULTS["beta"], seed: int = 0, eval_fn: Callable | None = None,
               eval_every_tokens: int | None = None, output_dir: str | os.PathLike,
               max_steps: int | None = None, method: str = "grpo", log: Callable[[str], None] | None = None,
               **config_overrides: Any) -> dict[str, Any]:
    """Train ``model`` in place with TRL's ``GRPOTrainer`` until it has generated ``token_budget``
    completion tokens (or ``max_steps`` optimizer steps, if given, come first).

    Args:
        model, tokenizer: a causal LM (float32) and its tokenizer with a chat template.
        train_prompts: ``{"prompt_id", "prompt": chat messages}`` per prompt (:func:`grpo_prompts`);
            the ``prompt_id`` column reaches ``reward_fn`` through TRL's ``**kwargs``.
        reward_fn: TRL's form ``(prompts, completions, **kwargs) -> list[float]``, e.g.
            ``fitness.per_sample_reward(...)`` or ``fitness.leave_one_out_reward(...)``.
        token_budget: completion tokens to generate (each completion counted up to and including
            its first end-of-sequence token); the run ends at the step that reaches it.
        num_generations: completions per prompt (the GRPO group); ``prompts_per_step`` prompts a
            step, so a step generates ``prompts_per_step * num_generations`` completions.
        max_new_tokens, temperature: sampling, as the harness gives ES (top-k and top-p off).
        learning_rate, beta: see ``GRPO_DEFAULTS`` for the reasoning. ``beta > 0`` makes TRL load a
            reference model from ``model.config._name_or_path``, so the model must come from a local
            ``save_pretrained`` folder.
        seed: seeds the run (``transformers.set_seed``, the data order and the sampling).
        eval_fn, eval_every_tokens: ``eval_fn(model, tokens)`` at 0, at every multiple of
            ``eval_every_tokens`` crossed, and at the end; its result is stored as is.
        output_dir: TRL's output folder (nothing is saved there by default).
        config_overrides: any further ``GRPOConfig`` field (e.g. ``loss_type``, ``scale_rewards``).

    Returns a dict: ``tokens``, ``steps``, ``wall_s`` (training only), ``eval_s``, ``tokens_per_s``,
    ``s_per_step``, ``history`` (per step: tokens, seconds, ``reward_mean``, ``set_fitness`` for a
    leave-one-out reward, TRL's logged metrics under ``"trl"``), ``evals``, ``config``.
    """
    trl_version = _require_trl()
    from transformers import set_seed
    from trl import GRPOConfig, GRPOTrainer

    from datasets import Dataset  # Hugging Face's (ruff sorts it as ours because of the data folder)

    _check(num_generations >= 2, "num_generations", num_generations, "≥ 2 (GRPO compares completions of a prompt)")
    _check(1 <= prompts_per_step <= len(train_prompts), "prompts_per_step", prompts_per_step,
           f"in [1, {len(train_prompts)}] (the number of training prompts)")
    _check(max_new_tokens >= 1, "max_new_tokens", max_new_tokens, "≥ 1")
    _check(temperature > 0, "temperature", temperature, "> 0")
    for i, row in enumerate(train_prompts):
        if "prompt_id" not in row or "prompt" not in row:
            raise ValueError(f"train_prompts[{i}] needs 'prompt_id' and 'prompt' (chat messages); got keys "
                             f"{sorted(row)}; build them with grpo_prompts(prompt_set)")
    source = str(getattr(model.config, "_name_or_path", "") or "")
    if beta > 0 and not (source and Path(source).is_dir()):
        raise ValueError(f"beta={beta} needs a reference model, which TRL loads from model.config._name_or_path "
                         f"({model.config._name_or_path!r}, not a local folder); save the model with "
                         "save_pretrained and load it from there, or use beta=0")
    set_seed(seed)
    batch = prompts_per_step * num_generations
    counter = _TokenCountingReward(reward_fn)
    settings = dict(GRPO_DEFAULTS, num_generations=num_generations, prompts_per_step=prompts_per_step,
                    learning_rate=learning_rate, beta=beta, max_new_tokens=max_new_tokens,
                    temperature=temperature, seed=seed, token_budget=token_budget, trl_version=trl_version,
                    **config_overrides)
    # a step generates at least one token per completion: this many steps always reach the budget
    ceiling = max_steps or -(-token_budget // batch)
    kwargs = _common_args(output_dir, seed=seed, learning_rate=learning_rate, max_steps=ceiling,
                          max_grad_norm=settings["max_grad_norm"], weight_decay=settings["weight_decay"],
                          use_cpu=_on_cpu(model))
    kwargs.update(
        per_device_train_batch_size=batch, num_generations=num_generations, max_completion_length=max_new_tokens,
        temperature=temperature, top_p=1.0, top_k=0, beta=beta, num_iterations=1,
        loss_type=settings["loss_type"], scale_rewards=settings["scale_rewards"],
        remove_unused_columns=False,  # keep prompt_id for the reward function
        shuffle_dataset=True, disable_dropout=True, log_completions=False,
    )
    kwargs.update(config_overrides)
    args = GRPOConfig(**kwargs)
    dataset = Dataset.from_list([{"prompt_id": str(r["prompt_id"]), "prompt": list(r["prompt"])}
                                 for r in train_prompts])
    run = _Run(method, model, lambda: counter.tokens, token_budget, eval_fn, eval_every_tokens, log)
    callback = _callback(run, lambda: {"reward_mean": counter.last_mean, "set_fitness": counter.last_set_fitness})
    trainer = GRPOTrainer(model=model, reward_funcs=[counter], args=args, train_dataset=dataset,
                          processing_class=tokenizer, callbacks=[callback])
    _quiet(trainer)
    trainer.train()
    model.eval()  # as load_model hands it over; the Trainer leaves it in training mode
    run.evaluate(len(run.history))
    return run.result(settings)


# --- SFT ---------------------------------------------------------------------------------------

def _counting_sft_trainer(base):
    """An SFTTrainer that counts the tokens each micro-batch trains on (labels other than -100)."""

    class CountingSFTTrainer(base):
        trained_tokens = 0

        def training_step(self, model, inputs, *args, **kwargs):
            labels = inputs.get("labels")
            if labels is not None:
                type(self).trained_tokens += int((labels != -100).sum())
            return super().training_step(model, inputs, *args, **kwargs)

    return CountingSFTTrainer


def train_sft(model, tokenizer, train_examples: Sequence[Mapping[str, Any]], *, token_budget: int,
              learning_rate: float = SFT_DEFAULTS["learning_rate"], batch_size: int = SFT_DEFAULTS["batch_size"],
              seed: int = 0, eval_fn: Callable | None = None, eval_every_tokens: int | None = None,
              output_dir: str | os.PathLike, max_length: int = SFT_DEFAULTS["max_length"],
              max_steps: int | None = None, method: str = "sft", log: Callable[[str], None] | None = None,
              **config_overrides: Any) -> dict[str, Any]:
    """Fine-tune ``model`` in place on the human references with TRL's ``SFTTrainer``.

    SFT generates no tokens, so its budget counts the **reference (assistant) tokens trained on**:
    the tokens of each example that carry a loss (the assistant turn as the chat template renders
    it; the prompt carries none), summed over every step, repeats of an example included. With
    SmolLM2's template that is the reference's tokens plus ``<|im_end|>`` and a newline: one token
    more than a generated answer of the same text counts (up to and including ``<|im_end|>``). The run ends at the step that reaches ``token_budget`` (or
    after ``max_steps`` steps, if given, first).

    Args:
        train_examples: ``{"prompt_id", "prompt": chat messages, "completion": reference text (or
            assistant messages)}`` per reference (:func:`sft_examples`); shuffled, repeated as the
            budget needs.
        learning_rate, batch_size, max_length: see ``SFT_DEFAULTS``; ``max_length`` truncates an
            example (prompt + reference) to that many tokens.
        seed, eval_fn, eval_every_tokens, output_dir, config_overrides: as for :func:`train_grpo`
            (``config_overrides`` go to ``SFTConfig``).

    Returns the same dict as :func:`train_grpo` (``history`` entries carry TRL's logged ``loss``).
    """
    trl_version = _require_trl()
    from transformers import set_seed
    from trl import SFTConfig, SFTTrainer

    from datasets import Dataset

    _check(batch_size >= 1, "batch_size", batch_size, "≥ 1")
    if not train_examples:
        raise ValueError("train_examples is empty: give one {prompt_id, prompt, completion} per reference")
    rows = []
    for i, ex in enumerate(train_examples):
        if "prompt" not in ex or "completion" not in ex:
            raise ValueError(f"train_examples[{i}] needs 'prompt' (chat messages) and 'completion' (the reference); "
                             f"got keys {sorted(ex)}; build them with sft_examples(prompt_set)")
        completion = ex["completion"]
        if isinstance(completion, str):
            completion = [{"role": "assistant", "content": completion}]
        rows.append({"prompt": list(ex["prompt"]), "completion": list(completion)})
    set_seed(seed)
    settings = dict(SFT_DEFAULTS, learning_rate=learning_rate, batch_size=batch_size, max_length=max_length,
                    seed=seed, token_budget=token_budget, trl_version=trl_version, **config_overrides)
    ceiling = max_steps or -(-token_budget // batch_size)  # each example trains on at least one token
    kwargs = _common_args(output_dir, seed=seed, learning_rate=learning_rate, max_steps=ceiling,
                          max_grad_norm=settings["max_grad_norm"], weight_decay=settings["weight_decay"],
                          use_cpu=_on_cpu(model))
    kwargs.update(per_device_train_batch_size=batch_size, max_length=max_length, packing=False,
                  completion_only_loss=True, assistant_only_loss=False)
    kwargs.update(config_overrides)
    args = SFTConfig(**kwargs)
    trainer_cls = _counting_sft_trainer(SFTTrainer)
    run = _Run(method, model, lambda: trainer_cls.trained_tokens, token_budget, eval_fn, eval_every_tokens, log)
    trainer = trainer_cls(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
                          callbacks=[_callback(run, lambda: {})])
    _quiet(trainer)
    trainer.train()
    model.eval()  # as load_model hands it over; the Trainer leaves it in training mode
    run.evaluate(len(run.history))
    return run.result(settings)


# --- smoke run: a few timed steps of each baseline on SmolLM2 ----------------------------------

def _default_data() -> Path:
    root = Path(__file__).resolve().parents[1]
    bigger = root / "datasets" / "mentions" / "train.jsonl"
    return bigger if bigger.is_file() else root / "datasets" / "demo" / "train.jsonl"


def smoke(data: Path, *, prompts: int, steps: int, max_new_tokens: int, temperature: float, threads: int,
          methods: Sequence[str], set_spec: str, per_sample_spec: str) -> dict[str, dict[str, Any]]:
    """Run ``steps`` steps of each method on SmolLM2-135M with the first ``prompts`` prompts of
    ``data``; print seconds per step and tokens per second (the first step, which warms up, apart)."""
    import tempfile

    import torch

    import fitness
    from esfit.models import load_model
    from esfit.prompts import load_prompt_set

    torch.set_num_threads(threads)
    ps = load_prompt_set(data, limit=prompts)
    print(f"data {data} ({len(ps)} prompts), {steps} steps each, max_new_tokens {max_new_tokens}, "
          f"temperature {temperature}, {threads} thread(s)", flush=True)
    extractor = None
    out = {}
    for method in methods:
        model, tokenizer = load_model("smollm2")
        with tempfile.TemporaryDirectory() as tmp:
            if method == "sft":
                res = train_sft(model, tokenizer, sft_examples(ps), token_budget=10**9, max_steps=steps,
                                output_dir=tmp, seed=0)
            else:
                if extractor is None:
                    from infoextract import Extractor

                    extractor = Extractor()
                make = fitness.per_sample_reward if method == "grpo" else fitness.leave_one_out_reward
                spec = per_sample_spec if method == "grpo" else set_spec
                reward = make(spec, ps.references, extractor=extractor, name=f"{method}_reward")
                res = train_grpo(model, tokenizer, grpo_prompts(ps), reward, token_budget=10**9, max_steps=steps,
                                 prompts_per_step=min(GRPO_DEFAULTS["prompts_per_step"], len(ps)),
                                 max_new_tokens=max_new_tokens, temperature=temperature, output_dir=tmp, seed=0,
                                 method=method)
        hist = res["history"]
        for h in hist:
            trl_logs = h.get("trl", {})
            keys = ("reward", "reward_std", "frac_reward_zero_std", "grad_norm", "loss", "completions/mean_length")
            print(f"  {method} step {h['step']}: {h['step_tokens']} tokens in {h['step_s']:.1f} s "
                  f"({h['step_cpu_s']:.1f} CPU s); "
                  + ", ".join(f"{k} {trl_logs[k]:.4g}" for k in keys if k in trl_logs), flush=True)
        later = hist[1:] or hist
        later_s = sum(h["step_s"] for h in later)
        later_cpu = sum(h["step_cpu_s"] for h in later)
        later_tok = sum(h["step_tokens"] for h in later)
        what = "trained reference tokens" if method == "sft" else "generated tokens"
        print(f"{method:9s} steps {len(hist)}  s/step {res['s_per_step']:.2f} (after the first: "
              f"{later_s / len(later):.2f}; CPU s/step {later_cpu / len(later):.2f})  tokens/step "
              f"{res['tokens'] / len(hist):.1f}  tokens/s {res['tokens_per_s']:.1f} (after the first: "
              f"{later_tok / later_s:.1f}; per CPU s {later_tok / later_cpu:.1f}) [{what}]", flush=True)
        out[method] = res
        del model
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="time a few steps of grpo, grpo_loo and sft")
    parser.add_argument("--data", type=Path, default=_default_data())
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1: on a shared 2-core machine extra OpenMP threads only spin)")
    parser.add_argument("--methods", default="grpo,grpo_loo,sft")
    parser.add_argument("--set-spec", default=None, help="fitness of grpo_loo (default: fitness.DEFAULT_SPEC)")
    parser.add_argument("--per-sample-spec", default="f1_at_k", help="fitness of grpo (per answer)")
    args = parser.parse_args(argv)
    if not args.smoke:
        parser.print_help()
        return 2
    import fitness

    smoke(args.data, prompts=args.prompts, steps=args.steps, max_new_tokens=args.max_new_tokens,
          temperature=args.temperature, threads=args.threads, methods=args.methods.split(","),
          set_spec=args.set_spec or fitness.DEFAULT_SPEC, per_sample_spec=args.per_sample_spec)
    return 0


if __name__ == "__main__":
    sys.exit(main())
