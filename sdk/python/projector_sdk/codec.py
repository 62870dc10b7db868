"""JSON in and out, with the same rules as the Rust SDK (serde and serde_json).

A projection ported from Rust, or running next to one, must make the same
decisions on the same bytes: accept or refuse the same payloads, and write
byte-identical state. This module gives Python the rules of ``serde_json``
and ``#[derive(Serialize, Deserialize)]``:

Decoding, :func:`from_json` (and ``Event.payload_json``, ``state.get_json``,
``args_json``):

- Strict JSON in UTF-8: no ``NaN``/``Infinity``, no byte-order mark, nothing
  after the value but whitespace. Arrays and objects nested deeper than
  :data:`MAX_DEPTH` (127) levels fail where they are read and are skipped,
  at any depth, where they are not.
- Into a dataclass (a Rust struct): a JSON object whose fields are matched by
  name (``rename`` changes the JSON name). Unknown fields are ignored (or
  refused with :func:`deny_unknown_fields`), a known field given twice is an
  error, a missing field is an error unless it has a default or is
  ``Optional`` (then ``None``). As serde does, a JSON array is accepted too,
  holding the fields in declaration order.
- Integers: annotate with :data:`u64`, :data:`i64`, :data:`u32` ... to get
  the range checks of the Rust type. A JSON number with a fraction or an
  exponent (``5.0``, ``1e3``) and ``-0`` are floats, not integers, as in
  serde_json. :data:`usize` is 32-bit, as on ``wasm32``.
- ``str`` refuses strings with a lone surrogate (``"\\ud800"``) or with
  bytes that are not UTF-8; ``bool`` only ``true``/``false``; ``float`` any
  finite number; ``Optional[T]``, ``list[T]``, ``tuple[...]``,
  ``dict[str, T]``, nested dataclasses, and ``Any`` (the plain parsed value).

Encoding, :func:`to_json` (and ``state.put_json``, ``reply_json``): compact
(``{"a":1,"b":[true,null]}``), non-ASCII characters written as UTF-8, not
escaped, dataclass fields in declaration order: the bytes serde_json writes
for the same struct. Integers are written as integers; floats as Python
writes them (``1e+20`` where Rust writes ``1e20``); NaN and infinities are
refused. Sets are refused: their order changes from one build to the next.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import re
import types
import typing
from typing import Annotated, Any, Callable, Optional, TypeVar, Union

from ._errors import ProjectionError

__all__ = [
    "JsonError",
    "from_json",
    "loads",
    "convert",
    "to_json",
    "rename",
    "deny_unknown_fields",
    "IntRange",
    "u8",
    "u16",
    "u32",
    "u64",
    "usize",
    "i8",
    "i16",
    "i32",
    "i64",
]

T = TypeVar("T")


class JsonError(ProjectionError):
    """Bytes that are not valid JSON for the type asked for, or a value that
    cannot be encoded as JSON."""


@dataclasses.dataclass(frozen=True)
class IntRange:
    """Metadata for ``Annotated[int, IntRange(...)]``: the integer's bounds and
    the name used in messages."""

    low: int
    high: int
    name: str


u8 = Annotated[int, IntRange(0, 2**8 - 1, "u8")]
u16 = Annotated[int, IntRange(0, 2**16 - 1, "u16")]
u32 = Annotated[int, IntRange(0, 2**32 - 1, "u32")]
u64 = Annotated[int, IntRange(0, 2**64 - 1, "u64")]
#: Rust's ``usize`` on ``wasm32``, where the Rust examples run: 32 bits.
usize = Annotated[int, IntRange(0, 2**32 - 1, "usize")]
i8 = Annotated[int, IntRange(-(2**7), 2**7 - 1, "i8")]
i16 = Annotated[int, IntRange(-(2**15), 2**15 - 1, "i16")]
i32 = Annotated[int, IntRange(-(2**31), 2**31 - 1, "i32")]
i64 = Annotated[int, IntRange(-(2**63), 2**63 - 1, "i64")]

_RENAME = "projector_sdk.json_name"
_DENY = "__projector_deny_unknown_fields__"


def rename(json_name: str, **field_kwargs: Any) -> Any:
    """A dataclass field read and written under another JSON name, as
    ``#[serde(rename = "...")]``: ``kind: str = rename("type")``.

    Other ``dataclasses.field`` arguments (``default=...``) pass through.
    """
    metadata = dict(field_kwargs.pop("metadata", None) or {})
    metadata[_RENAME] = json_name
    return dataclasses.field(metadata=metadata, **field_kwargs)


def deny_unknown_fields(cls: type[T]) -> type[T]:
    """Class decorator: decoding this dataclass refuses fields it does not
    declare, as ``#[serde(deny_unknown_fields)]``."""
    setattr(cls, _DENY, True)
    return cls


# ---------------------------------------------------------------------------
# Parsing


class _DupDict(dict):
    """A JSON object that named some key more than once (the last value is
    kept, as serde_json does for maps; a struct refuses it)."""

    __slots__ = ("duplicates",)


def _pairs(pairs: list) -> dict:
    d = dict(pairs)
    if len(d) != len(pairs):
        d = _DupDict(pairs)
        seen: set = set()
        d.duplicates = {key for key, _ in pairs if key in seen or seen.add(key)}
    return d


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _int_literal(text: str) -> Any:
    # serde_json reads `-0` as the float -0.0, and an integer too large for
    # 64 bits as a float; Python would refuse more than 4300 digits.
    if text == "-0":
        return -0.0
    if len(text) > 20:
        return float(text)
    return int(text)


_decoder = json.JSONDecoder(object_pairs_hook=_pairs, parse_constant=_constant)
_careful_decoder = json.JSONDecoder(
    object_pairs_hook=_pairs, parse_constant=_constant, parse_int=_int_literal
)


_WHITESPACE = " \t\n\r"  # JSON's, and serde_json's


def _parse(decoder: json.JSONDecoder, text: str) -> Any:
    # JSONDecoder.decode, without its Python-level wrappers and regexes.
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = decoder.scan_once(text, start)
    except StopIteration as stop:
        raise json.JSONDecodeError("Expecting value", text, stop.value) from None
    if end != len(text) and text[end:].strip(_WHITESPACE):
        raise json.JSONDecodeError(
            "Extra data", text, len(text) - len(text[end:].lstrip(_WHITESPACE))
        )
    return value


#: Arrays and objects serde_json reads nested (its recursion limit is 128):
#: a value nested deeper fails where it is read, and is skipped where it is
#: not, whatever its depth.
MAX_DEPTH = 127
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def _deeper_than(text: str, limit: int) -> bool:
    if text.count("[") + text.count("{") <= limit:
        return False
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    return max(itertools.accumulate(map(_STEP.__getitem__, brackets)), default=0) > limit


class _TooDeep:
    """Stands for an array or object nested deeper than :data:`MAX_DEPTH`:
    parsed (it must be valid JSON) but not kept. Reading it fails."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<nested too deep>"


_TOO_DEEP = _TooDeep()


_NUMBER = re.compile(r"(-?(?:0|[1-9][0-9]*))(\.[0-9]+)?([eE][-+]?[0-9]+)?")
_SPACE = re.compile(r"[ \t\n\r]*")


def _parse_deep(text: str) -> Any:
    """The JSON parser's rules without recursion, for documents nested
    deeper than :data:`MAX_DEPTH`: what is nested deeper is checked and
    dropped (:data:`_TOO_DEEP` in its place). The C scanner would recurse
    once per level, and a component's stack is small (a few thousand levels
    exhaust it, a trap), and so would freeing the result."""
    scanstring = json.decoder.scanstring
    skip = _SPACE.match
    end = len(text)

    def fail(message: str, at: int) -> json.JSONDecodeError:
        return json.JSONDecodeError(message, text, at)

    def key_at(pos: int) -> tuple[str, int]:
        if text[pos : pos + 1] != '"':
            raise fail("Expecting property name enclosed in double quotes", pos)
        key, pos = scanstring(text, pos + 1, True)
        pos = skip(text, pos).end()
        if text[pos : pos + 1] != ":":
            raise fail("Expecting ':' delimiter", pos)
        return key, skip(text, pos + 1).end()

    # Open containers: [items, key] (key None for an array; items None for
    # a container too deep to keep).
    stack: list[list] = []
    pos = skip(text, 0).end()
    while True:
        char = text[pos : pos + 1]
        if char == "{":
            deep = len(stack) >= MAX_DEPTH
            pos = skip(text, pos + 1).end()
            if text[pos : pos + 1] != "}":
                key, pos = key_at(pos)
                stack.append([None if deep else [], key])
                continue
            value, pos = (_TOO_DEEP if deep else _pairs([])), pos + 1
        elif char == "[":
            deep = len(stack) >= MAX_DEPTH
            pos = skip(text, pos + 1).end()
            if text[pos : pos + 1] != "]":
                stack.append([None if deep else [], None])
                continue
            value, pos = (_TOO_DEEP if deep else []), pos + 1
        elif char == '"':
            value, pos = scanstring(text, pos + 1, True)
        elif text.startswith("null", pos):
            value, pos = None, pos + 4
        elif text.startswith("true", pos):
            value, pos = True, pos + 4
        elif text.startswith("false", pos):
            value, pos = False, pos + 5
        else:
            number = _NUMBER.match(text, pos)
            if number is None:
                raise fail("Expecting value", pos)
            integer, fraction, exponent = number.groups()
            value = _int_literal(integer) if not (fraction or exponent) else float(number.group())
            pos = number.end()
        # Hand the value to the containers it closes.
        while True:
            pos = skip(text, pos).end()
            if not stack:
                if pos != end:
                    raise fail("Extra data", pos)
                return value
            items, key = stack[-1]
            char = text[pos : pos + 1]
            if key is None:
                if items is not None:
                    items.append(value)
                if char == ",":
                    pos = skip(text, pos + 1).end()
                    break
                if char != "]":
                    raise fail("Expecting ',' delimiter", pos)
                value = _TOO_DEEP if items is None else items
            else:
                if items is not None:
                    items.append((key, value))
                if char == ",":
                    stack[-1][1], pos = key_at(skip(text, pos + 1).end())
                    break
                if char != "}":
                    raise fail("Expecting ',' delimiter", pos)
                value = _TOO_DEEP if items is None else _pairs(items)
            stack.pop()
            pos += 1


def loads(data: bytes | str) -> Any:
    """Parse JSON strictly, as serde_json does. Raises :class:`JsonError`.

    Bytes that are not UTF-8 do not fail here (serde_json does not look at
    strings it skips); they fail when a ``str`` or ``Any`` is read from them.
    """
    if isinstance(data, (bytes, bytearray, memoryview)):
        text = bytes(data).decode("utf-8", "surrogateescape")
    else:
        text = data
    if _deeper_than(text, MAX_DEPTH):
        try:
            return _parse_deep(text)
        except ValueError as error:
            raise JsonError(str(error)) from None
    # Integer literals that need care (`-0`, more digits than Python reads)
    # are rare: the fast decoder first, unless `-0` may be there.
    decoder = _careful_decoder if "-0" in text else _decoder
    try:
        return _parse(decoder, text)
    except ValueError as error:  # json.JSONDecodeError is a ValueError
        if decoder is _decoder:
            try:
                return _parse(_careful_decoder, text)
            except ValueError as careful_error:
                error = careful_error
        raise JsonError(str(error)) from None


# ---------------------------------------------------------------------------
# Converting parsed JSON into typed values


class _Invalid(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.path: list[str] = []

    def at(self, segment: str) -> "_Invalid":
        self.path.append(segment)
        return self

    def render(self) -> str:
        if not self.path:
            return self.message
        return f"{self.message} at {''.join(reversed(self.path))}"


def _unexpected(value: Any) -> str:
    if value is _TOO_DEEP:
        raise _Invalid("recursion limit exceeded")
    if value is None:
        return "null"
    if value is True or value is False:
        return f"boolean `{'true' if value else 'false'}`"
    if type(value) is int:
        return f"integer `{value}`"
    if type(value) is float:
        return f"floating point `{value!r}`"
    if type(value) is str:
        return f"string {json.dumps(value, ensure_ascii=False)}"
    if type(value) is list:
        return "sequence"
    return "map"


_SURROGATE = re.compile("[\ud800-\udfff]")
_BAD_TEXT = (
    "invalid unicode code point: a string holds a lone surrogate escape "
    "or bytes that are not UTF-8"
)


def _text_ok(text: str) -> bool:
    return text.isascii() or _SURROGATE.search(text) is None


def _any(value: Any) -> Any:
    # serde_json::Value checks every string and key.
    if type(value) is str:
        if not _text_ok(value):
            raise _Invalid(_BAD_TEXT)
        return value
    if type(value) is list:
        items: Any = enumerate(value)
        brackets = "[{}]"
    elif isinstance(value, dict):
        items = value.items()
        brackets = ".{}"
    elif value is _TOO_DEEP:
        raise _Invalid("recursion limit exceeded")
    else:
        return value
    for key, item in items:
        if type(key) is str and not _text_ok(key):
            raise _Invalid(_BAD_TEXT)
        try:
            _any(item)
        except _Invalid as error:
            raise error.at(brackets.format(key)) from None
    return value


def _str(value: Any) -> str:
    if type(value) is str:
        if value.isascii() or _SURROGATE.search(value) is None:
            return value
        raise _Invalid(_BAD_TEXT)
    raise _Invalid(f"invalid type: {_unexpected(value)}, expected a string")


def _bool(value: Any) -> bool:
    if value is True or value is False:
        return value
    raise _Invalid(f"invalid type: {_unexpected(value)}, expected a boolean")


def _float(value: Any) -> float:
    if type(value) is float or type(value) is int:
        result = float(value)
        if math.isfinite(result):
            return result
        raise _Invalid("number out of range")
    raise _Invalid(f"invalid type: {_unexpected(value)}, expected f64")


def _none(value: Any) -> None:
    if value is None:
        return None
    raise _Invalid(f"invalid type: {_unexpected(value)}, expected null")


def _int_converter(low: Optional[int], high: Optional[int], name: str) -> Callable:
    if low is None:

        def convert_int(value: Any) -> int:
            if type(value) is int:
                return value
            raise _Invalid(f"invalid type: {_unexpected(value)}, expected {name}")

        return convert_int

    def convert_ranged(value: Any) -> int:
        if type(value) is int:
            if low <= value <= high:
                return value
            raise _Invalid(f"invalid value: integer `{value}`, expected {name}")
        raise _Invalid(f"invalid type: {_unexpected(value)}, expected {name}")

    return convert_ranged


_plain_int = _int_converter(None, None, "an integer")


@dataclasses.dataclass
class _Field:
    json_name: str
    attr: str
    convert: Callable[[Any], Any]
    # Missing from JSON: use the dataclass default, use None, or fail.
    has_default: bool
    optional: bool


def _type_name(tp: Any) -> str:
    return getattr(tp, "__qualname__", None) or getattr(tp, "__name__", None) or repr(tp)


def _dataclass_converter(cls: type) -> Callable:
    hints = typing.get_type_hints(cls, include_extras=True)
    fields: list[_Field] = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        tp = hints.get(f.name, Any)
        fields.append(
            _Field(
                json_name=f.metadata.get(_RENAME, f.name),
                attr=f.name,
                convert=_converter_for(tp),
                has_default=f.default is not dataclasses.MISSING
                or f.default_factory is not dataclasses.MISSING,
                optional=_is_optional(tp),
            )
        )
    names = frozenset(f.json_name for f in fields)
    deny = getattr(cls, _DENY, False)
    name = _type_name(cls)
    expected = f"struct {name}"
    plan = [(f.json_name, f.attr, f.convert, f.has_default, f.optional) for f in fields]

    def check_keys(value: dict) -> None:
        if type(value) is _DupDict:
            for key in value.duplicates:
                if key in names:
                    raise _Invalid(f"duplicate field `{key}`")
        keys = "".join(value)
        if not keys.isascii() and _SURROGATE.search(keys) is not None:
            raise _Invalid(_BAD_TEXT)
        if deny:
            for key in value:
                if key not in names:
                    raise _Invalid(
                        f"unknown field `{key}`, expected "
                        + (", ".join(f"`{n}`" for n in sorted(names)) or "no fields")
                    )

    # The object case is the hot one (every payload and state value): it is
    # generated per class, as dataclasses generates __init__, so that each
    # field costs a lookup, a call and a keyword argument.
    namespace: dict[str, Any] = {
        "_MISSING": _MISSING,
        "_Invalid": _Invalid,
        "_DupDict": _DupDict,
        "check_keys": check_keys,
        "cls": cls,
    }
    lines = ["def from_object(value):", "    check_keys(value)", "    get = value.get", "    kw = {}"]
    arguments = []
    for index, (json_name, attr, convert, has_default, optional) in enumerate(plan):
        namespace[f"c{index}"] = convert
        raw, key, at = f"v{index}", repr(json_name), repr(f".{json_name}")
        lines.append(f"    {raw} = get({key}, _MISSING)")
        if has_default:
            lines += [
                f"    if {raw} is not _MISSING:",
                "        try:",
                f"            kw[{attr!r}] = c{index}({raw})",
                "        except _Invalid as error:",
                f"            raise error.at({at}) from None",
            ]
            continue
        if optional:
            lines += [f"    if {raw} is _MISSING:", f"        {raw} = None"]
        else:
            lines += [
                f"    if {raw} is _MISSING:",
                f"        raise _Invalid({('missing field `' + json_name + '`')!r})",
            ]
        lines += [
            "    try:",
            f"        {raw} = c{index}({raw})",
            "    except _Invalid as error:",
            f"        raise error.at({at}) from None",
        ]
        arguments.append(f"{attr}={raw}")
    lines.append(f"    return cls({', '.join(arguments + ['**kw'])})")
    exec("\n".join(lines), namespace)  # noqa: S102 - code built from field names above
    from_object = namespace["from_object"]

    def from_array(value: list) -> Any:
        # In serde's order: the elements in turn, then what is left over.
        kwargs = {}
        for index, (json_name, attr, convert, has_default, _) in enumerate(plan):
            if index >= len(value):
                if has_default:
                    continue
                raise _Invalid(
                    f"invalid length {len(value)}, expected {expected} with {len(plan)} elements"
                )
            try:
                kwargs[attr] = convert(value[index])
            except _Invalid as error:
                raise error.at(f"[{index}]") from None
        if len(value) > len(plan):
            raise _Invalid(f"trailing characters: {expected} has {len(plan)} elements")
        return cls(**kwargs)

    def convert_dataclass(value: Any) -> Any:
        if isinstance(value, dict):
            return from_object(value)
        if type(value) is list:
            return from_array(value)
        raise _Invalid(f"invalid type: {_unexpected(value)}, expected {expected}")

    return convert_dataclass


_MISSING = object()
_NONE_TYPE = type(None)


def _is_optional(tp: Any) -> bool:
    if typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    return typing.get_origin(tp) in (Union, types.UnionType) and _NONE_TYPE in typing.get_args(tp)


_cache: dict[Any, Callable] = {}


def _converter_for(tp: Any) -> Callable:
    try:
        return _cache[tp]
    except KeyError:
        pass
    except TypeError:  # unhashable annotation
        return _build(tp)
    # Put a forwarder first so that recursive dataclasses terminate.
    slot: list[Callable] = []
    _cache[tp] = lambda value: slot[0](value)
    try:
        built = _build(tp)
    except BaseException:
        del _cache[tp]
        raise
    slot.append(built)
    _cache[tp] = built
    return built


def _build(tp: Any) -> Callable:
    if tp is Any or tp is object:
        return _any
    if tp is str:
        return _str
    if tp is bool:
        return _bool
    if tp is int:
        return _plain_int
    if tp is float:
        return _float
    if tp is None or tp is _NONE_TYPE:
        return _none
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _dataclass_converter(tp)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Annotated:
        base, *extras = args
        for extra in extras:
            if isinstance(extra, IntRange):
                if base is not int:
                    raise TypeError(f"IntRange annotates int, not {base!r}")
                return _int_converter(extra.low, extra.high, extra.name)
        return _converter_for(base)
    if origin in (Union, types.UnionType):
        rest = [a for a in args if a is not _NONE_TYPE]
        if len(rest) == 1 and len(args) == 2:
            inner = _converter_for(rest[0])

            def convert_optional(value: Any) -> Any:
                return None if value is None else inner(value)

            return convert_optional
        raise TypeError(f"unsupported type {tp!r}: only Optional[T] unions can be decoded")
    if origin in (list, typing.List) or origin in _SEQUENCE_ORIGINS:
        item = _converter_for(args[0] if args else Any)

        def convert_list(value: Any) -> list:
            if type(value) is not list:
                raise _Invalid(f"invalid type: {_unexpected(value)}, expected a sequence")
            out = []
            for index, element in enumerate(value):
                try:
                    out.append(item(element))
                except _Invalid as error:
                    raise error.at(f"[{index}]") from None
            return out

        return convert_list
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            as_list = _converter_for(list[args[0]])
            return lambda value: tuple(as_list(value))
        items = [_converter_for(a) for a in args]

        def convert_tuple(value: Any) -> tuple:
            if type(value) is not list:
                raise _Invalid(f"invalid type: {_unexpected(value)}, expected a tuple")
            if len(value) != len(items):
                raise _Invalid(
                    f"invalid length {len(value)}, expected a tuple of size {len(items)}"
                )
            out = []
            for index, (convert, element) in enumerate(zip(items, value)):
                try:
                    out.append(convert(element))
                except _Invalid as error:
                    raise error.at(f"[{index}]") from None
            return tuple(out)

        return convert_tuple
    if origin in (dict, typing.Dict) or origin in _MAPPING_ORIGINS:
        key_type = args[0] if args else str
        if key_type is not str:
            raise TypeError(f"unsupported type {tp!r}: JSON object keys are strings")
        item = _converter_for(args[1] if len(args) > 1 else Any)

        def convert_dict(value: Any) -> dict:
            if not isinstance(value, dict):
                raise _Invalid(f"invalid type: {_unexpected(value)}, expected a map")
            out = {}
            for key, element in value.items():
                if not _text_ok(key):
                    raise _Invalid(_BAD_TEXT)
                try:
                    out[key] = item(element)
                except _Invalid as error:
                    raise error.at(f".{key}") from None
            return out

        return convert_dict
    raise TypeError(f"unsupported type for JSON decoding: {tp!r}")


import collections.abc as _abc  # noqa: E402

_SEQUENCE_ORIGINS = (_abc.Sequence, _abc.MutableSequence)
_MAPPING_ORIGINS = (_abc.Mapping, _abc.MutableMapping)


def convert(value: Any, tp: Any = Any) -> Any:
    """Convert an already parsed JSON value (from :func:`loads`) into ``tp``.
    Raises :class:`JsonError`."""
    try:
        return _converter_for(tp)(value)
    except _Invalid as error:
        raise JsonError(error.render()) from None


def from_json(data: bytes | str, tp: type[T] | Any = Any) -> T:
    """Parse ``data`` and convert it into ``tp`` (default: the plain parsed
    value). Raises :class:`JsonError`."""
    return convert(loads(data), tp)


def type_name(tp: Any) -> str:
    """A short name of ``tp`` for messages."""
    if tp is Any:
        return "JSON"
    return _type_name(tp) if isinstance(tp, type) else repr(tp).replace("typing.", "")


# ---------------------------------------------------------------------------
# Encoding

_to_dict: dict[type, Callable[[Any], dict]] = {}


def _dict_maker(cls: type) -> Callable[[Any], dict]:
    """``lambda o: {"json_name": o.attr, ...}`` for a dataclass, generated
    once: field order is declaration order, as serde writes a struct."""
    items = ", ".join(
        f"{f.metadata.get(_RENAME, f.name)!r}: o.{f.name}" for f in dataclasses.fields(cls)
    )
    namespace: dict[str, Any] = {}
    exec(f"def to_dict(o):\n    return {{{items}}}", namespace)  # noqa: S102 - field names
    return namespace["to_dict"]


def _default(value: Any) -> Any:
    cls = type(value)
    maker = _to_dict.get(cls)
    if maker is not None:
        return maker(value)
    if dataclasses.is_dataclass(cls):
        maker = _to_dict[cls] = _dict_maker(cls)
        return maker(value)
    if isinstance(value, (set, frozenset)):
        raise TypeError(
            "a set has no stable order from one build to the next; encode a sorted list"
        )
    raise TypeError(f"{_type_name(cls)} is not JSON serializable")


_encoder = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_default
)
# JSONEncoder.encode builds its C encoder anew on every call; build it once.
# No circular-reference markers: a cycle ends in RecursionError instead.
try:
    _c_encode = json.encoder.c_make_encoder(  # type: ignore[union-attr]
        None, _default, json.encoder.c_encode_basestring, None, ":", ",", False, False, False
    )
    if "".join(_c_encode({"a": [1.5, None, True, "\u00e9"]}, 0)) != '{"a":[1.5,null,true,"\u00e9"]}':
        _c_encode = None
except (AttributeError, TypeError):  # no C accelerator, or another signature
    _c_encode = None


def _encode(value: Any) -> str:
    if _c_encode is None or type(value) is str:
        return _encoder.encode(value)
    return "".join(_c_encode(value, 0))


def to_json(value: Any) -> bytes:
    """``value`` as compact JSON bytes, as serde_json writes the same Rust
    value. Raises :class:`JsonError`."""
    try:
        return _encode(value).encode("utf-8")
    except (TypeError, ValueError) as error:
        # UnicodeEncodeError (a lone surrogate) is a ValueError too.
        raise JsonError(f"cannot encode {_type_name(type(value))} as JSON: {error}") from None
    except RecursionError:
        raise JsonError(
            f"cannot encode {_type_name(type(value))} as JSON: nested too deep or circular"
        ) from None
