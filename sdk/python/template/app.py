"""`{{name}}`: counts the events of the `events` topic by their JSON `type`.

State: `count/<type>` -> `{"count": N}`.
Query `count` with `{"type": str}`: that object, or `null` for a type never
seen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from projector_sdk import Event, Projection, export, query, rename, state, u64


@dataclass
class Typed:
    """An event (or query arguments): only `type` is read, other fields are
    ignored."""

    kind: str = rename("type")


@dataclass
class Count:
    count: u64


class Counter(Projection):
    NAME = "{{name}}"
    VERSION = "0.1.0"
    SOURCES = ["events"]
    # Bump when the state layout changes: the host then rebuilds the state by
    # replaying the events.
    STATE_VERSION = 1

    def handle(self, event: Event) -> None:
        typed = event.payload_json(Typed)
        key = f"count/{typed.kind}"
        count = state.get_json(key, Count) or Count(0)
        count.count += 1
        state.put_json(key, count)

    @query("count", args=Typed)
    def count(self, args: Typed) -> Optional[Count]:
        return state.get_json(f"count/{args.kind}", Count)


Handler = export(Counter)
