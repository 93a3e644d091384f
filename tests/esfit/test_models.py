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


# --- folders that must not load (issue 13) -------------------------------------------------------

@pytest.fixture
def tiny_folder(tmp_path):
    from trainer.testing import char_tokenizer, tiny_llama

    folder = tmp_path / "model"
    tiny_llama().save_pretrained(folder)
    char_tokenizer().save_pretrained(folder)
    return folder


def test_a_folder_without_weights_or_config_is_one_clear_error(tiny_folder):
    from esfit.models import ModelError

    (tiny_folder / "model.safetensors").unlink()
    with pytest.raises(ModelError, match=rf"model {tiny_folder}: the folder has a config.json but no weights"):
        load_model(tiny_folder)
    (tiny_folder / "config.json").unlink()
    with pytest.raises(ModelError, match="no config.json, so this is not a model folder"):
        load_model(tiny_folder)


def test_a_truncated_safetensors_file_is_named(tiny_folder):
    from esfit.models import ModelError

    weights = tiny_folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ModelError, match=rf"model {tiny_folder}: model.safetensors is damaged: it is truncated"):
        load_model(tiny_folder)


def test_a_model_that_is_not_a_causal_lm_is_refused_naming_the_missing_weights(tmp_path):
    from esfit.models import ModelError
    from trainer.testing import char_tokenizer

    bert = tmp_path / "bert"
    transformers.BertModel(transformers.BertConfig(vocab_size=49, hidden_size=16, num_hidden_layers=1,
                                                   num_attention_heads=2, intermediate_size=16)).save_pretrained(bert)
    char_tokenizer().save_pretrained(bert)
    with pytest.raises(ModelError, match=r"weights do not cover the LM head.*cls\.predictions\.") as info:
        load_model(bert)
    assert str(bert) in str(info.value) and "random" in str(info.value)


@pytest.mark.parametrize("kind", ["gpt2", "tied"])
def test_causal_lms_with_tied_or_conv1d_heads_still_load(tmp_path, kind):
    from trainer.testing import char_tokenizer, tiny_gpt2, tiny_llama

    model = tiny_gpt2() if kind == "gpt2" else tiny_llama(tie_word_embeddings=True)
    model.save_pretrained(tmp_path / kind)
    char_tokenizer().save_pretrained(tmp_path / kind)
    loaded, _ = load_model(tmp_path / kind)
    assert type(loaded) is type(model)


def test_check_device_says_what_the_machine_lacks(monkeypatch):
    from esfit.models import check_device

    assert check_device("cpu") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"device 'cuda': CUDA is not available on this machine.*--device cpu"):
        check_device("cuda", option="device")
    with pytest.raises(ValueError, match="'bogus' is not a torch device"):
        check_device("bogus")
