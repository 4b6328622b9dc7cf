"""The serving application `llmci deploy` puts on Ray Serve.

* `protocol`: the OpenAI-compatible requests and answers (no Ray, no torch):
  `parse` turns a request body into a `GenerationRequest` (or a `RequestError`),
  an `Answer` is what goes back;
* `generator`: a registry version loaded with transformers, generating in batches
  (`Generator`; `PROMPT_FILE` is the prompt template a version carries);
* `routing`: which version answers a request (`choose`, by the `RouterConfig`'s
  weights, sticky users and pins) and the traffic `Counts`;
* `batching`: the router's `Batcher`, sending a version its requests in batches
  that grow with the load (one Ray call per batch);
* `recording`: what the router keeps of each request (`Recorder`, one `RecordedRequest` each);
* `app`: the Ray Serve deployments (a router per environment, one application per
  model version) and the builders a Serve config's `import_path` names
  (`llmci.serve.app:build_router`, `llmci.serve.app:build_model`).

The names are loaded on first use: importing this package imports neither
Ray nor torch, and Ray Serve imports `llmci.serve.app` by its path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmci.lazy import exports

if TYPE_CHECKING:
    from llmci.serve.app import build_model, build_router
    from llmci.serve.batching import Batcher
    from llmci.serve.generator import PROMPT_FILE, Generator
    from llmci.serve.protocol import Answer, GenerationRequest, RequestError, parse
    from llmci.serve.recording import RecordedRequest, Recorder
    from llmci.serve.routing import Counts, RouterConfig, choose

_WHERE = {
    "build_model": "app",
    "build_router": "app",
    "Batcher": "batching",
    "PROMPT_FILE": "generator",
    "Generator": "generator",
    "Answer": "protocol",
    "GenerationRequest": "protocol",
    "RequestError": "protocol",
    "parse": "protocol",
    "RecordedRequest": "recording",
    "Recorder": "recording",
    "Counts": "routing",
    "RouterConfig": "routing",
    "choose": "routing",
}

__all__ = [
    "PROMPT_FILE",
    "Answer",
    "Batcher",
    "Counts",
    "GenerationRequest",
    "Generator",
    "RecordedRequest",
    "Recorder",
    "RequestError",
    "RouterConfig",
    "build_model",
    "build_router",
    "choose",
    "parse",
]


__getattr__, __dir__ = exports(__name__, _WHERE)
