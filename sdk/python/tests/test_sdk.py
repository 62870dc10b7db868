"""Unit tests of the SDK, run natively: python3 -m unittest discover -s sdk/python/tests"""

from __future__ import annotations

import logging
import sys
import unittest
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from projector_sdk import (  # noqa: E402
    BadArgs,
    Event,
    Projection,
    ProjectionError,
    QueryFailed,
    UnknownQuery,
    args_json,
    codec,
    deny_unknown_fields,
    export,
    from_json,
    log,
    query,
    rename,
    reply_json,
    state,
    testing,
    to_json,
    u8,
    u64,
    usize,
)
from projector_sdk._host import ReadOnlyState  # noqa: E402


@dataclass
class Thing:
    n: u64


@dataclass
class Placed:
    order_id: str
    customer: str
    amount_cents: u64


@dataclass
class Tagged:
    kind: str = rename("type")


@dataclass
class WithOptional:
    name: str
    owner: Optional[str]
    count: int = 7
    tags: list[str] = field(default_factory=list)


@deny_unknown_fields
@dataclass
class NoArgs:
    pass


@dataclass
class Nested:
    things: list[Thing]
    by_name: dict[str, u8]
    pair: tuple[str, bool]
    ratio: float
    anything: Any = None


class CodecDecodes(unittest.TestCase):
    def bad(self, data: Any, tp: Any, needle: str) -> None:
        with self.assertRaises(codec.JsonError) as caught:
            from_json(data, tp)
        self.assertIn(needle, str(caught.exception))

    def test_structs_match_serde(self) -> None:
        self.assertEqual(from_json(b'{"n": 1, "other": [1, {"x": null}]}', Thing), Thing(1))
        # A struct may be given as an array of its fields, as serde allows.
        self.assertEqual(from_json(b'["o", "c", 5]', Placed), Placed("o", "c", 5))
        self.bad(b'["o", "c"]', Placed, "invalid length 2")
        self.bad(b'["o", "c", 5, 6]', Placed, "trailing")
        self.bad(b'{"order_id": "o", "amount_cents": 5}', Placed, "missing field `customer`")
        self.bad(b'{"n": 1, "n": 2}', Thing, "duplicate field `n`")
        # Duplicates of fields the struct does not know are ignored.
        self.assertEqual(from_json(b'{"n": 1, "x": 1, "x": 2}', Thing), Thing(1))
        self.bad(b'"n"', Thing, "invalid type: string \"n\", expected struct Thing")
        self.bad(b"null", Thing, "invalid type: null")
        self.assertEqual(from_json(b'{"type": "A"}', Tagged), Tagged("A"))
        self.bad(b'{"kind": "A"}', Tagged, "missing field `type`")

    def test_optional_defaults_and_unknown_fields(self) -> None:
        self.assertEqual(from_json(b'{"name": "a"}', WithOptional), WithOptional("a", None))
        self.assertEqual(
            from_json(b'{"name": "a", "owner": "b", "count": -3, "tags": ["x"]}', WithOptional),
            WithOptional("a", "b", -3, ["x"]),
        )
        self.assertEqual(from_json(b"{}", NoArgs), NoArgs())
        self.assertEqual(from_json(b"[]", NoArgs), NoArgs())
        self.bad(b'{"limit": 5}', NoArgs, "unknown field `limit`")
        self.bad(b"[1]", NoArgs, "trailing")

    def test_integers_match_rust_types(self) -> None:
        self.assertEqual(from_json(b"18446744073709551615", u64), 2**64 - 1)
        self.bad(b"18446744073709551616", u64, "invalid value")
        self.bad(b"-5", u64, "invalid value: integer `-5`, expected u64")
        self.bad(b"5.0", u64, "invalid type: floating point `5.0`")
        self.bad(b"1e3", u64, "floating point")
        # serde_json reads -0 as a float.
        self.bad(b"-0", u64, "floating point `-0.0`")
        self.assertEqual(from_json(b"[-0, 0]", list[float]), [-0.0, 0.0])
        self.bad(b"true", u64, "invalid type: boolean `true`")
        self.bad(b'"10"', u64, 'invalid type: string "10"')
        self.bad(b"4294967296", usize, "expected usize")
        self.assertEqual(from_json(b"4294967295", usize), 2**32 - 1)
        self.bad(b"256", u8, "expected u8")
        # Huge literals are floats (Python would refuse over 4300 digits).
        self.assertEqual(from_json(b'{"n": 1, "x": ' + b"9" * 5000 + b"}", Thing), Thing(1))
        self.bad(b"1" * 30, u64, "expected u64")
        self.bad(b"1e400", float, "number out of range")

    def test_strict_json(self) -> None:
        for text in [b"NaN", b"[Infinity]", b"-Infinity", b"{'a': 1}", b"[1,]", b"1 2", b"", b"\xef\xbb\xbf{}"]:
            with self.assertRaises(codec.JsonError, msg=text):
                from_json(text)
        self.assertEqual(from_json(b" \t\r\n[1] \n"), [1])

    def test_depth(self) -> None:
        # serde_json reads 127 nested levels, and skips a value of any depth
        # where it does not read it (without recursing: a component's stack
        # is small).
        deep = b'{"type": "A", "x": ' + b"[" * 100_000 + b"1" + b"]" * 100_000 + b"}"
        self.assertEqual(from_json(deep, Tagged), Tagged("A"))
        self.bad(deep, Any, "recursion limit exceeded at .x")
        self.bad(deep, dict[str, Any], "recursion limit exceeded at .x")
        self.assertEqual(len(str(from_json(b"[" * 127 + b"]" * 127, Any))), 254)
        self.assertEqual(from_json(b"[" * 127 + b"1" + b"]" * 127, Any), from_json(b"[" * 127 + b"1" + b"]" * 127))
        self.bad(b"[" * 128 + b"]" * 128, Any, "recursion limit exceeded")
        self.bad(b"[" * 128 + b"]" * 128, list[Any], "recursion limit exceeded")
        for text in [b"[" * 600 + b"]" * 599, b"[" * 600 + b"1,]" + b"]" * 599, b'{"a": ' * 600 + b"1" + b"}" * 600 + b"x", b"[" * 600 + b"NaN" + b"]" * 600, b"[" * 600 + b'"\\x"' + b"]" * 600]:
            with self.assertRaises(codec.JsonError, msg=text[-20:]):
                from_json(text)
        # In an array, 125 objects deep: the list is at level 127, what is in
        # it at 128.
        nested = b'{"a": ' * 125 + b'[1, -0, 2.5, "s", true, null, {}, [[]]]' + b"}" * 125
        value = codec.loads(b"[" + b",".join([nested] * 2) + b"]")[1]
        for _ in range(125):
            value = value["a"]
        too_deep = codec._TOO_DEEP
        self.assertEqual(repr(value), repr([1, -0.0, 2.5, "s", True, None, too_deep, too_deep]))

    def test_text_must_be_unicode_where_it_is_read(self) -> None:
        self.bad(b'{"n": 1, "bad": "\\ud800"}', Any, "invalid unicode")
        self.bad(b'{"type": "\\udc00"}', Tagged, "invalid unicode")
        self.bad(b'{"type": "\xff"}', Tagged, "invalid unicode")
        self.bad(b'{"type": "A", "\xff": 1}', Tagged, "invalid unicode")
        # Values the struct skips are not looked at, as in serde_json.
        self.assertEqual(from_json(b'{"type": "A", "x": "\xff\\ud800"}', Tagged), Tagged("A"))
        self.assertEqual(from_json('{"type": "\u00e9\\ud83d\\ude00"}'.encode(), Tagged), Tagged("\u00e9\U0001f600"))

    def test_nested_types(self) -> None:
        value = from_json(
            b'{"things": [{"n": 1}, [2]], "by_name": {"a": 3}, "pair": ["p", true], "ratio": 2}',
            Nested,
        )
        self.assertEqual(value, Nested([Thing(1), Thing(2)], {"a": 3}, ("p", True), 2.0))
        self.bad(b'{"things": [{"n": -1}], "by_name": {}, "pair": ["p", true], "ratio": 1}', Nested, "at .things[0].n")
        self.bad(b'{"things": [], "by_name": {"a": 300}, "pair": ["p", true], "ratio": 1}', Nested, "at .by_name.a")
        self.bad(b'{"things": [], "by_name": {}, "pair": ["p"], "ratio": 1}', Nested, "invalid length 1")
        with self.assertRaises(TypeError):
            codec.convert(1, set[int])


class CodecEncodes(unittest.TestCase):
    def test_bytes_match_serde_json(self) -> None:
        self.assertEqual(to_json(Placed("o-1", "zoë", 5)), b'{"order_id":"o-1","customer":"zo\xc3\xab","amount_cents":5}')
        self.assertEqual(to_json(Tagged("A")), b'{"type":"A"}')
        self.assertEqual(to_json(WithOptional("a", None)), b'{"name":"a","owner":null,"count":7,"tags":[]}')
        self.assertEqual(to_json([True, None, 2**64 - 1, "\"\\\n\x01\x7f\u2028"]), b'[true,null,18446744073709551615,"\\"\\\\\\n\\u0001\x7f\xe2\x80\xa8"]')
        self.assertEqual(to_json({"b": 1, "a": (1, 2)}), b'{"b":1,"a":[1,2]}')

    def test_refusals(self) -> None:
        for value in [float("nan"), {1, 2}, object(), "\ud800", b"raw"]:
            with self.assertRaises(codec.JsonError, msg=repr(value)):
                to_json(value)


class StateHelpers(unittest.TestCase):
    def setUp(self) -> None:
        testing.reset()

    def test_json_round_trip_and_bad_values(self) -> None:
        self.assertIsNone(state.get_json("x", Thing))
        state.put_json("x", {"n": 3})
        self.assertEqual(state.get_json("x", Thing), Thing(3))
        self.assertEqual(state.get("x"), b'{"n":3}')
        state.put("y", b"not json")
        with self.assertRaises(ProjectionError) as caught:
            state.get_json("y", Thing)
        self.assertTrue(str(caught.exception).startswith("state key `y` does not hold valid JSON for Thing"))
        state.delete("x")
        self.assertIsNone(state.get(b"x"))
        with self.assertRaises(ProjectionError):
            state.put_json("z", {1, 2})

    def test_scan_pages_within_the_prefix(self) -> None:
        for key in ["a/1", "a/2", "a/3", "b/1", "a"]:
            state.put_json(key, key)
        self.assertEqual(state.scan_json("a/", str, limit=2), [("a/1", "a/1"), ("a/2", "a/2")])
        self.assertEqual(state.scan_json("a/", str, "a/2", 2), [("a/3", "a/3")])
        self.assertEqual(state.scan("a/", b"a/3", 2), [])
        # A start before the prefix starts at the prefix.
        self.assertEqual(len(state.scan("b/", "a", 9)), 1)
        for i in range(600):
            state.put(f"c/{i:04}", b"1")
        keys = [key for key, _ in state.iter_json("c/", int)]
        self.assertEqual(len(keys), 600)
        self.assertEqual(keys, sorted(keys))
        self.assertEqual(list(state.iter("d/")), [])
        state.put(b"e/\xff", b"1")
        with self.assertRaises(ProjectionError):
            list(state.iter_json("e/"))


class FailsOnThird(Projection):
    NAME = "fails-on-third"
    SOURCES = ["t"]
    STATE_VERSION = 1

    def handle(self, event: Event) -> None:
        if event.offset == 2:
            raise ProjectionError("third")
        if event.offset == 3:
            {}["missing"]
        state.put(str(event.offset), b"1")


class Queries(Projection):
    NAME = "queries"
    VERSION = "2"
    SOURCES = ["t", "u"]
    STATE_VERSION = 3

    def handle(self, event: Event) -> None:
        state.put_json("last", event.payload_json(Thing))

    @query("last")
    def last(self, args: bytes) -> Optional[Thing]:
        return state.get_json("last", Thing)

    @query("echo", args=Thing)
    def echo(self, args: Thing) -> bytes:
        return str(args.n).encode()

    @query("writes")
    def writes(self, args: bytes) -> None:
        state.put("k", b"v")

    @query("breaks", args=NoArgs)
    def breaks(self, args: NoArgs) -> None:
        raise ValueError("oops")

    @query("refuses")
    def refuses(self, args: bytes) -> None:
        raise BadArgs("no thanks")


class Batches(unittest.TestCase):
    def setUp(self) -> None:
        testing.reset()

    def test_a_failed_batch_names_the_event_and_leaves_no_trace(self) -> None:
        events = [testing.event("t", offset, b"") for offset in range(5)]
        with self.assertRaises(testing.BatchFailed) as caught:
            testing.handle(FailsOnThird, events)
        self.assertEqual((caught.exception.index, caught.exception.message), (2, "third"))
        self.assertEqual(testing.state(), {})
        testing.handle(FailsOnThird, events[:2])
        self.assertEqual(len(testing.state()), 2)
        # Other exceptions name their type and line.
        with self.assertRaises(testing.BatchFailed) as caught:
            testing.handle(FailsOnThird, events[3:])
        self.assertEqual(caught.exception.index, 0)
        self.assertRegex(caught.exception.message, r"^KeyError: 'missing' \(at test_sdk.py:\d+ in handle\)$")
        self.assertEqual(len(testing.state()), 2)

    def test_payload_errors_name_the_event(self) -> None:
        with self.assertRaises(testing.BatchFailed) as caught:
            testing.handle(Queries, [testing.event("t", 4, b"{}"), testing.event("t", 5, b"nope")])
        self.assertEqual(caught.exception.index, 0)
        self.assertIn("event t/0@4 payload is not valid JSON for Thing: missing field `n`", caught.exception.message)
        with self.assertRaises(testing.BatchFailed) as caught:
            testing.handle(Queries, [testing.event("t", 6, None)])
        self.assertIn("t/0@6 has no payload (tombstone)", caught.exception.message)
        with self.assertRaises(testing.BatchFailed) as caught:
            testing.handle(Queries, [testing.event("t", 7, b"nope")])
        self.assertIn("event t/0@7 payload is not valid JSON for Thing: Expecting value", caught.exception.message)

    def test_event_helpers(self) -> None:
        event = testing.event("t", 9, b"{}", key=b"k-1", headers=[("a", b"1"), ("a", b"2")])
        self.assertEqual(event.key_str(), "k-1")
        self.assertEqual(event.header("a"), b"1")
        self.assertIsNone(event.header("b"))
        self.assertEqual(event.position(), "t/0@9")
        event.key = b"\xff"
        self.assertIsNone(event.key_str())
        self.assertEqual(event.payload_json(), {})


class QueryRules(unittest.TestCase):
    def setUp(self) -> None:
        testing.reset()

    def test_describe_and_named_queries(self) -> None:
        self.assertEqual(
            testing.describe(Queries),
            testing.Descriptor("queries", "2", ["t", "u"], 3, ["last", "echo", "writes", "breaks", "refuses"]),
        )
        handler = export(Queries)()
        self.assertEqual(handler.describe(), testing.describe(Queries))
        self.assertEqual(testing.query(Queries, "last"), b"null")
        testing.handle(Queries, [testing.event("t", 0, b'{"n": 4}')])
        self.assertEqual(testing.query(Queries, "last"), b'{"n":4}')
        self.assertEqual(testing.query(Queries, "echo", '{"n": 12}'), b"12")

    def test_query_errors(self) -> None:
        with self.assertRaises(UnknownQuery):
            testing.query(Queries, "nope")
        with self.assertRaises(BadArgs) as caught:
            testing.query(Queries, "echo", "")
        self.assertIn("expected JSON for Thing: missing field `n`", str(caught.exception))
        with self.assertRaises(BadArgs):
            testing.query(Queries, "breaks", '{"x": 1}')
        with self.assertRaises(QueryFailed) as caught:
            testing.query(Queries, "breaks", " ")
        self.assertRegex(str(caught.exception), r"^ValueError: oops \(at test_sdk.py:\d+ in breaks\)$")
        with self.assertRaises(BadArgs) as caught:
            testing.query(Queries, "refuses")
        self.assertEqual(str(caught.exception), "no thanks")

    def test_state_is_read_only_in_queries(self) -> None:
        with self.assertRaises(QueryFailed) as caught:
            testing.query(Queries, "writes")
        self.assertIn("ReadOnlyState", str(caught.exception))
        state.put("k", b"v")  # writable again

    def test_args_and_replies(self) -> None:
        @dataclass
        class Optional_:
            n: int = 0

        self.assertEqual(args_json(b"", Optional_), Optional_(0))
        self.assertEqual(args_json(b" \n", Optional_), Optional_(0))
        self.assertEqual(args_json(b'{"n": 2}', Optional_), Optional_(2))
        with self.assertRaises(BadArgs):
            args_json(b"", Thing)
        self.assertEqual(reply_json([1]), b"[1]")
        with self.assertRaises(QueryFailed):
            reply_json(float("inf"))


class Definitions(unittest.TestCase):
    def test_mistakes_fail_when_the_class_is_defined(self) -> None:
        cases = [
            dict(NAME="Bad Name", SOURCES=["t"], STATE_VERSION=1),
            dict(NAME="ok", SOURCES=[], STATE_VERSION=1),
            dict(NAME="ok", SOURCES="t", STATE_VERSION=1),
            dict(NAME="ok", SOURCES=["t"], STATE_VERSION=-1),
            dict(NAME="ok", SOURCES=["t"], STATE_VERSION=1, VERSION=2),
            dict(NAME="ok", STATE_VERSION=1),
            dict(NAME="x" * 65, SOURCES=["t"], STATE_VERSION=1),
        ]
        for attrs in cases:
            with self.assertRaises(TypeError, msg=attrs):
                type("P", (Projection,), dict(attrs))
        with self.assertRaises(TypeError):

            class Undeclared(Projection):
                NAME = "undeclared"
                SOURCES = ["t"]
                STATE_VERSION = 1
                QUERIES = ["other"]

                @query("mine")
                def mine(self, args: bytes) -> None:
                    return None

        class Base(Projection):
            pass

        with self.assertRaises(TypeError):
            export(Base)


class Logging(unittest.TestCase):
    def test_levels_and_logging_handler(self) -> None:
        with self.assertLogs(level="INFO") as _, _captured_stderr() as err:
            log.warn("careful")
            log.log(log.Level.ERROR, "bad")
            logger = logging.getLogger("projection-test")
            logger.propagate = False
            logger.addHandler(log.HostHandler())
            logger.warning("via logging")
            logging.getLogger().info("keeps assertLogs happy")
        self.assertEqual(err.getvalue(), "[WARN] careful\n[ERROR] bad\n[WARN] via logging\n")


class _captured_stderr:
    def __enter__(self):
        import io

        self.old, sys.stderr = sys.stderr, io.StringIO()
        return sys.stderr

    def __exit__(self, *exc: Any) -> None:
        sys.stderr = self.old


if __name__ == "__main__":
    unittest.main()
