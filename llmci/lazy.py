"""Stage packages that name their public API without importing it.

Each stage's `__init__.py` maps its names to the submodules that define them
and calls `exports`: a name is imported on first use, so `import llmci.eval`
(and `llmci --help`) loads neither pandas, torch nor Ray. The same idea as
SPEC 1 / `lazy_loader.attach`, in the few lines llmci needs.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping


def exports(package: str, where: Mapping[str, str]) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """The package's module-level `__getattr__` and `__dir__` for `where` (name -> submodule)."""

    def __getattr__(name: str) -> object:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{module}"), name)

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *where})

    return __getattr__, __dir__
