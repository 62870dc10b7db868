"""One record of a stream, with helpers to read it."""

from __future__ import annotations

import dataclasses
from typing import Any, Optional, TypeVar

from . import _host, codec
from ._errors import ProjectionError

T = TypeVar("T")

_UNPARSED = object()


class EventMethods:
    """Helpers of :class:`Event`.

    Inside a component they are attached to the record class the bindings
    generate, so that the events the host hands over are used as they are,
    without a copy per event.
    """

    def payload_json(self, tp: Any = Any) -> Any:
        """The payload parsed as JSON and converted into ``tp`` (a dataclass,
        ``dict[str, int]``, ...; default: the plain parsed value), with the
        Rust SDK's rules (see :mod:`projector_sdk.codec`).

        Raises :class:`ProjectionError`, naming the event and ``tp``, when
        the event is a tombstone or the payload is not valid JSON for ``tp``.
        The payload is parsed once per event, however often this is called.
        """
        parsed = getattr(self, "_projector_parsed", _UNPARSED)
        if parsed is _UNPARSED:
            if self.payload is None:
                raise ProjectionError(
                    f"event {self.position()} has no payload (tombstone), "
                    f"expected JSON for {codec.type_name(tp)}"
                )
            try:
                parsed = codec.loads(self.payload)
            except codec.JsonError as error:
                parsed = error
            self._projector_parsed = parsed
        if isinstance(parsed, codec.JsonError):
            raise ProjectionError(
                f"event {self.position()} payload is not valid JSON "
                f"for {codec.type_name(tp)}: {parsed}"
            )
        try:
            return codec.convert(parsed, tp)
        except codec.JsonError as error:
            raise ProjectionError(
                f"event {self.position()} payload is not valid JSON "
                f"for {codec.type_name(tp)}: {error}"
            ) from None

    def key_str(self) -> Optional[str]:
        """The key as UTF-8 text; ``None`` when the event has no key or the
        key is not valid UTF-8 (the raw bytes are in ``key``)."""
        if self.key is None:
            return None
        try:
            return bytes(self.key).decode("utf-8")
        except UnicodeDecodeError:
            return None

    def header(self, name: str) -> Optional[bytes]:
        """The value of the first header called ``name``."""
        for header, value in self.headers:
            if header == name:
                return value
        return None

    def position(self) -> str:
        """``source/partition@offset``, to name the event in messages."""
        return f"{self.source}/{self.partition}@{self.offset}"


if _host.IN_COMPONENT:
    for _name in ("payload_json", "key_str", "header", "position"):
        setattr(_host.WitEvent, _name, EventMethods.__dict__[_name])
    Event = _host.WitEvent
else:

    @dataclasses.dataclass
    class Event(EventMethods):  # type: ignore[no-redef]
        """One record of a stream, the same for every source (embedded log
        or Kafka).

        ``source`` (topic), ``partition``, ``offset``, ``key`` (bytes or
        ``None``), ``payload`` (bytes; ``None`` is a tombstone, a Kafka null
        value), ``timestamp_ms`` and ``headers`` (a list of ``(name,
        bytes)``). Order is guaranteed within a partition only.
        """

        source: str
        partition: int
        offset: int
        key: Optional[bytes]
        payload: Optional[bytes]
        timestamp_ms: int
        headers: list[tuple[str, bytes]]
