"""The two places a projection can run: inside the component, or natively.

Inside a component built by componentize-py (``sys.platform == "wasi"``) the
generated bindings (``wit_world``) reach the host's imports. Anywhere else
there is no host: state is an in-memory map and log lines go to stderr, so
that projections can be unit-tested with plain ``python -m unittest`` (see
``projector_sdk.testing``).
"""

from __future__ import annotations

import bisect
import sys
from typing import Optional

IN_COMPONENT = False

if sys.platform == "wasi":
    try:
        from componentize_py_types import Err as _Err
        from wit_world.imports import log as _wit_log
        from wit_world.imports import state as _wit_state
        from wit_world.imports import types as _wit_types

        IN_COMPONENT = True
    except ImportError:  # a WASI Python that is not componentize-py
        pass


class ReadOnlyState(RuntimeError):
    """A write to state during a query (outside a component; the host traps)."""


if IN_COMPONENT:
    state_get = _wit_state.get
    state_put = _wit_state.put
    state_delete = _wit_state.delete
    state_scan = _wit_state.scan

    _LEVELS = [
        _wit_log.Level.TRACE,
        _wit_log.Level.DEBUG,
        _wit_log.Level.INFO,
        _wit_log.Level.WARN,
        _wit_log.Level.ERROR,
    ]

    def log(level: int, message: str) -> None:
        _wit_log.log(_LEVELS[level], message)

    WitEvent = _wit_types.Event

    def descriptor(name, version, sources, state_version, queries):
        return _wit_types.Descriptor(
            name=name,
            version=version,
            sources=list(sources),
            state_version=state_version,
            queries=list(queries),
        )

    def handle_failure(index: int, message: str) -> BaseException:
        """What ``handle`` raises to return ``err(handle-error)``."""
        return _Err(_wit_types.HandleError(index=index, message=message))

    def query_failure(kind: str, message: str) -> BaseException:
        """What ``query`` raises to return ``err(query-error)``."""
        if kind == "unknown-query":
            return _Err(_wit_types.QueryError_UnknownQuery())
        if kind == "bad-args":
            return _Err(_wit_types.QueryError_BadArgs(message))
        return _Err(_wit_types.QueryError_Failed(message))

else:
    WitEvent = None

    # This process's state: a dict for lookups and a sorted list of its keys
    # for ordered scans. Tests run one at a time per process.
    _values: dict[bytes, bytes] = {}
    _keys: list[bytes] = []
    read_only = False

    def _check_writable(op: str) -> None:
        if read_only:
            raise ReadOnlyState(
                f"state `{op}` during a query: state is read-only while a query runs"
            )

    def state_get(key: bytes) -> Optional[bytes]:
        return _values.get(bytes(key))

    def state_put(key: bytes, value: bytes) -> None:
        _check_writable("put")
        key = bytes(key)
        if key not in _values:
            bisect.insort(_keys, key)
        _values[key] = bytes(value)

    def state_delete(key: bytes) -> None:
        _check_writable("delete")
        key = bytes(key)
        if _values.pop(key, None) is not None:
            del _keys[bisect.bisect_left(_keys, key)]

    def state_scan(prefix: bytes, start_after: Optional[bytes], limit: int):
        prefix = bytes(prefix)
        if start_after is not None and bytes(start_after) >= prefix:
            start = bisect.bisect_right(_keys, bytes(start_after))
        else:
            start = bisect.bisect_left(_keys, prefix)
        out = []
        for index in range(start, min(len(_keys), start + limit)):
            key = _keys[index]
            if not key.startswith(prefix):
                break
            out.append((key, _values[key]))
        return out

    def state_snapshot() -> tuple[dict[bytes, bytes], list[bytes]]:
        return dict(_values), list(_keys)

    def state_restore(snapshot: tuple[dict[bytes, bytes], list[bytes]]) -> None:
        values, keys = snapshot
        _values.clear()
        _values.update(values)
        _keys[:] = keys

    _LEVEL_NAMES = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"]

    def log(level: int, message: str) -> None:
        print(f"[{_LEVEL_NAMES[level]}] {message}", file=sys.stderr)

    def descriptor(name, version, sources, state_version, queries):
        from .testing import Descriptor

        return Descriptor(name, version, list(sources), state_version, list(queries))
