"""The model registry. `open_registry` gives the one llmci.yaml configures.

Library API for train, eval and deploy: `Registry.resolve(ref)` for a
version's manifest, `Registry.pull(ref, dest)` for its files (verified),
`Registry.read_file(manifest, path)` for one small file, `pull_cached` for a
verified local copy that later runs reuse. `open_store` opens a `Store` by
its URI (`file://` or `s3://`); `parse_ref` reads `NAME@VERSION` (or
`NAME@STAGE`, one of `STAGES`) into a `Ref`; a version's `Manifest` lists its
files and `Lineage`; `default_actor` is who a change is recorded as.

The names are loaded on first use: importing this package imports neither
pydantic nor boto3 (`llmci --help` starts as fast as click).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmci.lazy import exports

if TYPE_CHECKING:
    from llmci.registry.access import default_actor, open_registry, open_store, pull_cached
    from llmci.registry.manifest import Lineage, Manifest
    from llmci.registry.store import Store
    from llmci.registry.versions import STAGES, PublishResult, Ref, Registry, parse_ref

_WHERE = {
    "default_actor": "access",
    "open_registry": "access",
    "open_store": "access",
    "pull_cached": "access",
    "Lineage": "manifest",
    "Manifest": "manifest",
    "Store": "store",
    "STAGES": "versions",
    "PublishResult": "versions",
    "Ref": "versions",
    "Registry": "versions",
    "parse_ref": "versions",
}

__all__ = [
    "STAGES",
    "Lineage",
    "Manifest",
    "PublishResult",
    "Ref",
    "Registry",
    "Store",
    "default_actor",
    "open_registry",
    "open_store",
    "parse_ref",
    "pull_cached",
]


__getattr__, __dir__ = exports(__name__, _WHERE)
