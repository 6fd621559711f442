"""Shared test setup: offline hub, deterministic torch threads, shared-data location."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only real Amazon files; skip the test when they are not present."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real Amazon files not found at {SHARED_DATA} (../shared/data is absent)")
    return SHARED_DATA
