"""Write Projector projections in Python.

A projection is a deterministic fold of events into key/value state. Subclass
:class:`Projection`: name the projection and the topics it reads, handle one
:class:`Event` at a time, and optionally answer named queries. ``Handler =
export(MyProjection)`` in the app module turns it into the exports of a
WebAssembly component; build it with componentize-py
(``componentize-py -d wit -w projection componentize app -o app.wasm``) and
drop the ``.wasm`` file into the host's ``projections/`` folder.

The SDK hides the component boundary: the host hands over events in batches,
the SDK calls :meth:`Projection.handle` once per event and reports the first
failure (any exception) with its index in the batch, after which the host
discards every state change of that batch. State lives in the host, not in
the module: read and write it through :mod:`projector_sdk.state`, which
stores JSON with the Rust SDK's rules (:mod:`projector_sdk.codec`), so that
Python and Rust projections write the same bytes.

Example::

    from dataclasses import dataclass
    from projector_sdk import Event, Projection, export, log, query, state, u64

    @dataclass
    class View:
        page: str

    @dataclass
    class PageArgs:
        page: str

    @dataclass
    class PageCount:
        page: str
        views: u64

    class PageViews(Projection):
        NAME = "page-views"
        VERSION = "1.0.0"
        SOURCES = ["views"]
        STATE_VERSION = 1

        def handle(self, event: Event) -> None:
            view = event.payload_json(View)
            key = f"page/{view.page}"
            views = (state.get_json(key, u64) or 0) + 1
            state.put_json(key, views)
            if views == 1_000_000:
                log.info(f"{view.page} reached a million views")

        @query("views", args=PageArgs)
        def views(self, args: PageArgs) -> PageCount:
            return PageCount(args.page, state.get_json(f"page/{args.page}", u64) or 0)

    Handler = export(PageViews)

Outside a component, state is an in-memory map and log lines go to stderr,
so projections can be unit-tested natively: see :mod:`projector_sdk.testing`.
"""

from . import codec, log, state
from ._errors import BadArgs, ProjectionError, QueryError, QueryFailed, UnknownQuery
from ._event import Event
from ._projection import Projection, args_json, export, query, reply_json
from .codec import (
    deny_unknown_fields,
    from_json,
    i8,
    i16,
    i32,
    i64,
    rename,
    to_json,
    u8,
    u16,
    u32,
    u64,
    usize,
)

__version__ = "0.1.0"

__all__ = [
    "BadArgs",
    "Event",
    "Projection",
    "ProjectionError",
    "QueryError",
    "QueryFailed",
    "UnknownQuery",
    "args_json",
    "codec",
    "deny_unknown_fields",
    "export",
    "from_json",
    "i8",
    "i16",
    "i32",
    "i64",
    "log",
    "query",
    "rename",
    "reply_json",
    "state",
    "to_json",
    "u8",
    "u16",
    "u32",
    "u64",
    "usize",
]
