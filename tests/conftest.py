"""Shared fixtures. Tests never need a network and never write next to the shared data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _shared_data_dir() -> Path:
    env = os.environ.get("LEGW_DATA_DIR")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """The real data sets (../shared/data here, LEGW_DATA_DIR in CI). Read-only: never write there."""
    d = _shared_data_dir()
    if not d.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"shared data not found at {d}; set LEGW_DATA_DIR")
        pytest.skip(f"shared data not found at {d}; set LEGW_DATA_DIR")
    return d


@pytest.fixture(autouse=True)
def _no_wandb(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("WANDB_SILENT", "true")
