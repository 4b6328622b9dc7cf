"""`llmci --help` start-up against `python -c "import click"`, measured in the same run.

Target: ratio <= 2.0. Each command runs REPEATS times, interleaved so both see the
same machine state; the medians are compared. Uses the `llmci` script installed
next to this interpreter (scripts/test and scripts/demo install it in .venv).

    .venv/bin/python benchmarks/bench_startup.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

REPEATS = 30


def wall(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    llmci = Path(sys.executable).with_name("llmci")
    if not llmci.exists():
        print(f"{llmci} is missing: install llmci into this interpreter's environment first", file=sys.stderr)
        return 2
    commands = {
        "python -c 'import click'": [sys.executable, "-c", "import click"],
        "llmci --help": [str(llmci), "--help"],
        "llmci lint --help": [str(llmci), "lint", "--help"],
    }
    for argv in commands.values():  # warm the file cache
        wall(argv)
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(REPEATS):
        for name, argv in commands.items():
            samples[name].append(wall(argv))
    medians = {name: statistics.median(times) for name, times in samples.items()}
    baseline = medians["python -c 'import click'"]
    for name, median in medians.items():
        print(f"{name:28s} median {median * 1000:7.1f} ms  ratio {median / baseline:.2f}")
    ratio = medians["llmci --help"] / baseline
    print(f"llmci --help / import click: {ratio:.2f} (target <= 2.0)  {'PASS' if ratio <= 2.0 else 'FAIL'}")
    return 0 if ratio <= 2.0 else 1


if __name__ == "__main__":
    sys.exit(main())
