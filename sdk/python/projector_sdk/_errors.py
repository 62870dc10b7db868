"""Exceptions a projection raises, and how the SDK reports them to the host."""

from __future__ import annotations


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
    # The innermost frame, without traceback's source lookups (files are not
    # there in a component).
    tb = error.__traceback__
    if tb is not None:
        while tb.tb_next is not None:
            tb = tb.tb_next
        code = tb.tb_frame.f_code
        file = code.co_filename.replace("\\", "/").rsplit("/", 1)[-1]
        text += f" (at {file}:{tb.tb_lineno} in {code.co_name})"
    return text
