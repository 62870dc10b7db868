"""The projection base class, named queries, and the component export."""

from __future__ import annotations

import re
from typing import Any, Callable, Optional, Sequence

from . import _host, codec
from ._errors import (
    BadArgs,
    ProjectionError,
    QueryError,
    QueryFailed,
    UnknownQuery,
    describe_exception,
)
from ._event import Event

_NAME = re.compile(r"[a-z0-9-]{1,64}")
_BLANK = b" \t\n\x0c\r"


class Projection:
    """An event-sourcing projection: a deterministic fold of events into state.

    Subclass it, set the class attributes and implement :meth:`handle`::

        class PageViews(Projection):
            NAME = "page-views"
            VERSION = "1.0.0"
            SOURCES = ["views"]
            STATE_VERSION = 1

            def handle(self, event: Event) -> None:
                ...

        Handler = export(PageViews)

    Everything a projection knows between events lives in
    :mod:`projector_sdk.state`: do not keep data on ``self`` or in globals
    from one event to the next. The host may create new instances at any
    time (after a trap, for queries), and replaying the same events into
    empty state must rebuild the same state.

    Class attributes, checked when the class is defined and by
    :func:`export` (so a mistake fails the build, not the load):

    - ``NAME``: name in URLs and on the CLI: lowercase ASCII letters, digits
      and ``-``, 1 to 64 characters.
    - ``VERSION``: free-form label shown in status.
    - ``SOURCES``: topics this projection consumes, at least one.
    - ``STATE_VERSION``: version of the state layout (u32). Bump it when the
      new code needs its state rebuilt by replaying the streams from the
      start; keep it when only queries or logging changed, and the host
      swaps versions without replay.
    - ``QUERIES``: names of the custom queries. By default, the names of the
      methods decorated with :func:`query`.
    """

    NAME: str
    VERSION: str = "0.0.0"
    SOURCES: Sequence[str]
    STATE_VERSION: int
    QUERIES: Sequence[str]

    # Named queries: query name -> (method name, argument type or None).
    _projector_queries: dict[str, tuple[str, Any]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        queries: dict[str, tuple[str, Any]] = {}
        for klass in reversed(cls.__mro__):
            for attr, member in vars(klass).items():
                spec = getattr(member, "_projector_query", None)
                if spec is not None:
                    name, args_type = spec
                    queries[name] = (attr, args_type)
        cls._projector_queries = queries
        if "QUERIES" not in _declared(cls):
            cls.QUERIES = tuple(queries)
        # A base class that names no projection is checked by export().
        if "NAME" in _declared(cls):
            _check_descriptor(cls)

    def handle(self, event: Event) -> None:
        """Apply one event. Any exception fails the event: the host discards
        the state changes of the whole batch and applies the projection's
        error policy. Raise :class:`ProjectionError` with a message for the
        operator; other exceptions are reported with their type and line.
        """
        raise NotImplementedError(f"{type(self).__name__}.handle")

    def query(self, name: str, args: bytes) -> bytes:
        """Answer the custom query ``name`` with ``args`` (JSON by
        convention). State is read-only here: writing to it traps.

        The default calls the method decorated with ``@query(name)``, and
        raises :class:`UnknownQuery` for any other name. Override it to
        dispatch by hand; use :func:`args_json` and :func:`reply_json`.
        """
        try:
            attr, args_type = self._projector_queries[name]
        except KeyError:
            raise UnknownQuery(name) from None
        method = getattr(self, attr)
        if args_type is None:
            answer = method(args)
        else:
            answer = method(args_json(args, args_type))
        if isinstance(answer, (bytes, bytearray, memoryview)):
            return bytes(answer)
        return reply_json(answer)


def _declared(cls: type) -> set[str]:
    names: set[str] = set()
    for klass in cls.__mro__:
        if klass is Projection:
            break
        names.update(vars(klass))
    return names


def _check_descriptor(cls: type) -> None:
    where = f"{cls.__module__}.{cls.__qualname__}"
    declared = _declared(cls)
    for attr in ("NAME", "SOURCES", "STATE_VERSION"):
        if attr not in declared:
            raise TypeError(f"{where} must set {attr}")
    name = cls.NAME
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise TypeError(
            f"{where}.NAME = {name!r}: use lowercase ASCII letters, digits and `-`, "
            "1 to 64 characters"
        )
    if not isinstance(cls.VERSION, str):
        raise TypeError(f"{where}.VERSION must be a string, not {cls.VERSION!r}")
    sources = cls.SOURCES
    if (
        isinstance(sources, (str, bytes))
        or not isinstance(sources, Sequence)
        or not sources
        or not all(isinstance(s, str) and s for s in sources)
    ):
        raise TypeError(f"{where}.SOURCES must be a non-empty list of topic names, not {sources!r}")
    state_version = cls.STATE_VERSION
    if type(state_version) is not int or not 0 <= state_version < 2**32:
        raise TypeError(f"{where}.STATE_VERSION must be an int from 0 to 2**32-1, not {state_version!r}")
    queries = cls.QUERIES
    if isinstance(queries, (str, bytes)) or not all(isinstance(q, str) for q in queries):
        raise TypeError(f"{where}.QUERIES must be a list of query names, not {queries!r}")
    missing = [q for q in cls._projector_queries if q not in queries]
    if missing:
        raise TypeError(f"{where}.QUERIES does not list the decorated queries {missing}")


def query(name: str, args: Any = None) -> Callable[[Callable], Callable]:
    """Decorate a :class:`Projection` method as the answer to the custom
    query ``name``.

    With ``args=SomeDataclass`` the method receives the arguments decoded by
    :func:`args_json` (bad arguments answer ``bad-args`` before the method
    runs); without, it receives the raw bytes. Whatever it returns is
    encoded by :func:`reply_json`, except ``bytes``, which are the answer
    as they are::

        @query("balance", args=BalanceArgs)
        def balance(self, args: BalanceArgs) -> Account | None:
            return state.get_json(f"account/{args.account}", Account)
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"query name must be a non-empty string, not {name!r}")

    def decorate(method: Callable) -> Callable:
        method._projector_query = (name, args)  # type: ignore[attr-defined]
        return method

    return decorate


def args_json(args: bytes, tp: Any = Any) -> Any:
    """Decode query arguments from JSON into ``tp``.

    Empty (or blank) arguments read as ``{}``, so a query called without
    arguments can take a dataclass whose fields all have defaults. Anything
    that is not valid JSON for ``tp`` raises :class:`BadArgs`.
    """
    args = bytes(args)
    if not args.strip(_BLANK):
        args = b"{}"
    try:
        return codec.from_json(args, tp)
    except codec.JsonError as error:
        raise BadArgs(f"expected JSON for {codec.type_name(tp)}: {error}") from None


def reply_json(value: Any) -> bytes:
    """Encode a query answer as JSON; :class:`QueryFailed` if it cannot be."""
    try:
        return codec.to_json(value)
    except codec.JsonError as error:
        raise QueryFailed(str(error)) from None


def run_batch(projection: Projection, events: Sequence[Any]) -> Optional[tuple[int, str]]:
    """Run a batch event by event, stopping at the first failure: ``None``,
    or the index of the failing event and its message."""
    handle = projection.handle
    index = 0
    try:
        for event in events:
            handle(event)
            index += 1
    except Exception as error:  # noqa: BLE001 - every failure is the event's
        return index, describe_exception(error)
    return None


def run_query(projection: Projection, name: str, args: bytes) -> bytes:
    """Run a query; raises a :class:`QueryError` subclass on failure."""
    try:
        answer = projection.query(name, bytes(args))
    except QueryError:
        raise
    except Exception as error:  # noqa: BLE001 - a failed query, not a trap
        raise QueryFailed(describe_exception(error)) from None
    if not isinstance(answer, (bytes, bytearray, memoryview)):
        raise QueryFailed(
            f"{type(projection).__name__}.query returned {type(answer).__name__}, not bytes"
        )
    return bytes(answer)


def export(projection_class: type[Projection]) -> type:
    """The class componentize-py exports as the component's ``handler``
    interface. Assign it to ``Handler`` at the top level of the app module::

        Handler = export(OrderTotals)

    The projection is instantiated once, here (when componentize-py
    pre-initializes the module at build time).
    """
    if not (isinstance(projection_class, type) and issubclass(projection_class, Projection)):
        raise TypeError(f"export() takes a Projection subclass, not {projection_class!r}")
    _check_descriptor(projection_class)
    projection = projection_class()
    descriptor = (
        projection_class.NAME,
        projection_class.VERSION,
        tuple(projection_class.SOURCES),
        projection_class.STATE_VERSION,
        tuple(projection_class.QUERIES),
    )
    handle_failure = getattr(_host, "handle_failure", None)
    query_failure = getattr(_host, "query_failure", None)

    class Handler:
        """The ``projector:projection/handler`` export."""

        projection_type = projection_class

        def describe(self) -> Any:
            return _host.descriptor(*descriptor)

        def handle(self, events: list) -> None:
            failure = run_batch(projection, events)
            if failure is not None:
                index, message = failure
                if handle_failure is None:
                    from .testing import BatchFailed

                    raise BatchFailed(index, message)
                raise handle_failure(index, message)

        def query(self, name: str, args: bytes) -> bytes:
            try:
                return run_query(projection, name, args)
            except QueryError as error:
                if query_failure is None:
                    raise
                raise query_failure(error.kind, str(error)) from None

    Handler.__qualname__ = Handler.__name__ = "Handler"
    Handler.projection = projection  # type: ignore[attr-defined]
    return Handler
