"""Shared fixtures. Real public data lives in ../shared/data beside the checkout; tests that need
it skip cleanly when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("ESFIT_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The ../shared/data folder; skips the test when it is not there."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"public data not found at {SHARED_DATA} (set ESFIT_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture
def one_thread():
    """Run a test with one torch thread, restoring the count afterwards: tiny models run fastest
    on one thread, and training runs set the count themselves."""
    import torch  # here, not at the top: collecting the torch-free packages' tests must not load it

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
