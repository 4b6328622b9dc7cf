"""Prompt-template linting: parse (never render) Jinja2 templates and report findings."""
