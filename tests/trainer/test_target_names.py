"""A listed target_modules name that matches no layer is an error naming the layers (issue 13)."""

from __future__ import annotations

import pytest

from trainer.targets import resolve_targets
from trainer.testing import tiny_gpt2, tiny_llama


def test_a_listed_name_that_matches_nothing_is_an_error_listing_the_layers():
    with pytest.raises(ValueError, match=r"'nonexistent' matched no linear layer of LlamaForCausalLM.*'k_proj'"):
        resolve_targets(tiny_llama(), ["q_proj", "nonexistent"])
    # a container name selects no linear layer itself: also an error, not a silent no-op
    with pytest.raises(ValueError, match="'self_attn' matched no linear layer"):
        resolve_targets(tiny_llama(), ["q_proj", "self_attn"])


def test_names_that_all_match_resolve():
    names = [t.name for t in resolve_targets(tiny_llama(), ["q_proj", "model.layers.1.mlp.up_proj"])]
    assert names == ["model.layers.0.self_attn.q_proj", "model.layers.1.self_attn.q_proj", "model.layers.1.mlp.up_proj"]
    assert len(resolve_targets(tiny_gpt2(), ["c_attn", "c_fc"])) == 4
