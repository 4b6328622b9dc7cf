"""The model registry. `open_registry` gives the one llmci.yaml configures.

Library API for train, eval and deploy: `Registry.resolve(ref)` for a
version's manifest, `Registry.pull(ref, dest)` for its files (verified),
`Registry.read_file(manifest, path)` for one small file.
"""

from __future__ import annotations

from llmci.config import LoadedConfig
from llmci.registry.manifest import Lineage, Manifest
from llmci.registry.registry import STAGES, PublishResult, Ref, Registry, parse_ref
from llmci.registry.store import open_store

__all__ = ["STAGES", "Lineage", "Manifest", "PublishResult", "Ref", "Registry", "open_registry", "parse_ref"]


def open_registry(loaded: LoadedConfig, uri: str | None = None, *, progress: bool | None = None) -> Registry:
    """The registry at `uri`, else llmci.yaml's `registry.uri` (file:// paths relative to llmci.yaml)."""
    settings = loaded.config.registry
    store = open_store(uri or settings.uri, root=loaded.root, endpoint_url=settings.endpoint_url)
    cache = loaded.root / ".llmci" / "cache" / "file-hashes.json"
    return Registry(store, hash_cache=cache, progress=progress)


def default_actor() -> str:
    """Who is acting: the GitHub actor in Actions, else the local user."""
    import getpass
    import os

    return os.environ.get("GITHUB_ACTOR") or getpass.getuser()
