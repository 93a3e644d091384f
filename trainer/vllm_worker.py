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
        fast = self.esfit_fast_lora(True)
        return {"layout": layout, "siblings": siblings, "missing": missing, "fast_lora": fast}

    def esfit_fast_lora(self, on: bool = True) -> bool:
        """Use (or stop using) :mod:`trainer.vllm_cpu_lora`'s product for the LoRA term on vLLM's
        CPU engine; whether it is in use (False elsewhere: GPUs have vLLM's own kernels)."""
        from trainer import vllm_cpu_lora

        wrappers = {id(w): w for w in self._esfit_manager()._adapter_manager.punica_wrapper_mapping.values()}
        used = False
        for wrapper in wrappers.values():
            used |= vllm_cpu_lora.install(wrapper) if on else vllm_cpu_lora.uninstall(wrapper)
        return used

    def esfit_set_population(self, spec: dict) -> float:
        """Write the factors of ``spec["members"]`` (slot k+1 gets members[k]) into the LoRA buffers.

        ``spec``: seed, generation (the noise generation), sigma, rank, and per member its pair and
        sign (``pairs``, ``signs``, as :class:`~trainer.noise.Population` lays them out); optionally
        ``factors``, the population's own ``{target: (A (pairs, out, r), B (pairs, in, r))}`` (an
        in-process engine: the very tensors the HF path multiplies with, so nothing is drawn twice);
        else the factors are regenerated here from the seeds. Slots past the members are zeroed.
        Returns the seconds it took.
        """
        import time

        t0 = time.perf_counter()
        self._esfit_register()  # no-op unless a reload dropped the adapters
        adapters = self._esfit_manager()._adapter_manager
        rank, member_pairs, signs = int(spec["rank"]), list(spec["pairs"]), list(spec["signs"])
        if len(member_pairs) > self._esfit_slots:
            raise ValueError(f"{len(member_pairs)} members for {self._esfit_slots} LoRA slots")
        scale = float(spec["sigma"]) / rank ** 0.5
        rows = [adapters.lora_index_to_id.index(slot) for slot in range(1, self._esfit_slots + 1)]
        by_module: dict[str, dict[int, str]] = {}  # vLLM module -> slice -> target name
        for name, (module, piece) in self._esfit_layout.items():
            by_module.setdefault(module, {})[piece] = name
        factors = spec.get("factors") or self._esfit_draw(spec, rank)
        m = len(member_pairs)
        pairs = torch.as_tensor(member_pairs, dtype=torch.long)
        coef = (torch.as_tensor(signs, dtype=torch.float32) * scale).view(-1, 1, 1)  # (m, 1, 1)
        used = _rows(rows[:m])  # the buffers' rows of slots 1..m: a slice where they are contiguous
        all_rows, unused = torch.as_tensor(rows), torch.as_tensor(rows[m:], dtype=torch.long)
        with torch.no_grad():
            for module_name, pieces in by_module.items():
                module = adapters.modules[module_name]
                if not _plain_buffers(module, pieces, self._esfit_targets):
                    _write_with_set_lora(module, pieces, factors, member_pairs, signs, scale, rows)
                    continue
                for piece in range(len(module.lora_a_stacked)):
                    lora_a, lora_b = module.lora_a_stacked[piece], module.lora_b_stacked[piece]  # (L,1,R,in), (L,1,out,R)
                    name = pieces.get(piece)
                    if name is None:  # a sibling that is not a target: no term
                        lora_a.index_fill_(0, all_rows, 0)
                        lora_b.index_fill_(0, all_rows, 0)
                        continue
                    a, b = factors[name]  # (pairs, out, r), (pairs, in, r)
                    out_f, in_f = a.shape[1], b.shape[1]
                    # one copy per buffer: every member's rows at once (lora_B = s_i σ/√r A_j, lora_A = B_jᵀ)
                    _put(lora_b, used, (a[pairs] * coef).to(lora_b.dtype), out_f, rank)
                    _put(lora_a, used, b[pairs].transpose(1, 2).to(lora_a.dtype), rank, in_f)
                    if unused.numel():
                        lora_a.index_fill_(0, unused, 0)
                        lora_b.index_fill_(0, unused, 0)
        return time.perf_counter() - t0

    def _esfit_draw(self, spec: dict, rank: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """The factors of the pairs ``spec`` uses, regenerated from the seeds as the HF path draws
        them (:func:`trainer.noise.pair_factors`): ``{target: (A (n, out, r), B (n, in, r))}`` over
        pairs 0..n−1, n = the largest pair used + 1 (unused pairs are left zero, never read)."""
        n = max(spec["pairs"], default=-1) + 1
        used = sorted(set(spec["pairs"]))
        out = {}
        for name, (out_f, in_f) in self._esfit_targets.items():
            a, b = torch.zeros(n, out_f, rank), torch.zeros(n, in_f, rank)
            for j in used:
                a[j], b[j] = pair_factors(spec["seed"], spec["generation"], j, name, out_f, in_f, rank)
            out[name] = (a, b)
        return out

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


def _rows(rows: list[int]) -> slice | torch.Tensor:
    """Buffer rows as a slice where they are consecutive (a view: the copy goes straight in), else
    an index tensor."""
    if rows and rows == list(range(rows[0], rows[0] + len(rows))):
        return slice(rows[0], rows[0] + len(rows))
    return torch.as_tensor(rows, dtype=torch.long)


def _put(buffer: torch.Tensor, rows: slice | torch.Tensor, values: torch.Tensor, height: int, width: int) -> None:
    """``buffer[rows, 0, :height, :width] = values`` (m, height, width) and zeros in the rest of those
    rows (the padding of a rank vLLM rounds up), in one copy where ``rows`` is a slice."""
    if isinstance(rows, slice):
        if rows.stop == rows.start:
            return
        view = buffer[rows, 0]
        if height < view.shape[1] or width < view.shape[2]:
            view.zero_()
        view[:, :height, :width].copy_(values)
    elif rows.numel():
        full = buffer.new_zeros((rows.numel(), *buffer.shape[2:]))
        full[:, :height, :width] = values
        buffer[rows, 0] = full


def _plain_buffers(module, pieces: dict[int, str], targets: dict[str, tuple[int, int]]) -> bool:
    """The module's LoRA buffers hold its targets whole (no tensor parallel split): esfit may write
    them directly, else the layer's own ``set_lora`` splits them."""
    if getattr(module, "tp_size", 1) != 1 or len(module.lora_a_stacked) != len(module.lora_b_stacked):
        return False
    for piece, name in pieces.items():
        out_f, in_f = targets[name]
        a, b = module.lora_a_stacked[piece], module.lora_b_stacked[piece]
        if a.dim() != 4 or b.dim() != 4 or a.shape[3] != in_f or b.shape[2] != out_f:
            return False
    return True


def _write_with_set_lora(module, pieces: dict[int, str], factors, member_pairs, signs, scale: float,
                         rows: list[int]) -> None:
    """The general path: each member through the layer's ``set_lora`` (which splits the factors for
    tensor parallelism); slots past the members reset."""
    n_slices = len(module.lora_a_stacked)
    for k, (j, s) in enumerate(zip(member_pairs, signs)):
        coef = float(s) * scale
        lora_a: list = [None] * n_slices
        lora_b: list = [None] * n_slices
        for piece, name in pieces.items():
            a, b = factors[name]
            lora_a[piece], lora_b[piece] = b[j].T.contiguous(), a[j] * coef
        if n_slices == 1:
            module.set_lora(rows[k], lora_a[0], lora_b[0])
        else:
            module.set_lora(rows[k], lora_a, lora_b)
    for k in range(len(member_pairs), len(rows)):
        module.reset_lora(rows[k])


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
    # The CPU GEMMs pack a copy of the weight they are given (oneDNN's handle, the AMX packing) and
    # drop the tensor, so a layer of one checkpoint tensor gets the HF tensor itself and a fused one a
    # scratch buffer reused from layer to layer: no fresh allocation per layer (its page faults cost
    # as much as the copy). AMD's zentorch path may keep the tensor it is given: a copy of its own there.
    borrow = not (hasattr(current_platform, "is_zen_cpu") and current_platform.is_zen_cpu())
    scratch: torch.Tensor | None = None
    for base, names in plan:
        dtype = base.params_dtype if hasattr(base, "params_dtype") else given[names[0]].dtype
        parts = [given[n] for n in names]
        if not borrow:
            weight = torch.cat(parts, dim=0).to(dtype)
        elif len(parts) == 1 and parts[0].dtype == dtype and parts[0].is_contiguous():
            weight = parts[0].detach()
        else:
            shape = (sum(t.shape[0] for t in parts), parts[0].shape[1])
            if scratch is None or scratch.dtype != dtype or scratch.numel() < shape[0] * shape[1]:
                scratch = torch.empty(shape[0] * shape[1], dtype=dtype)
            weight = scratch[: shape[0] * shape[1]].view(shape)
            torch.cat([t.to(dtype) for t in parts], dim=0, out=weight)
        base.weight = nn.Parameter(weight, requires_grad=False)
        base.quant_method.process_weights_after_loading(base)
        if borrow and base.weight.numel():  # this layer kept the tensor (no packing): its own copy
            base.weight = nn.Parameter(base.weight.detach().clone(), requires_grad=False)
    return True
