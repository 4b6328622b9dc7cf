"""Lint speed against its baseline, measured in the same run.

1. Linting 2,000 templates vs only parsing them (read + `Environment.parse` with
   one shared environment). Target: ratio <= 1.5.
2. Re-linting the unchanged tree with the content-hash cache vs the first, cold
   run. Target: speed-up >= 10.

The templates are the real corpus vendored in tests/data/prompt-templates, copied
round-robin to 2,000 files, each made unique.

    .venv/bin/python benchmarks/bench_lint.py
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

from llmci.config import load_config
from llmci.lint.engine import Linter
from llmci.templating import make_environment

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "tests" / "data" / "prompt-templates"
N_TEMPLATES = 2000
REPEATS = 5


def build_tree(root: Path) -> list[tuple[Path, str]]:
    inputs = yaml.safe_load((CORPUS / "inputs.yaml").read_text())
    sources: list[tuple[str, str, str]] = []  # (kind, text, variables-key)
    for pattern, _ in inputs.items():
        for path in sorted(CORPUS.glob(pattern)):
            kind = "chat-template" if "chat-templates" in pattern else "prompt"
            sources.append((kind, path.read_text(), pattern))
    entries = []
    files: list[tuple[Path, str]] = []
    for index in range(N_TEMPLATES):
        kind, text, pattern = sources[index % len(sources)]
        folder = "chat" if kind == "chat-template" else "prompts"
        path = root / folder / f"t{index:04d}.jinja"
        path.parent.mkdir(exist_ok=True)
        path.write_text(f"{{# copy {index} #}}\n{text}")
        files.append((path, kind))
    entries.append({"path": "chat/*.jinja", "kind": "chat-template", "variables": inputs["chat-templates/*.jinja"]})
    prompt_inputs = sorted({name for key, names in inputs.items() if key.startswith("promptflow") for name in names})
    entries.append({"path": "prompts/*.jinja", "variables": prompt_inputs, "rules": {"unused-input": "off"}})
    (root / "llmci.yaml").write_text(yaml.safe_dump({"prompts": entries}))
    return files


def parse_only(files: list[tuple[Path, str]]) -> None:
    envs = {kind: make_environment(kind) for kind in ("prompt", "chat-template")}
    for path, kind in files:
        envs[kind].parse(path.read_text(encoding="utf-8"))


def best_of(fn, repeats: int = REPEATS) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = build_tree(root)
        loaded = load_config(root / "llmci.yaml")
        cache = root / ".cache"

        report = Linter(loaded).lint()
        assert report.files == N_TEMPLATES, report.files

        parse_s = best_of(lambda: parse_only(files))
        lint_s = best_of(lambda: Linter(loaded).lint())

        def cold() -> None:
            shutil.rmtree(cache, ignore_errors=True)
            Linter(loaded, cache_dir=cache).lint()

        cold_s = best_of(cold)
        warm_runs = []
        for _ in range(REPEATS):
            start = time.perf_counter()
            warm = Linter(loaded, cache_dir=cache).lint()
            warm_runs.append(time.perf_counter() - start)
        warm_s = min(warm_runs)
        assert warm.cached == N_TEMPLATES and warm.findings == report.findings

    print(f"templates: {N_TEMPLATES} ({len(report.findings)} findings), best of {REPEATS}")
    print(f"parse only (shared Environment): {parse_s * 1000:8.1f} ms")
    print(f"lint, no cache:                  {lint_s * 1000:8.1f} ms")
    print(f"lint, cold cache (writes it):    {cold_s * 1000:8.1f} ms")
    print(
        f"lint, warm cache (unchanged):    {warm_s * 1000:8.1f} ms (median {statistics.median(warm_runs) * 1000:.1f})"
    )
    ratio = lint_s / parse_s
    speedup = cold_s / warm_s
    print(f"lint / parse ratio:   {ratio:.2f}  (target <= 1.5)  {'PASS' if ratio <= 1.5 else 'FAIL'}")
    print(f"cache speed-up:       {speedup:.1f}x (target >= 10)  {'PASS' if speedup >= 10 else 'FAIL'}")
    return 0 if ratio <= 1.5 and speedup >= 10 else 1


if __name__ == "__main__":
    sys.exit(main())
