"""The model registry. `open_registry` gives the one llmci.yaml configures.

Library API for train, eval and deploy: `Registry.resolve(ref)` for a
version's manifest, `Registry.pull(ref, dest)` for its files (verified),
`Registry.read_file(manifest, path)` for one small file.
"""

from __future__ import annotations

from pathlib import Path

from llmci.config import LoadedConfig
from llmci.registry.manifest import Lineage, Manifest
from llmci.registry.registry import STAGES, PublishResult, Ref, Registry, parse_ref
from llmci.registry.store import open_store

__all__ = [
    "STAGES",
    "Lineage",
    "Manifest",
    "PublishResult",
    "Ref",
    "Registry",
    "open_registry",
    "parse_ref",
    "pull_cached",
]


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


def pull_cached(registry: Registry, ref: Ref | str, root: Path) -> tuple[Manifest, Path]:
    """A version's files in `root/.llmci/cache/models/`, pulled (and verified) only the first time.

    The folder is named by version and content digest, so two registries holding
    different models under the same NAME@VERSION never share a folder.
    """
    manifest = registry.resolve(ref)
    folder = root / ".llmci" / "cache" / "models" / f"{manifest.name}-{manifest.version}-{manifest.digest[7:19]}"
    if not folder.exists():
        registry.pull(manifest.ref, folder)
    return manifest, folder
