"""Exceptions a projection raises, and how the SDK reports them to the host."""

from __future__ import annotations

import traceback


class ProjectionError(Exception):
    """An event could not be applied, or a state or payload helper failed.

    The message is for the operator: the host shows it in status and keeps it
    with the event in the dead-letter store. Raised from ``handle``, it fails
    that event; raised from a query, it fails the query (``QueryFailed``).
    """

    @property
    def message(self) -> str:
        return str(self)


class QueryError(Exception):
    """Why a custom query failed. Raise one of the subclasses."""

    kind = "failed"

    @property
    def message(self) -> str:
        return str(self)


class UnknownQuery(QueryError):
    """The projection knows no query of that name."""

    kind = "unknown-query"

    def __init__(self, name: str = "") -> None:
        super().__init__(f"unknown query {name!r}" if name else "unknown query")
        self.name = name


class BadArgs(QueryError):
    """The arguments could not be understood; the message says why."""

    kind = "bad-args"


class QueryFailed(QueryError):
    """The query failed while running."""

    kind = "failed"


def describe_exception(error: BaseException) -> str:
    """The message the host gets for an exception a handler or query raised.

    The SDK's own errors carry a message meant for the operator and are
    passed on as they are. Anything else is a bug or an unexpected input: the
    message names the exception type and the innermost line of the
    projection that raised it (``KeyError: 'amount' (at app.py:42 in
    placed)``), so that the operator can find it without a traceback.
    """
    if isinstance(error, (ProjectionError, QueryError)):
        return str(error)
    text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    frames = traceback.extract_tb(error.__traceback__)
    if frames:
        frame = frames[-1]
        file = frame.filename.replace("\\", "/").rsplit("/", 1)[-1]
        text += f" (at {file}:{frame.lineno} in {frame.name})"
    return text
