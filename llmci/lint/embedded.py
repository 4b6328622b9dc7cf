"""Chat templates shipped inside a model: where they are and how to read them out.

A model carries its chat template(s) in one of these places (transformers and
llama.cpp write them; apply_chat_template and GGUF runtimes read them):

* `tokenizer_config.json`, key `chat_template`: a string, or a list of
  `{"name": ..., "template": ...}` (the default and named templates such as
  `tool_use` or `rag`);
* `chat_template.jinja` (the default) and `additional_chat_templates/NAME.jinja`;
* `chat_template.json` (processors), key `chat_template`;
* a GGUF file's metadata: `tokenizer.chat_template` and
  `tokenizer.chat_template.NAME` (read with the `gguf` package: `llmci[gguf]`).

Templates are read, never rendered.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from llmci.errors import InputError, UsageError, first_line

if TYPE_CHECKING:
    from llmci.registry import Manifest, Registry

TOKENIZER_CONFIG = "tokenizer_config.json"
TEMPLATE_FILE = "chat_template.jinja"
PROCESSOR_TEMPLATE = "chat_template.json"
ADDITIONAL_TEMPLATES = "additional_chat_templates"
JSON_FILES = (TOKENIZER_CONFIG, PROCESSOR_TEMPLATE)
#: Files only a saved model has (beside its chat template).
MODEL_FILES = {"config.json", "tokenizer.json", "generation_config.json", ADDITIONAL_TEMPLATES}


@dataclass(frozen=True)
class EmbeddedTemplate:
    """One chat template of a model: `display` names it in findings (`DIR/tokenizer_config.json#chat_template`)."""

    display: str
    source: bytes


def is_template_file(path: str) -> bool:
    """Whether a model file (its '/'-separated path inside the model folder) can hold chat templates."""
    parts = PurePosixPath(path).parts
    if len(parts) == 1:
        return parts[0] in (*JSON_FILES, TEMPLATE_FILE) or parts[0].endswith(".gguf")
    return len(parts) == 2 and parts[0] == ADDITIONAL_TEMPLATES and parts[1].endswith(".jinja")


def is_model_folder(folder: Path) -> bool:
    """A folder a model was saved in: a tokenizer or processor config, a GGUF file, or a chat template
    next to the model's own files (a `chat_template.jinja` alone may be any project's template)."""
    names = {path.name for path in folder.iterdir()}
    if names & set(JSON_FILES) or any(name.endswith(".gguf") for name in names):
        return True
    return TEMPLATE_FILE in names and bool(names & MODEL_FILES)


def folder_files(folder: Path) -> list[str]:
    """The template-holding files of a model folder, as paths inside it, in a stable order."""
    found = [path.name for path in folder.iterdir() if path.is_file() and is_template_file(path.name)]
    extra = folder / ADDITIONAL_TEMPLATES
    if extra.is_dir():
        found += [f"{ADDITIONAL_TEMPLATES}/{path.name}" for path in extra.glob("*.jinja") if path.is_file()]
    return sorted(found)


def file_templates(
    name: str, display: str, data: bytes | None = None, path: Path | None = None
) -> list[EmbeddedTemplate]:
    """The chat templates in one model file, from its bytes (`data`) or, for GGUF, its `path`."""
    if name.endswith(".gguf"):
        assert path is not None, "GGUF metadata is read from a file"
        return gguf_templates(path, display)
    if data is None:
        assert path is not None
        data = path.read_bytes()
    if name.endswith(".jinja"):
        return [EmbeddedTemplate(display, data)]
    return json_templates(data, display)


def json_templates(data: bytes, display: str) -> list[EmbeddedTemplate]:
    """`chat_template` of tokenizer_config.json or chat_template.json: a string, a named list, or a mapping."""
    try:
        config = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{display}: not valid JSON: {first_line(exc)}", hint="check the model's files") from None
    value = config.get("chat_template") if isinstance(config, dict) else None
    if value is None:
        return []
    if isinstance(value, str):
        return [EmbeddedTemplate(f"{display}#chat_template", value.encode("utf-8"))]
    named: list[tuple[object, object]] = []
    if isinstance(value, list):
        named = [(item.get("name"), item.get("template")) for item in value if isinstance(item, dict)]
        if len(named) != len(value):
            named.append((None, None))  # an item that is not {name, template}: refused below
    elif isinstance(value, dict):
        named = list(value.items())
    if not named or not all(isinstance(name, str) and isinstance(text, str) for name, text in named):
        raise InputError(
            f"{display}: chat_template is neither a string nor a list of {{name, template}} strings",
            hint="check the model's files",
        )
    return [EmbeddedTemplate(f"{display}#chat_template/{name}", text.encode("utf-8")) for name, text in named]  # type: ignore[union-attr]


def gguf_templates(path: Path, display: str) -> list[EmbeddedTemplate]:
    """`tokenizer.chat_template` and `tokenizer.chat_template.NAME` of a GGUF file's metadata."""
    try:
        from gguf import GGUFReader
    except ImportError:
        raise UsageError(
            f"{display}: reading GGUF metadata needs the gguf package", hint="pip install 'llmci[gguf]'"
        ) from None
    try:
        # Memory-maps the file: the header and metadata are read, the tensors are not.
        fields = GGUFReader(path, "r").fields
        found = {
            key: field.contents()
            for key, field in fields.items()
            if key == "tokenizer.chat_template" or key.startswith("tokenizer.chat_template.")
        }
    except Exception as exc:  # a hostile or damaged file can fail the reader anywhere: one line, not a traceback
        raise InputError(f"{display}: not a readable GGUF file: {first_line(exc)}") from None
    templates = []
    for key, value in sorted(found.items()):
        if not isinstance(value, str):
            raise InputError(f"{display}: metadata {key} is not a string")
        templates.append(EmbeddedTemplate(f"{display}#{key}", value.encode("utf-8")))
    return templates


def registry_templates(registry: Registry, manifest: Manifest) -> list[EmbeddedTemplate]:
    """The chat templates of a version: small files read whole; GGUF files pulled to read their metadata."""
    from llmci.registry.manifest import Manifest, content_digest

    prefix = f"registry:{manifest.ref}"
    templates: list[EmbeddedTemplate] = []
    ggufs = []
    for entry in sorted(manifest.files, key=lambda e: e.path):
        if not is_template_file(entry.path):
            continue
        if entry.path.endswith(".gguf"):
            ggufs.append(entry)
        else:
            templates += file_templates(entry.path, f"{prefix}/{entry.path}", registry.read_file(manifest, entry.path))
    if ggufs:
        # The GGUF reader needs a file: a pull of just those files, verified like any pull.
        part = Manifest(
            name=manifest.name,
            version=manifest.version,
            digest=content_digest(ggufs),
            created_at=manifest.created_at,
            files=ggufs,
            size=sum(entry.size for entry in ggufs),
        )
        with tempfile.TemporaryDirectory(prefix="llmci-gguf-") as tmp:
            folder = Path(tmp) / "model"
            registry.pull(part, folder)
            for entry in ggufs:
                templates += file_templates(entry.path, f"{prefix}/{entry.path}", path=folder / entry.path)
    return templates
