"""This projection's own key/value state, kept by the host.

Keys are ordered bytewise. Writes become durable when the batch commits; a
failed batch leaves no trace. Reads see the writes of earlier events in the
same batch. During a query state is read-only: a write there traps in the
host (outside a component it raises ``ReadOnlyState``).

Keys may be given as ``str`` (stored as UTF-8) or ``bytes``. The ``*_json``
helpers store values as JSON (see :mod:`projector_sdk.codec`), so that state
is readable over HTTP whatever language wrote it; :func:`get`, :func:`put`,
:func:`delete` and :func:`scan` work on raw bytes.
"""

from __future__ import annotations

from typing import Any, Iterator, Optional, TypeVar, Union

from . import _host, codec
from ._errors import ProjectionError

__all__ = [
    "get",
    "put",
    "delete",
    "scan",
    "iter",
    "get_json",
    "put_json",
    "scan_json",
    "iter_json",
    "PAGE",
]

T = TypeVar("T")
Key = Union[str, bytes]

#: Entries fetched per host call by :func:`iter` and :func:`iter_json`.
PAGE = 256

_get = _host.state_get
_put = _host.state_put


def _key(key: Key) -> bytes:
    return key.encode("utf-8") if type(key) is str else bytes(key)


def get(key: Key) -> Optional[bytes]:
    """The value stored under ``key``, or ``None``."""
    return _get(_key(key))


def put(key: Key, value: bytes) -> None:
    """Store ``value`` under ``key``. Traps during a query, and when the key
    or value exceeds the host's size limits."""
    _put(_key(key), bytes(value))


def delete(key: Key) -> None:
    """Remove ``key`` if present. Traps during a query."""
    _host.state_delete(_key(key))


def scan(prefix: Key, start_after: Optional[Key] = None, limit: int = PAGE) -> list[tuple[bytes, bytes]]:
    """Up to ``limit`` ``(key, value)`` pairs whose key starts with
    ``prefix``, in ascending key order, strictly after ``start_after`` when
    given.

    The host may return fewer than ``limit`` entries even when more exist:
    page by passing the last key returned as the next ``start_after`` until a
    page comes back empty, or use :func:`iter`.
    """
    after = None if start_after is None else _key(start_after)
    return _host.state_scan(_key(prefix), after, limit)


def iter(prefix: Key) -> Iterator[tuple[bytes, bytes]]:  # noqa: A001 - mirrors the Rust SDK
    """Every ``(key, value)`` whose key starts with ``prefix``, in ascending
    key order, fetched from the host a page at a time."""
    prefix = _key(prefix)
    last = None
    while True:
        page = _host.state_scan(prefix, last, PAGE)
        if not page:
            return
        yield from page
        last = page[-1][0]


def get_json(key: str, tp: Any = Any) -> Any:
    """The JSON value stored under ``key``, converted into ``tp`` (a
    dataclass, ``int``, ...; default: the plain parsed value).

    ``None`` when the key is absent; raises :class:`ProjectionError` when
    the stored bytes are not valid JSON for ``tp``.
    """
    value = _get(_key(key))
    if value is None:
        return None
    return _decode(key, value, tp)


def put_json(key: str, value: Any) -> None:
    """Store ``value`` as JSON under ``key``: the bytes the Rust SDK writes
    for the same value (see :func:`projector_sdk.codec.to_json`).

    Raises :class:`ProjectionError` when ``value`` cannot be encoded. Traps as
    :func:`put` does.
    """
    try:
        encoded = codec.to_json(value)
    except codec.JsonError as error:
        raise ProjectionError(f"state key `{key}`: {error}") from None
    _put(_key(key), encoded)


def scan_json(prefix: str, tp: Any = Any, start_after: Optional[str] = None, limit: int = PAGE) -> list[tuple[str, Any]]:
    """Like :func:`scan`, with keys decoded from UTF-8 and values from JSON
    into ``tp``."""
    return [_decode_entry(key, value, tp) for key, value in scan(prefix, start_after, limit)]


def iter_json(prefix: str, tp: Any = Any) -> Iterator[tuple[str, Any]]:
    """Like :func:`iter`, with keys decoded from UTF-8 and values from JSON
    into ``tp``."""
    for key, value in iter(prefix):
        yield _decode_entry(key, value, tp)


def _decode_entry(key: bytes, value: bytes, tp: Any) -> tuple[str, Any]:
    try:
        text = key.decode("utf-8")
    except UnicodeDecodeError:
        raise ProjectionError(
            f"state key {key.decode('utf-8', 'replace')!r} is not UTF-8"
        ) from None
    return text, _decode(text, value, tp)


def _decode(key: str, value: bytes, tp: Any) -> Any:
    try:
        return codec.from_json(value, tp)
    except codec.JsonError as error:
        raise ProjectionError(
            f"state key `{key}` does not hold valid JSON for {codec.type_name(tp)}: {error}"
        ) from None
