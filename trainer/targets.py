"""Which modules of a causal LM the ES perturbs, and how to read their weights as (out, in).

Targets are named the PEFT way: a list of module-name suffixes (``["q_proj", "v_proj"]``), a regular
expression matched against the full module name, or ``"all-linear"`` (every ``nn.Linear`` and GPT-2
``Conv1D`` except the output head). Both layer types compute ``y = x Wᵀ + b`` with W of shape
(out, in); ``Conv1D`` stores Wᵀ, so the helpers here hide the transpose.

Resolving also names each target's shared-input group from the module structure: sibling layers
that a transformer block feeds one tensor (q/k/v, gate/up) get the same ``input_group``, so the
patched forward pass can form their x B in one product (``trainer.patch``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from torch import nn

try:  # transformers is optional for the trainer's core; without it only nn.Linear is targetable
    from transformers.pytorch_utils import Conv1D
except ImportError:  # pragma: no cover - transformers is a dependency of the train extra
    Conv1D = ()  # type: ignore[assignment,misc]

TargetSpec = str | Sequence[str]
ALL_LINEAR = "all-linear"
# sibling layer names that Hugging Face decoder blocks feed one tensor (the normed hidden state):
# attention projections and the gated MLP's two input projections. A guess from names is enough:
# the patch checks at run time that the siblings really got the same tensor before sharing.
SHARED_INPUT_FAMILIES = (("q_proj", "k_proj", "v_proj"), ("query", "key", "value"), ("gate_proj", "up_proj"),
                         ("w1", "w3"))


@dataclass(frozen=True)
class Target:
    """One perturbed layer: its full module name, the module, and the (out, in) shape of W.

    ``input_group`` is shared by the targets that read the same input tensor (the parent's name and
    the family, e.g. ``"model.layers.0.self_attn:q_proj,k_proj,v_proj"``), None for a lone layer.
    """

    name: str
    module: nn.Module
    out_features: int
    in_features: int
    input_group: str | None = None

    @property
    def transposed(self) -> bool:
        """True for GPT-2 ``Conv1D``, whose ``weight`` holds Wᵀ (in, out)."""
        return is_conv1d(self.module)

    @property
    def weight(self) -> torch.Tensor:
        return self.module.weight


def is_conv1d(module: nn.Module) -> bool:
    return bool(Conv1D) and isinstance(module, Conv1D)


def is_linear_like(module: nn.Module) -> bool:
    """``nn.Linear`` or GPT-2 ``Conv1D``: the layer types the patched forward pass supports."""
    return isinstance(module, nn.Linear) or is_conv1d(module)


def _shape(module: nn.Module) -> tuple[int, int]:
    w = module.weight
    return (w.shape[1], w.shape[0]) if is_conv1d(module) else (w.shape[0], w.shape[1])


def _output_head_names(model: nn.Module) -> set[str]:
    """Names of the modules that produce the logits (excluded by ``all-linear``, as in PEFT)."""
    names = set()
    get_out = getattr(model, "get_output_embeddings", None)
    head = get_out() if callable(get_out) else None
    for name, module in model.named_modules():
        if (head is not None and module is head) or name.split(".")[-1] in ("lm_head", "embed_out", "output"):
            names.add(name)
    return names


def _matches(name: str, spec: TargetSpec) -> bool:
    if isinstance(spec, str):
        return re.fullmatch(spec, name) is not None
    # a list of names matches a module whose name equals, or ends in ".<entry>", an entry (PEFT)
    return any(name == key or name.endswith("." + key) for key in spec)


def resolve_targets(model: nn.Module, target_modules: TargetSpec = ALL_LINEAR) -> list[Target]:
    """The linear layers of ``model`` selected by ``target_modules``, in module order.

    Raises ``ValueError`` naming the available layer names when nothing matches, when a listed
    name matches no linear layer, and when a matched module is not a linear layer (``nn.Linear``
    or ``Conv1D``).
    """
    if isinstance(target_modules, str) and target_modules != ALL_LINEAR:
        try:
            re.compile(target_modules)
        except re.error as exc:
            raise ValueError(
                f"target_modules={target_modules!r} is not a valid regular expression ({exc}); "
                f"pass a list of module names, a regex, or {ALL_LINEAR!r}"
            ) from exc
    heads = _output_head_names(model)
    targets: list[Target] = []
    for name, module in model.named_modules():
        if not name:
            continue
        if target_modules == ALL_LINEAR:
            chosen = is_linear_like(module) and name not in heads
        else:
            chosen = _matches(name, target_modules)
            if chosen and not is_linear_like(module):
                # a regex may sweep over activations and containers; a listed name must be a layer
                if isinstance(target_modules, str) or any(is_linear_like(m) for m in module.modules()):
                    continue
                raise ValueError(
                    f"target_modules={target_modules!r} matched {name!r}, a {type(module).__name__}; "
                    "only nn.Linear and Conv1D layers can be perturbed: name linear layers instead"
                )
        if chosen:
            out_f, in_f = _shape(module)
            targets.append(Target(name, module, out_f, in_f))
    _reject_shared_weights(model, targets)
    available = sorted({n.split(".")[-1] for n, m in model.named_modules() if is_linear_like(m)})
    if not targets:
        raise ValueError(
            f"target_modules={target_modules!r} matched no linear layer of {type(model).__name__}; "
            f"linear layer names in this model: {available} (or use {ALL_LINEAR!r})"
        )
    if not isinstance(target_modules, str):
        # every listed name must select a layer: a typo must not silently train fewer layers
        unmatched = [key for key in target_modules if not any(_matches(t.name, [key]) for t in targets)]
        if unmatched:
            raise ValueError(
                f"target_modules={list(target_modules)!r}: {', '.join(repr(k) for k in unmatched)} matched no linear "
                f"layer of {type(model).__name__}; linear layer names in this model: {available} (fix or remove "
                f"the name, or use {ALL_LINEAR!r})"
            )
    return with_input_groups(targets)


def with_input_groups(targets: Sequence[Target]) -> list[Target]:
    """``targets`` with ``input_group`` set for siblings of one family (``SHARED_INPUT_FAMILIES``)
    under the same parent module, when at least two of them are targets, all of one in_features."""
    members: dict[str, list[int]] = {}
    for i, t in enumerate(targets):
        parent, _, leaf = t.name.rpartition(".")
        family = next((f for f in SHARED_INPUT_FAMILIES if leaf in f), None)
        if family is not None:
            members.setdefault(f"{parent}:{','.join(family)}", []).append(i)
    out = list(targets)
    for group, idx in members.items():
        if len(idx) > 1 and len({targets[i].in_features for i in idx}) == 1:
            for i in idx:
                out[i] = replace(out[i], input_group=group)
    return out


def _reject_shared_weights(model: nn.Module, targets: list[Target]) -> None:
    """A target whose weight another module also uses (tied input/output embeddings) would be
    perturbed only in the target's forward but updated everywhere: refuse it."""
    chosen = {id(t.module) for t in targets}
    for t in targets:
        for name, module in model.named_modules():
            if id(module) not in chosen and any(p is t.weight for p in module.parameters(recurse=False)):
                raise ValueError(
                    f"target {t.name!r} shares its weight with {name!r} (tied embeddings); the ES cannot "
                    f"perturb one without the other: leave {t.name!r} out of target_modules, or untie the "
                    "weights (tie_word_embeddings=False) before training"
                )

