"""Run a projection natively, without a host, for unit tests.

State is an in-memory map of this process. :func:`handle` and :func:`query`
follow the host's rules: a failed batch leaves no trace, and state is
read-only during a query::

    import unittest
    from projector_sdk import testing
    from app import OrderTotals

    class OrderTotalsTest(unittest.TestCase):
        def setUp(self):
            testing.reset()

        def test_counts(self):
            testing.handle(OrderTotals, [testing.event("orders", 0, b'{...}')])
            self.assertEqual(testing.state_json(), {...})

Not available inside a component.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Iterable, Optional, Union

from . import _host
from ._event import Event
from ._projection import Projection, run_batch, run_query

if _host.IN_COMPONENT:  # pragma: no cover - the host is real there
    raise ImportError("projector_sdk.testing runs projections natively, not in a component")

__all__ = [
    "BatchFailed",
    "Descriptor",
    "describe",
    "event",
    "events",
    "handle",
    "query",
    "reset",
    "state",
    "state_json",
]


class BatchFailed(Exception):
    """A batch failed: ``index`` of the failing event and its ``message``."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(f"event {index} failed: {message}")
        self.index = index
        self.message = message


@dataclasses.dataclass
class Descriptor:
    """What ``describe`` answers."""

    name: str
    version: str
    sources: list[str]
    state_version: int
    queries: list[str]


ProjectionLike = Union[Projection, type[Projection]]


def _instance(projection: ProjectionLike) -> Projection:
    return projection() if isinstance(projection, type) else projection


def event(
    source: str,
    offset: int,
    payload: Union[bytes, str, None],
    *,
    key: Union[bytes, str, None] = None,
    partition: int = 0,
    timestamp_ms: int = 0,
    headers: Optional[list[tuple[str, bytes]]] = None,
) -> Event:
    """An event; by default on partition 0 with no key, no headers and
    timestamp 0. A ``str`` payload or key is encoded as UTF-8; ``None`` is a
    tombstone."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    if isinstance(key, str):
        key = key.encode("utf-8")
    return Event(source, partition, offset, key, payload, timestamp_ms, list(headers or []))


def events(source: str, payloads: Iterable[Any], *, first_offset: int = 0) -> list[Event]:
    """Events at consecutive offsets. Each payload is bytes, a ``str``, or
    any other value, which is written as JSON."""
    out = []
    for offset, payload in enumerate(payloads, start=first_offset):
        if not isinstance(payload, (bytes, str)) and payload is not None:
            payload = json.dumps(payload)
        out.append(event(source, offset, payload))
    return out


def describe(projection: ProjectionLike) -> Descriptor:
    """The descriptor the host would read."""
    cls = projection if isinstance(projection, type) else type(projection)
    return Descriptor(cls.NAME, cls.VERSION, list(cls.SOURCES), cls.STATE_VERSION, list(cls.QUERIES))


def handle(projection: ProjectionLike, batch: Iterable[Event]) -> None:
    """Apply a batch as the host does: on failure, every state change of the
    batch is undone and :class:`BatchFailed` names the failing event."""
    before = _host.state_snapshot()
    failure = run_batch(_instance(projection), list(batch))
    if failure is not None:
        _host.state_restore(before)
        raise BatchFailed(*failure)


def query(projection: ProjectionLike, name: str, args: Union[bytes, str] = b"") -> bytes:
    """Run a custom query with state read-only, as the host does. Raises
    :class:`projector_sdk.UnknownQuery`, :class:`projector_sdk.BadArgs` or
    :class:`projector_sdk.QueryFailed`."""
    if isinstance(args, str):
        args = args.encode("utf-8")
    _host.read_only = True
    try:
        return run_query(_instance(projection), name, args)
    finally:
        _host.read_only = False


def reset() -> None:
    """Empty the state."""
    _host.state_restore(({}, []))
    _host.read_only = False


def state() -> dict[bytes, bytes]:
    """A copy of the state, raw, in key order."""
    values, keys = _host.state_snapshot()
    return {key: values[key] for key in keys}


def state_json() -> dict[str, Any]:
    """The state as one dict mapping each key (UTF-8) to its parsed JSON
    value, in key order. Raises if a key is not UTF-8 or a value not JSON."""
    out = {}
    for key, value in state().items():
        text = key.decode("utf-8")
        try:
            out[text] = json.loads(value)
        except ValueError as error:
            raise AssertionError(f"state key `{text}` is not JSON: {error}") from None
    return out
