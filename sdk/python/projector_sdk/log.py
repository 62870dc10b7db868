"""Log lines attributed by the host to this projection and its version.

    from projector_sdk import log

    log.warn(f"order {order_id} cancelled twice")
    log.log(log.Level.INFO, "plain message")

Python's :mod:`logging` can be routed to the host too:
``logging.getLogger().addHandler(log.HostHandler())``.

Outside a component, lines go to stderr as ``[WARN] message``. ``print``
works as well (the host logs the module's stdout and stderr), but without a
level.
"""

from __future__ import annotations

import enum
import logging

from . import _host

__all__ = ["Level", "log", "trace", "debug", "info", "warn", "warning", "error", "HostHandler"]


class Level(enum.IntEnum):
    """Severity of a log line (the WIT ``log.level``)."""

    TRACE = 0
    DEBUG = 1
    INFO = 2
    WARN = 3
    ERROR = 4


_log = _host.log


def log(level: Level, message: str) -> None:
    """Log ``message`` at ``level``."""
    _log(int(level), str(message))


def trace(message: str) -> None:
    _log(0, str(message))


def debug(message: str) -> None:
    _log(1, str(message))


def info(message: str) -> None:
    _log(2, str(message))


def warn(message: str) -> None:
    _log(3, str(message))


warning = warn


def error(message: str) -> None:
    _log(4, str(message))


class HostHandler(logging.Handler):
    """A :mod:`logging` handler that sends records to the host's log."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self.format(record)
        except Exception:  # noqa: BLE001 - logging must not fail the event
            self.handleError(record)
            return
        if record.levelno >= logging.ERROR:
            level = 4
        elif record.levelno >= logging.WARNING:
            level = 3
        elif record.levelno >= logging.INFO:
            level = 2
        elif record.levelno >= logging.DEBUG:
            level = 1
        else:
            level = 0
        _log(level, message)
