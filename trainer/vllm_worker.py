"""What esfit adds to each vLLM worker (``worker_extension_cls``), called through ``LLM.collective_rpc``.

A rank-r EGGROLL perturbation σ/√r · s_i A_j B_jᵀ is a LoRA adapter with ``lora_B = s_i σ/√r · A_j``
(out, r), ``lora_A = B_jᵀ`` (r, in) and scaling 1. Each engine holds one adapter per LoRA slot,
registered once in memory (vLLM's zero "dummy" adapter: no file), activated and pinned, so it never
leaves its slot. Every generation the worker regenerates the factors of the members it is given
from the run's seeds (:func:`trainer.noise.pair_factors`, the same numbers the HF path draws) and
writes them into the slots' LoRA buffers with the layers' own ``set_lora`` (which also splits them
for tensor parallelism). Only a few integers cross the process boundary, never a factor.

After an update the trainer sends the new centre weights of the layers that hold a target (all
the checkpoint tensors of each such vLLM layer, e.g. q, k and v for ``qkv_proj``); the worker
refills CPU linear layers directly and repacks them, and elsewhere uses vLLM's in-place
``reload_weights`` (then registers its adapters again: that reload drops them).

This module imports nothing of vLLM at import time; vLLM imports it inside its workers.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager

import torch

from trainer.noise import pair_factors

ADAPTER_PATH = "esfit-in-memory"  # a LoRARequest needs a path; in-memory adapters never read it


def adapter_name(slot: int) -> str:
    return f"esfit-slot-{slot}"


@contextmanager
def _quiet(name: str, level: int = logging.ERROR):
    """A vLLM logger raised to ``level`` inside the block (a partial reload warns per untouched layer)."""
    log = logging.getLogger(name)
    before = log.level
    log.setLevel(level)
    try:
        yield
    finally:
        log.setLevel(before)


class PopulationWorkerExtension:
    """Mixed into vLLM's worker class; ``self`` is the worker (``self.model_runner`` its runner)."""

    # -- adapters ------------------------------------------------------------------------------
    def _esfit_manager(self):
        runner = self.model_runner
        manager = getattr(runner, "lora_manager", None)
        if manager is None:
            raise RuntimeError("the vLLM engine was started without LoRA (enable_lora=True is needed)")
        return manager

    def _esfit_register(self) -> None:
        from vllm.lora.request import LoRARequest

        manager = self._esfit_manager()
        present = manager.list_adapters()
        for slot in range(1, self._esfit_slots + 1):
            if slot not in present:
                manager.add_dummy_lora(LoRARequest(adapter_name(slot), slot, ADAPTER_PATH), rank=self._esfit_rank)
            manager._adapter_manager.activate_adapter(slot)
            manager.pin_adapter(slot)

    def esfit_prepare(self, slots: int, rank: int, targets: dict[str, tuple[int, int]]) -> dict:
        """Register ``slots`` zero adapters of ``rank`` and map each target (HF module name ->
        (out, in)) to its vLLM LoRA layer and slice. Returns ``{"layout": {target: (module, slice)},
        "siblings": {target: [HF names of every checkpoint module in that vLLM layer]},
        "missing": [targets with no LoRA layer]}``."""
        self._esfit_slots, self._esfit_rank = int(slots), int(rank)
        self._esfit_register()
        adapters = self._esfit_manager()._adapter_manager
        packed = adapters.packed_modules_mapping
        layout, siblings, missing = {}, {}, []
        for name, (_out, in_f) in targets.items():
            parent, _, leaf = name.rpartition(".")
            found = None
            if name in adapters.modules:
                found = (name, 0, [name])
            else:
                for fused, children in packed.items():
                    full = f"{parent}.{fused}" if parent else fused
                    if leaf in children and full in adapters.modules:
                        found = (full, children.index(leaf), [f"{parent}.{c}" if parent else c for c in children])
                        break
            if found is None:
                missing.append(name)
                continue
            module = adapters.modules[found[0]]
            a_in = module.lora_a_stacked[found[1]].shape[-1]
            if getattr(module, "tp_size", 1) == 1 and a_in != in_f:
                raise ValueError(f"target {name}: vLLM's LoRA layer {found[0]} takes {a_in} inputs, the model's "
                                 f"layer {in_f}; the engine loaded a different model")
            layout[name] = (found[0], found[1])
            siblings[name] = found[2]
        self._esfit_layout = layout
        self._esfit_targets = {k: tuple(v) for k, v in targets.items() if k in layout}
        return {"layout": layout, "siblings": siblings, "missing": missing}

    def esfit_set_population(self, spec: dict) -> float:
        """Write the factors of ``spec["members"]`` (slot k+1 gets members[k]) into the LoRA buffers.

        ``spec``: seed, generation (the noise generation), sigma, rank, and per member its pair and
        sign (``pairs``, ``signs``, as :class:`~trainer.noise.Population` lays them out). Slots past
        the members are zeroed. Returns the seconds it took.
        """
        import time

        t0 = time.perf_counter()
        self._esfit_register()  # no-op unless a reload dropped the adapters
        adapters = self._esfit_manager()._adapter_manager
        rank, member_pairs, signs = int(spec["rank"]), list(spec["pairs"]), list(spec["signs"])
        if len(member_pairs) > self._esfit_slots:
            raise ValueError(f"{len(member_pairs)} members for {self._esfit_slots} LoRA slots")
        scale = float(spec["sigma"]) / rank ** 0.5
        index = {slot: adapters.lora_index_to_id.index(slot) for slot in range(1, self._esfit_slots + 1)}
        # per vLLM module: slice -> target name
        by_module: dict[str, dict[int, str]] = {}
        for name, (module, piece) in self._esfit_layout.items():
            by_module.setdefault(module, {})[piece] = name
        pairs = sorted(set(member_pairs))
        with torch.no_grad():
            for module_name, pieces in by_module.items():
                module = adapters.modules[module_name]
                n_slices = len(module.lora_a_stacked)
                drawn = {}  # (pair, target) -> (A (out, r), B (in, r))
                for name in pieces.values():
                    out_f, in_f = self._esfit_targets[name]
                    for j in pairs:
                        drawn[j, name] = pair_factors(spec["seed"], spec["generation"], j, name, out_f, in_f, rank)
                for k, (j, s) in enumerate(zip(member_pairs, signs)):
                    coef = float(s) * scale
                    lora_a: list = [None] * n_slices
                    lora_b: list = [None] * n_slices
                    for piece, name in pieces.items():
                        a, b = drawn[j, name]
                        lora_a[piece], lora_b[piece] = b.T.contiguous(), a * coef
                    if n_slices == 1:
                        module.set_lora(index[k + 1], lora_a[0], lora_b[0])
                    else:
                        module.set_lora(index[k + 1], lora_a, lora_b)
                for k in range(len(member_pairs), self._esfit_slots):
                    module.reset_lora(index[k + 1])
        return time.perf_counter() - t0

    def esfit_clear(self) -> None:
        """Zero every slot: each adapter is the centre model again."""
        adapters = self._esfit_manager()._adapter_manager
        for module_name in {m for m, _ in self._esfit_layout.values()}:
            for slot in range(1, self._esfit_slots + 1):
                adapters.modules[module_name].reset_lora(adapters.lora_index_to_id.index(slot))

    # -- centre weights ------------------------------------------------------------------------
    def esfit_load_weights(self, weights: list[tuple[str, torch.Tensor]] | str) -> float:
        """:func:`load_centre`, then the adapters registered again (vLLM's reload drops them).
        ``weights`` is the list itself (an in-process engine) or the path of a safetensors file
        in RAM-backed storage (an engine in other processes: a list would not survive the RPC)."""
        seconds = load_centre_from(self, weights)
        self._esfit_register()
        return seconds


def load_centre(worker, weights: list[tuple[str, torch.Tensor]]) -> float:
    """Load checkpoint-format ``(name, tensor)`` pairs into ``worker``'s model in place; the layers
    not named keep theirs. Returns seconds.

    On a CPU without tensor parallelism, plain linear layers are refilled directly (siblings
    concatenated in the fused layer's order, then the layer's own repacking), which skips half of
    the generic path's copies; anything else goes through vLLM's ``reload_weights``."""
    import time

    t0 = time.perf_counter()
    if not _refill_cpu_linears(worker.model_runner.model, weights):
        with _quiet("vllm.model_executor.model_loader.reload.layerwise"), \
                _quiet("vllm.model_executor.model_loader.reload.inplace"):
            worker.model_runner.reload_weights(weights_iterator=iter(weights), is_checkpoint_format=True)
    return time.perf_counter() - t0


def load_centre_from(worker, weights: list[tuple[str, torch.Tensor]] | str) -> float:
    """:func:`load_centre` from the list or from a safetensors file (engines in other processes)."""
    if isinstance(weights, str):
        from safetensors.torch import load_file

        weights = list(load_file(weights).items())
    return load_centre(worker, weights)


def _refill_cpu_linears(model, weights: list[tuple[str, torch.Tensor]]) -> bool:
    """The CPU fast path of :func:`load_centre`; False (nothing changed) where it does not apply."""
    from torch import nn
    from vllm.model_executor.layers.linear import UnquantizedLinearMethod
    from vllm.platforms import current_platform

    if not current_platform.is_cpu():
        return False
    packed = dict(getattr(model, "packed_modules_mapping", {}) or {})
    given = dict(weights)
    plan, covered = [], set()
    for name in given:
        module_name, _, param = name.rpartition(".")
        parent, _, leaf = module_name.rpartition(".")
        if param != "weight":
            return False  # biases and the like: the generic path
        fused = next((f for f, children in packed.items() if leaf in children), None)
        children = packed[fused] if fused else [leaf]
        layer_name = f"{parent}.{fused or leaf}" if parent else (fused or leaf)
        if layer_name in covered:
            continue
        covered.add(layer_name)
        names = [f"{parent}.{c}.weight" if parent else f"{c}.weight" for c in children]
        if any(n not in given for n in names):
            return False
        try:
            layer = model.get_submodule(layer_name)
        except AttributeError:
            return False
        base = getattr(layer, "base_layer", layer)
        if getattr(base, "tp_size", 1) != 1 or not isinstance(getattr(base, "quant_method", None),
                                                                UnquantizedLinearMethod):
            return False
        out_f = sum(given[n].shape[0] for n in names)
        if getattr(base, "output_size", out_f) != out_f or getattr(base, "input_size", None) != given[names[0]].shape[1]:
            return False
        plan.append((base, names))
    for base, names in plan:
        dtype = base.params_dtype if hasattr(base, "params_dtype") else given[names[0]].dtype
        fused_weight = torch.cat([given[n] for n in names], dim=0).to(dtype)
        base.weight = nn.Parameter(fused_weight, requires_grad=False)
        base.quant_method.process_weights_after_loading(base)
    return True
