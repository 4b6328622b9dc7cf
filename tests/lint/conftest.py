from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def cache_key_file(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own lint-cache key (created on first use), not the one in the user's home."""
    path = tmp_path_factory.mktemp("key") / "cache-key"
    monkeypatch.setenv("LLMCI_CACHE_KEY_FILE", str(path))
    return path
