"""The serving application `llmci deploy` puts on Ray Serve.

* `protocol`: the OpenAI-compatible requests and answers (no Ray, no torch);
* `generator`: a registry version loaded with transformers, generating in batches;
* `routing`: which version answers a request (weights, sticky users, pins) and the traffic counters;
* `app`: the Ray Serve deployments (a router per environment, one application per
  model version) and the builders a Serve config's `import_path` names.
"""
