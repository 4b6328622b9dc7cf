"""The ledger read back: every change to an environment, and what served at a given time."""

from __future__ import annotations

from datetime import datetime, timezone

from llmci.deploy.ledger import Event
from llmci.errors import UsageError

#: Events after which the weights say what served.
_SETS_WEIGHTS = ("deploy", "step", "rollback", "retire", "deployed")


def parse_time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--at '{text}' is not a time; write ISO 8601, e.g. 2026-11-27T14:00:00Z") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def serving_at(events: list[Event], at: str) -> list[Event]:
    """Per model, the last event at or before `at` that set its weights: what served then."""
    moment = parse_time(at)
    last: dict[str, Event] = {}
    for event in events:
        if event.model and event.action in _SETS_WEIGHTS and datetime.fromisoformat(event.at) <= moment:
            last[event.model] = event
    return sorted(last.values(), key=lambda e: e.seq)


def history_text(events: list[Event], *, at: str | None = None) -> str:
    if not events:
        return f"nothing served at {at}" if at else "no deploys yet"
    lines = []
    for event in events:
        weights = ", ".join(f"{ref} {w:g}%" for ref, w in event.weights.items() if w > 0) or "-"
        what = f"{event.model}@{event.version}" if event.model else "-"
        lines.append(
            f"{event.seq:>5}  {event.at[:19]}Z  {event.action:<9} {what:<24} serving: {weights}  "
            f"by {event.actor or '-'}: {event.message}"
        )
    return "\n".join(lines)
