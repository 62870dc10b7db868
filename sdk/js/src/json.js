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
// JSON.parse stays the fast path: the exact (slower) parse runs only when the
// text holds something that could be such a number.

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

function exactReviver(_key, value, context) {
  if (typeof value !== 'number') return value;
  const source = context?.source;
  if (typeof source !== 'string') {
    throw new Error(
      'this JavaScript engine lacks JSON.parse source text access (ES2025); ' +
        'under Node 20 run with --harmony-json-parse-with-source',
    );
  }
  if (INTEGER.test(source) && source !== '-0') {
    if (Number.isSafeInteger(value)) return value;
    const big = BigInt(source);
    // serde_json reads integers outside i64/u64 as floats.
    if (big >= I64_MIN && big <= U64_MAX) return big;
    return new JsonFloat(value);
  }
  return Number.isInteger(value) || Object.is(value, -0) ? new JsonFloat(value) : value;
}

/** JSON text to a value in which integral floats are `JsonFloat`s. */
export function parseMarked(text) {
  if (!SUSPICIOUS.test(text)) return JSON.parse(text);
  return JSON.parse(text, exactReviver);
}

function hasFloats(text) {
  return SUSPICIOUS.test(text);
}

/** Replaces `JsonFloat`s by plain numbers, in place where possible. */
function unmark(value) {
  if (value instanceof JsonFloat) return value.value;
  if (value !== null && typeof value === 'object') {
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) value[i] = unmark(value[i]);
    } else {
      for (const key of Object.keys(value)) value[key] = unmark(value[key]);
    }
  }
  return value;
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
  if (!hasFloats(text)) return JSON.parse(text);
  return unmark(JSON.parse(text, exactReviver));
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
