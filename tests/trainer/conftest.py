"""Tiny Llama-style (nn.Linear) and GPT-2-style (Conv1D) models and a character tokenizer."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from trainer.testing import char_tokenizer, tiny_gpt2, tiny_llama  # noqa: E402

MODEL_KINDS = {"llama": tiny_llama, "gpt2": tiny_gpt2}


@pytest.fixture(scope="session")
def tokenizer():
    return char_tokenizer()


@pytest.fixture(params=sorted(MODEL_KINDS))
def tiny_model(request):
    """A fresh tiny model of each kind (function-scoped: tests may change its weights)."""
    return MODEL_KINDS[request.param]()


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest on one thread, and a thread pool spinning on a busy 2-core machine
    makes them several times slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
