"""Getting at a registry: the one llmci.yaml configures, a store by its URI, a verified local copy of a version."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path
from urllib.parse import urlparse

from llmci.config import LoadedConfig
from llmci.errors import IntegrityError, UsageError
from llmci.fsutil import cache_dir, hash_cache
from llmci.registry.file_store import FileStore
from llmci.registry.manifest import Manifest, check_folder
from llmci.registry.store import Store
from llmci.registry.versions import DestinationTaken, Ref, Registry


def open_registry(
    loaded: LoadedConfig, uri: str | None = None, *, progress: bool | None = None, cache: Path | None = None
) -> Registry:
    """The registry at `uri`, else llmci.yaml's `registry.uri` (file:// paths relative to llmci.yaml).

    File hashes are cached in `cache` (default `fsutil.cache_dir`: outside the checkout in Actions).
    """
    settings = loaded.config.registry
    store = open_store(uri or settings.uri, root=loaded.root, endpoint_url=settings.endpoint_url)
    return Registry(store, hash_cache=hash_cache(loaded.root, cache), progress=progress)


def open_store(uri: str, *, root: Path | None = None, endpoint_url: str | None = None) -> Store:
    """The store for `file://PATH` (relative to `root`) or `s3://bucket/prefix`."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        path = Path(parsed.netloc + parsed.path) if parsed.netloc not in ("", "localhost") else Path(parsed.path)
        if not path.is_absolute():
            path = (root or Path.cwd()) / path
        return FileStore(path)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise UsageError(f"registry URI '{uri}' names no bucket", hint="use s3://BUCKET/PREFIX")
        from llmci.registry.s3 import S3Store

        return S3Store(parsed.netloc, parsed.path.strip("/"), endpoint_url=endpoint_url)
    raise UsageError(f"registry URI '{uri}' must start with file:// or s3://")


def default_actor() -> str:
    """Who is acting: the GitHub actor in Actions, else the local user."""
    import getpass
    import os

    return os.environ.get("GITHUB_ACTOR") or getpass.getuser()


def pull_cached(registry: Registry, ref: Ref | str, root: Path, cache: Path | None = None) -> tuple[Manifest, Path]:
    """A version's files in the cache's `models/` folder, pulled (and verified) only the first time.

    `cache` is the cache folder (default `fsutil.cache_dir(root)`). The folder
    is named by version and content digest, so two registries holding
    different models under the same NAME@VERSION never share a folder. Before
    each reuse it is checked against the manifest (no file missing, added or
    changed: a stat per file, and a re-hash of any file whose stat changed
    since it was last hashed); one that does not match is pulled again. Of two
    jobs pulling it at once, the second uses the first one's folder.
    """
    from llmci import gha

    manifest = registry.resolve(ref)
    base = cache or cache_dir(root)
    folder = base / "models" / f"{manifest.name}-{manifest.version}-{manifest.digest[7:19]}"
    hashes = hash_cache(root, base)
    if folder.exists():
        problem = check_folder(folder, manifest, hashes)
        if problem is None:
            return manifest, folder
        gha.warning(f"cached {manifest.ref} in {folder}: {problem}; pulling it again")
        _discard(folder)
    try:
        registry.pull(manifest, folder)
    except DestinationTaken:
        # Another job pulled it in the meantime: use theirs, once it is checked like any reuse.
        problem = check_folder(folder, manifest, hashes)
        if problem is not None:
            raise IntegrityError(
                f"cached {manifest.ref} in {folder}: {problem}", hint="delete the folder and re-run"
            ) from None
    return manifest, folder


def _discard(folder: Path) -> None:
    """Remove a folder that must not be used, first moving it out of the way so no reader sees it half-deleted."""
    aside = Path(tempfile.mkdtemp(prefix=f".{folder.name}.discard-", dir=folder.parent))
    with contextlib.suppress(FileNotFoundError):  # another job discarded it already
        folder.rename(aside / folder.name)
    shutil.rmtree(aside, ignore_errors=True)
