"""llmci: LLMOps for GitHub Actions."""

# A literal, not importlib.metadata: `llmci --help` must start as fast as click.
__version__ = "0.1.0"

import os as _os

# DeepEval phones home unless this is set before it is imported; a CI tool
# sends nothing anywhere it was not asked to.
_os.environ.setdefault("DEEPEVAL_TELEMETRY_OPT_OUT", "1")
