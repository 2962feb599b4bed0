"""Shared fixtures.  `shared_data` is the project's real data folder (../shared/data)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO / ".." / "shared" / "data").resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path to ../shared/data; in CI it must exist, elsewhere its absence skips the test."""
    if not SHARED_DATA.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"real data folder {SHARED_DATA} is missing in CI")
        pytest.skip(f"real data folder {SHARED_DATA} is absent on this machine")
    return SHARED_DATA


def pytest_configure(config):
    """Parallel test workers (pytest-xdist) share the cores: one torch thread each, since
    oversubscribed OpenMP threads spin waiting for each other."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)
