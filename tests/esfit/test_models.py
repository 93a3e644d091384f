import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from esfit.models import EMBEDDED_MODELS, embedded_model_dir, load_model  # noqa: E402


def test_unknown_name_that_is_not_a_directory_explains_the_rule(tmp_path):
    with pytest.raises(FileNotFoundError, match="never downloads"):
        load_model(tmp_path / "missing")
    with pytest.raises(ValueError, match="known: smollm2"):
        embedded_model_dir("gpt-17")


def test_local_directory_loads_with_left_padding(tmp_path):
    config = transformers.LlamaConfig(
        vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1,
    )
    model = transformers.LlamaForCausalLM(config)
    model.save_pretrained(tmp_path)
    tokenizer_dir = embedded_model_dir("smollm2")  # reuse the real tokenizer files
    transformers.AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(tmp_path)
    loaded, tokenizer = load_model(tmp_path, dtype="bfloat16")
    assert loaded.dtype == torch.bfloat16
    assert tokenizer.padding_side == "left" and tokenizer.pad_token is not None
    with pytest.raises(ValueError, match="dtype must be one of"):
        load_model(tmp_path, dtype="int3")


@pytest.mark.slow
def test_embedded_smollm2_answers_sensibly():
    model, tokenizer = load_model("smollm2")
    assert EMBEDDED_MODELS["smollm2"].gguf_file.endswith(".gguf")
    inputs = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True, return_tensors="pt", return_dict=True,
    )
    out = model.generate(**inputs, max_new_tokens=12, do_sample=False)
    answer = tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "Paris" in answer
