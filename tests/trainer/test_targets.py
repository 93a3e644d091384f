import pytest
import torch

from trainer.targets import resolve_targets
from trainer.testing import tiny_gpt2, tiny_llama


def test_all_linear_covers_the_blocks_and_leaves_the_head_out():
    names = [t.name for t in resolve_targets(tiny_llama())]
    assert len(names) == 14 and "lm_head" not in names
    assert names[0] == "model.layers.0.self_attn.q_proj"


def test_gpt2_conv1d_layers_are_targets_with_their_out_in_shape():
    targets = resolve_targets(tiny_gpt2())
    assert [t.name.split(".")[-1] for t in targets[:4]] == ["c_attn", "c_proj", "c_fc", "c_proj"]
    c_attn = targets[0]
    assert c_attn.transposed and (c_attn.out_features, c_attn.in_features) == (96, 32)
    assert c_attn.weight.shape == (32, 96)  # Conv1D stores Wᵀ


def test_peft_style_names_and_regex():
    model = tiny_llama()
    assert len(resolve_targets(model, ["q_proj", "v_proj"])) == 4
    assert len(resolve_targets(model, r".*layers\.1\.mlp\..*")) == 3
    # a regex that also matches containers ("...mlp") keeps only their linear children
    assert len(resolve_targets(model, r".*mlp.*")) == 6
    assert [t.name for t in resolve_targets(model, ["lm_head"])] == ["lm_head"]


def test_no_match_names_the_available_layers():
    with pytest.raises(ValueError, match=r"matched no linear layer.*q_proj"):
        resolve_targets(tiny_llama(), ["query"])
    with pytest.raises(ValueError, match="not a valid regular expression"):
        resolve_targets(tiny_llama(), "(unclosed")


def test_a_non_linear_module_is_refused():
    with pytest.raises(ValueError, match="only nn.Linear and Conv1D"):
        resolve_targets(tiny_llama(), ["input_layernorm"])


def test_a_head_tied_to_the_embeddings_is_refused():
    model = tiny_llama(tie_word_embeddings=True)
    assert model.lm_head.weight is model.model.embed_tokens.weight
    with pytest.raises(ValueError, match="tied embeddings"):
        resolve_targets(model, ["lm_head"])
    assert isinstance(resolve_targets(model)[0].module, torch.nn.Linear)  # all-linear is fine


def test_layers_fed_one_tensor_get_one_input_group_from_the_structure():
    targets = {t.name: t.input_group for t in resolve_targets(tiny_llama())}
    attn, mlp = "model.layers.0.self_attn", "model.layers.0.mlp"
    assert {targets[f"{attn}.{p}"] for p in ("q_proj", "k_proj", "v_proj")} == {f"{attn}:q_proj,k_proj,v_proj"}
    assert targets[f"{mlp}.gate_proj"] == targets[f"{mlp}.up_proj"] == f"{mlp}:gate_proj,up_proj"
    assert targets[f"{attn}.o_proj"] is None and targets[f"{mlp}.down_proj"] is None
    assert targets["model.layers.1.self_attn.q_proj"] != targets[f"{attn}.q_proj"]  # one group per block
    # two of a family are a group; one alone is not; GPT-2's fused c_attn has no siblings to share with
    assert {t.input_group for t in resolve_targets(tiny_llama(), ["q_proj", "v_proj"])} == {
        f"model.layers.{i}.self_attn:q_proj,k_proj,v_proj" for i in (0, 1)}
    assert {t.input_group for t in resolve_targets(tiny_llama(), ["q_proj", "o_proj"])} == {None}
    assert {t.input_group for t in resolve_targets(tiny_gpt2())} == {None}
