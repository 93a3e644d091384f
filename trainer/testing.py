"""Tiny, randomly initialised causal LMs and a character tokenizer, built offline from a config.

For tests and examples that need a real Hugging Face model but not a trained one: a Llama-style
model (``nn.Linear`` layers) and a GPT-2-style model (``Conv1D`` layers) of a few thousand
parameters, and a character-level fast tokenizer with a chat template. Nothing is downloaded.
"""

from __future__ import annotations

import string

import torch

CHARS = string.ascii_lowercase + string.digits + " .,!?<>/-"
SPECIAL = ["<pad>", "<s>", "</s>", "<unk>"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}</{{ m['role'] }}>{% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}"
)


def char_tokenizer(*, chat_template: bool = True):
    """A character-level ``PreTrainedTokenizerFast`` (pad 0, bos 1, eos 2, unk 3)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIAL + list(CHARS))}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    backend.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    if chat_template:
        tok.chat_template = CHAT_TEMPLATE
    return tok


def tiny_llama(*, vocab_size: int = len(SPECIAL) + len(CHARS), seed: int = 0, **overrides):
    """A 2-layer Llama-style causal LM (q/k/v/o and gate/up/down ``nn.Linear``), fp32, eval mode."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = dict(
        vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        pad_token_id=0, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False,
    )
    cfg.update(overrides)
    torch.manual_seed(seed)
    return LlamaForCausalLM(LlamaConfig(**cfg)).eval()


def tiny_gpt2(*, vocab_size: int = len(SPECIAL) + len(CHARS), seed: int = 0, **overrides):
    """A 2-layer GPT-2-style causal LM (``Conv1D`` c_attn/c_proj/c_fc), fp32, eval mode."""
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = dict(
        vocab_size=vocab_size, n_embd=32, n_layer=2, n_head=4, n_positions=256,
        pad_token_id=0, bos_token_id=1, eos_token_id=2,
    )
    cfg.update(overrides)
    torch.manual_seed(seed)
    return GPT2LMHeadModel(GPT2Config(**cfg)).eval()
