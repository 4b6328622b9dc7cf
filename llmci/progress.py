"""Progress on stderr: a tqdm bar on a terminal; in a CI log, when asked, one line per 10%."""

from __future__ import annotations

import sys


class ProgressMeter:
    """Counts `total` units of `what` done.

    `enabled` True or False forces the bar on or off; None shows it on a
    terminal only. With `log_tenths`, a run that is not on a terminal and was
    not told either way (a CI log) prints `llmci: WHAT: 30% (3/10 cases, ...)`
    at each tenth instead. Byte counts (`unit="B"`) are shown in KiB, MiB, ...
    """

    def __init__(
        self, what: str, total: int, enabled: bool | None, *, unit: str, leave: bool = True, log_tenths: bool = False
    ) -> None:
        self.what, self.unit, self.total, self.done, self.next_tenth = what, unit, total, 0, 1
        interactive = sys.stderr.isatty() if enabled is None else enabled
        self.bar = None
        if interactive:
            from tqdm import tqdm

            in_bytes = unit == "B"
            self.bar = tqdm(
                total=total,
                desc=what,
                unit=unit,
                unit_scale=in_bytes,
                unit_divisor=1024 if in_bytes else 1000,
                file=sys.stderr,
                leave=leave,
            )
        self.logging = log_tenths and enabled is None and not interactive

    def advance(self, amount: int = 1, *, detail: str = "") -> None:
        """`amount` more units done; `detail` is added to the log line (`, 2 errors`)."""
        self.done += amount
        if self.bar is not None:
            self.bar.update(amount)
        elif self.logging and self.done * 10 >= self.next_tenth * self.total:
            self.next_tenth = self.done * 10 // self.total + 1
            share = self.done * 100 // self.total
            line = f"llmci: {self.what}: {share}% ({self.done}/{self.total} {self.unit}s{detail})"
            print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def __enter__(self) -> ProgressMeter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
