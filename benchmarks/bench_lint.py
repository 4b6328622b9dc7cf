"""Lint speed against its baseline, measured in the same run.

1. Whole process, as a user waits for it: `llmci lint DIR --no-cache` against a
   process that imports jinja2 and parses the same 2,000 templates with one
   `Environment`. Every rule is on (poisoned-template rules included).
   Target: ratio <= 1.5.
2. Re-linting the unchanged tree with the content-hash cache vs the first, cold
   run, in one process. Target: speed-up >= 10. (The same two runs as whole
   processes are printed too: there, start-up is most of the warm run.)
3. The largest real chat templates (several hundred lines each, vendored in
   tests/data/model-templates), copied to 400 files: the whole-process ratio
   again. Target: <= 1.5.

The in-process lint/parse ratio is printed for reference. Processes run with a
private bytecode cache (PYTHONPYCACHEPREFIX), warmed first, as an installed
package has its .pyc files; each command runs REPEATS times, interleaved, and
the fastest run of each is compared.

The 2,000 templates are the real corpus vendored in tests/data/prompt-templates,
copied round-robin, each made unique.

    .venv/bin/python benchmarks/bench_lint.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
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
MODEL_TEMPLATES = REPO / "tests" / "data" / "model-templates"
N_TEMPLATES = 2000
N_LARGE = 400
LARGE_LINES = 250
REPEATS = 5

#: The baseline process: import jinja2 and parse every template with one environment (apply_chat_template's).
PARSE_ONLY = """
import sys
from pathlib import Path
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment
env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
for path in sorted(Path(sys.argv[1]).rglob("*.jinja")):
    env.parse(path.read_text(encoding="utf-8"))
"""


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
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{{# copy {index} #}}\n{text}")
        files.append((path, kind))
    entries.append({"path": "chat/*.jinja", "kind": "chat-template", "variables": inputs["chat-templates/*.jinja"]})
    prompt_inputs = sorted({name for key, names in inputs.items() if key.startswith("promptflow") for name in names})
    entries.append({"path": "prompts/*.jinja", "variables": prompt_inputs, "rules": {"unused-input": "off"}})
    (root / "llmci.yaml").write_text(yaml.safe_dump({"prompts": entries}))
    return files


def build_large_tree(root: Path) -> list[Path]:
    """N_LARGE copies of the real chat templates of LARGE_LINES lines or more."""
    large = [p for p in sorted(MODEL_TEMPLATES.glob("*.jinja")) if p.read_text().count("\n") >= LARGE_LINES]
    (root / "chat").mkdir(parents=True)
    for index in range(N_LARGE):
        source = large[index % len(large)]
        (root / "chat" / f"t{index:04d}.jinja").write_text(f"{{# copy {index} #}}\n{source.read_text()}")
    entry = {"path": "chat/*.jinja", "kind": "chat-template", "filters": ["from_json"]}
    (root / "llmci.yaml").write_text(yaml.safe_dump({"prompts": [entry]}))
    return large


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


def llmci_command() -> list[str]:
    script = Path(sys.executable).with_name("llmci")
    return [str(script)] if script.exists() else [sys.executable, "-m", "llmci"]


def process_times(commands: dict[str, list[str]], cwd: Path, env: dict[str, str]) -> dict[str, float]:
    """The fastest of REPEATS wall-clock runs of each command, interleaved (after one warm-up run each)."""
    runs: dict[str, list[float]] = {name: [] for name in commands}
    for attempt in range(REPEATS + 1):
        for name, argv in commands.items():
            start = time.perf_counter()
            done = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            elapsed = time.perf_counter() - start
            if done.returncode not in (0, 1):  # 1: findings (the bench corpus has some)
                raise SystemExit(f"{name} failed ({done.returncode}): {done.stderr.decode()}")
            if attempt:  # the first run fills the bytecode and file caches
                runs[name].append(elapsed)
    return {name: min(times) for name, times in runs.items()}


def cache_processes(root: Path, cache: Path, env: dict[str, str]) -> dict[str, float]:
    """`llmci lint` as a process with an empty cache, then again with the cache that run wrote."""
    argv = [*llmci_command(), "lint", "--cache-dir", str(cache), str(root)]
    runs: dict[str, list[float]] = {"cold": [], "warm": []}
    for attempt in range(REPEATS + 1):
        shutil.rmtree(cache, ignore_errors=True)
        for name in ("cold", "warm"):
            start = time.perf_counter()
            subprocess.run(argv, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if attempt:
                runs[name].append(time.perf_counter() - start)
    return {name: min(times) for name, times in runs.items()}


def whole_process(root: Path, env: dict[str, str], extra: tuple[str, ...] = ()) -> tuple[float, float]:
    times = process_times(
        {
            "parse": [sys.executable, "-c", PARSE_ONLY, str(root)],
            "lint": [*llmci_command(), "lint", "--no-cache", *extra, str(root)],
        },
        root,
        env,
    )
    return times["parse"], times["lint"]


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "tree"
        files = build_tree(root)
        loaded = load_config(root / "llmci.yaml")
        cache = Path(tmp) / "cache"
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        env["LLMCI_CACHE_KEY_FILE"] = str(Path(tmp) / "cache-key")

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

        parse_p, lint_p = whole_process(root, env)
        cached_p = cache_processes(root, cache, env)

        large_root = Path(tmp) / "large"
        large = build_large_tree(large_root)
        large_parse_p, large_lint_p = whole_process(large_root, env)
        large_report = Linter(load_config(large_root / "llmci.yaml")).lint()

    print(f"templates: {N_TEMPLATES} ({len(report.findings)} findings), fastest of {REPEATS}")
    in_process = f"parse only {parse_s * 1000:7.1f} ms   lint {lint_s * 1000:7.1f} ms"
    print(f"in process:    {in_process}   ratio {lint_s / parse_s:.2f}")
    ratio = lint_p / parse_p
    print(f"whole process: parse-only process {parse_p * 1000:7.1f} ms   llmci lint --no-cache {lint_p * 1000:7.1f} ms")
    print(f"whole-process lint / parse ratio: {ratio:.2f}  (target <= 1.5)  {verdict(ratio <= 1.5)}")
    speedup = cold_s / warm_s
    print(f"cache, in process: cold {cold_s * 1000:7.1f} ms   warm {warm_s * 1000:7.1f} ms")
    print(f"cache speed-up:       {speedup:.1f}x (target >= 10)  {verdict(speedup >= 10)}")
    process_speedup = cached_p["cold"] / cached_p["warm"]
    print(
        f"cache, whole process (for reference): first run {cached_p['cold'] * 1000:7.1f} ms, "
        f"re-run {cached_p['warm'] * 1000:7.1f} ms ({process_speedup:.1f}x; start-up is most of the re-run)"
    )
    large_ratio = large_lint_p / large_parse_p
    names = ", ".join(f"{p.stem} ({p.read_text().count(chr(10))} lines)" for p in large)
    print(f"large chat templates: {N_LARGE} copies of {names} ({len(large_report.findings)} findings)")
    print(
        f"whole process: parse-only process {large_parse_p * 1000:7.1f} ms   "
        f"llmci lint --no-cache {large_lint_p * 1000:7.1f} ms"
    )
    print(f"large templates lint / parse ratio: {large_ratio:.2f}  (target <= 1.5)  {verdict(large_ratio <= 1.5)}")
    return 0 if ratio <= 1.5 and speedup >= 10 and large_ratio <= 1.5 else 1


if __name__ == "__main__":
    sys.exit(main())
