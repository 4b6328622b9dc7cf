"""llmci: LLMOps for GitHub Actions."""

# A literal, not importlib.metadata: `llmci --help` must start as fast as click.
__version__ = "0.1.0"
