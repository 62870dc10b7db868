// JSON with exact integers, so that a JavaScript projection reads and writes
// the same bytes as a Rust one (serde_json):
//
// - integers outside Number's safe range (|n| > 2^53 - 1) become BigInt
//   instead of silently losing digits, and BigInt is written back as a JSON
//   integer;
// - inside the SDK, a number written with a fraction or an exponent whose
//   value happens to be integral (`100.0`, `1e2`, `-0`) is told apart from
//   an integer, so that `t.u64` refuses it as serde does.
//
// JSON.parse checks the syntax. For `parse` it stays the fast path: the
// exact (slower, iterative) parse runs only when the text holds something
// that could be such a number. The typed decoders always read the bytes
// with `parseMarked`, which also keeps what serde_json's typed reading
// depends on: repeated keys and strings it cannot read (invalid UTF-8, lone
// surrogate escapes), which fail only where serde_json reads them.

import { ProjectionError } from './errors.js';

const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const ENCODER = new TextEncoder();

// Any float literal has a digit followed by `.`, `e` or `E`; an unsafe
// integer has at least 16 digits; `-0` is a float for serde_json. Matches
// inside strings only send the text down the exact path, which is correct
// too, just slower.
const SUSPICIOUS = /[0-9][.eE]|[0-9]{16}|-0(?![0-9])/;
const INTEGER = /^-?[0-9]+$/;
const U64_MAX = 18446744073709551615n;
const I64_MIN = -9223372036854775808n;

/**
 * A number written as a float (`1.0`, `1e2`, `-0`) whose value is integral.
 * Only the typed decoders see it: what `parse` returns to a projection holds
 * plain numbers.
 */
export class JsonFloat {
  constructor(value) {
    this.value = value;
  }
}

// The number a literal stands for, as serde_json reads it: a Number when it
// is an integer Number holds exactly, a BigInt for other integers within
// i64/u64, else a float (a `JsonFloat` when its value is integral).
function number(source) {
  const value = Number(source);
  if (INTEGER.test(source) && source !== '-0') {
    if (Number.isSafeInteger(value)) return value;
    const big = BigInt(source);
    // serde_json reads integers outside i64/u64 as floats.
    if (big >= I64_MIN && big <= U64_MAX) return big;
    return new JsonFloat(value);
  }
  return Number.isInteger(value) || Object.is(value, -0) ? new JsonFloat(value) : value;
}

const SPACE = /[ \t\n\r]*/y;
const STRING = /"(?:[^"\\]|\\.)*"/y;
const NUMBER = /-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;

function store(container, key, value) {
  if (Array.isArray(container)) {
    container.push(value);
  } else if (key === '__proto__') {
    Object.defineProperty(container, key, { value, writable: true, enumerable: true, configurable: true });
  } else {
    container[key] = value;
  }
}

// Reads JSON text that JSON.parse has accepted, with numbers as `number`
// reads them. Iterative, like JSON.parse and serde_json's skipping of unread
// values: any depth JSON.parse takes is fine (a reviver would recurse and
// fail on deep documents that a Rust projection reads without trouble).
function parseExact(text) {
  const stack = []; // [container, pending key]
  let key;
  let pos = 0;
  let result;
  const skip = () => {
    SPACE.lastIndex = pos;
    SPACE.test(text);
    pos = SPACE.lastIndex;
  };
  const token = (pattern) => {
    pattern.lastIndex = pos;
    pattern.test(text);
    const found = text.slice(pos, pattern.lastIndex);
    pos = pattern.lastIndex;
    return found;
  };
  for (;;) {
    skip();
    let value;
    let opened = false;
    const c = text[pos];
    if (c === '{' || c === '[') {
      pos++;
      value = c === '{' ? {} : [];
      opened = true;
    } else if (c === '"') {
      value = JSON.parse(token(STRING));
    } else if (c === 't' || c === 'n') {
      value = c === 't' ? true : null;
      pos += 4;
    } else if (c === 'f') {
      value = false;
      pos += 5;
    } else {
      value = number(token(NUMBER));
    }
    if (stack.length === 0) result = value;
    else store(stack[stack.length - 1], key, value);
    if (opened) stack.push(value);
    // After a value: close containers, then find the next key or element.
    for (;;) {
      if (stack.length === 0) return result;
      const top = stack[stack.length - 1];
      skip();
      const next = text[pos];
      if (next === '}' || next === ']') {
        pos++;
        stack.pop();
        continue;
      }
      if (next === ',') {
        pos++;
        skip();
      }
      if (!Array.isArray(top)) {
        key = JSON.parse(token(STRING));
        skip();
        pos++; // ':'
      }
      break;
    }
  }
}

/**
 * A string that serde_json cannot read as a Rust `str`: invalid UTF-8, or a
 * `\uD800`-`\uDFFF` escape without its pair. serde_json only fails on such a
 * string when it reads it (a field's value, any key of an object read as a
 * struct or map); a skipped one (the value of an unknown field, anything
 * inside it) is fine. Only the typed decoders see it.
 */
export class JsonBadString {
  constructor(reason) {
    this.reason = reason;
  }
}

/**
 * On an object from `parseMarked`: the Set of keys that occur more than once
 * (serde refuses a struct field given twice; a map keeps the last value).
 */
export const DUPLICATE_KEYS = Symbol('duplicate keys');
/** On an object from `parseMarked`: the `JsonBadString` of its first unreadable key. */
export const BAD_KEY = Symbol('bad key');

const LOSSY = new TextDecoder('utf-8', { ignoreBOM: true });
const BAD_UTF8 = new JsonBadString('invalid unicode code point');
const BAD_SURROGATE = new JsonBadString('lone surrogate in hex escape');
const hasOwn = Object.prototype.hasOwnProperty;

// Where the string `readString` read ends (just past its closing quote).
let stringEnd = 0;

// The string whose content starts at `start` in valid JSON bytes, or a
// `JsonBadString`.
function readString(bytes, start) {
  let end = start;
  let escaped = false;
  for (;;) {
    const b = bytes[end];
    if (b === 0x22) break;
    if (b === 0x5c) {
      escaped = true;
      end += 2; // the escaped character; `\uXXXX` digits are plain bytes
    } else {
      end++;
    }
  }
  stringEnd = end + 1;
  let text;
  try {
    // Escapes are ASCII: the raw bytes are valid UTF-8 or not whatever they are.
    text = UTF8.decode(bytes.subarray(escaped ? start - 1 : start, escaped ? end + 1 : end));
  } catch {
    return BAD_UTF8;
  }
  if (!escaped) return text;
  // Raw UTF-8 holds no surrogates: a lone one comes from an escape.
  const value = JSON.parse(text);
  return value.isWellFormed() ? value : BAD_SURROGATE;
}

function isNumberByte(b) {
  // 0-9 + - . e E
  return (b >= 0x30 && b <= 0x39) || b === 0x2d || b === 0x2b || b === 0x2e || b === 0x65 || b === 0x45;
}

function isSpace(b) {
  return b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d;
}

function putMember(object, key, value) {
  if (key instanceof JsonBadString) {
    if (object[BAD_KEY] === undefined) object[BAD_KEY] = key;
    return;
  }
  if (hasOwn.call(object, key)) {
    if (object[DUPLICATE_KEYS] === undefined) object[DUPLICATE_KEYS] = new Set();
    object[DUPLICATE_KEYS].add(key);
  }
  store(object, key, value);
}

// Reads UTF-8 JSON that JSON.parse has accepted (as lossily decoded text),
// keeping what serde_json's typed reading depends on and JSON.parse loses:
// numbers as `number` reads them, unreadable strings as `JsonBadString`,
// and, on objects, repeated keys (`DUPLICATE_KEYS`) and unreadable keys
// (`BAD_KEY`). Iterative, like parseExact: any depth is fine.
function parseBytes(bytes) {
  const stack = [];
  const length = bytes.length;
  let key;
  let pos = 0;
  let result;
  const skip = () => {
    while (pos < length && isSpace(bytes[pos])) pos++;
  };
  for (;;) {
    skip();
    let value;
    let opened = false;
    const c = bytes[pos];
    if (c === 0x7b || c === 0x5b) {
      pos++;
      value = c === 0x7b ? {} : [];
      opened = true;
    } else if (c === 0x22) {
      value = readString(bytes, pos + 1);
      pos = stringEnd;
    } else if (c === 0x74 || c === 0x6e) {
      value = c === 0x74 ? true : null;
      pos += 4;
    } else if (c === 0x66) {
      value = false;
      pos += 5;
    } else {
      const start = pos;
      while (pos < length && isNumberByte(bytes[pos])) pos++;
      value = number(UTF8.decode(bytes.subarray(start, pos)));
    }
    if (stack.length > 0) {
      const top = stack[stack.length - 1];
      if (Array.isArray(top)) top.push(value);
      else putMember(top, key, value);
    } else {
      result = value;
    }
    if (opened) stack.push(value);
    // After a value: close containers, then find the next key or element.
    for (;;) {
      if (stack.length === 0) return result;
      const top = stack[stack.length - 1];
      skip();
      const next = bytes[pos];
      if (next === 0x7d || next === 0x5d) {
        pos++;
        stack.pop();
        continue;
      }
      if (next === 0x2c) {
        pos++;
        skip();
      }
      if (!Array.isArray(top)) {
        key = readString(bytes, pos + 1);
        pos = stringEnd;
        skip();
        pos++; // ':'
      }
      break;
    }
  }
}

/**
 * JSON text or UTF-8 bytes to a value for the typed decoders (see `t`), read
 * as serde_json reads it: integral floats are `JsonFloat`s, strings serde
 * cannot read are `JsonBadString`s, and objects note repeated and unreadable
 * keys. The syntax is checked as a whole (JSON.parse, which agrees with
 * serde_json's), so invalid UTF-8 only fails where serde_json fails on it.
 */
export function parseMarked(input) {
  let bytes;
  if (typeof input === 'string') {
    JSON.parse(input);
    bytes = ENCODER.encode(input);
  } else {
    bytes = input;
    JSON.parse(LOSSY.decode(bytes));
  }
  return parseBytes(bytes);
}

/** Replaces `JsonFloat`s by plain numbers, in place, without recursion. */
function unmark(root) {
  if (root instanceof JsonFloat) return root.value;
  const pending = [root];
  while (pending.length > 0) {
    const value = pending.pop();
    if (value === null || typeof value !== 'object') continue;
    for (const key of Object.keys(value)) {
      const item = value[key];
      if (item instanceof JsonFloat) value[key] = item.value;
      else if (item !== null && typeof item === 'object') pending.push(item);
    }
  }
  return root;
}

/** UTF-8 bytes to text; invalid UTF-8 is an error, as it is for serde_json. */
export function utf8(bytes) {
  return UTF8.decode(bytes);
}

/** Text to UTF-8 bytes. */
export function bytesOf(text) {
  return ENCODER.encode(text);
}

/**
 * Parse JSON text or UTF-8 bytes. Integers beyond Number's safe range come
 * back as BigInt; everything else as `JSON.parse` gives it.
 */
export function parse(input) {
  const text = typeof input === 'string' ? input : utf8(input);
  const plain = JSON.parse(text);
  return SUSPICIOUS.test(text) ? unmark(parseExact(text)) : plain;
}

function bigintReplacer(_key, value) {
  if (typeof value !== 'bigint') return value;
  if (typeof JSON.rawJSON !== 'function') {
    throw new Error(
      'this JavaScript engine lacks JSON.rawJSON (ES2025); under Node 20 run with --harmony-json-parse-with-source',
    );
  }
  return JSON.rawJSON(value.toString());
}

/**
 * Compact JSON text, as serde_json writes it: properties in the order they
 * were created, BigInt as a plain integer. Fails on values JSON cannot hold
 * (undefined, functions, symbols, cycles).
 */
export function stringify(value) {
  let text;
  try {
    text = JSON.stringify(value);
  } catch (error) {
    if (!(error instanceof TypeError) || !/BigInt/.test(error.message)) throw error;
    text = JSON.stringify(value, bigintReplacer);
  }
  if (text === undefined) {
    throw new ProjectionError(`${typeof value} has no JSON form`);
  }
  return text;
}
