// This projection's own key/value state, kept by the host.
//
// Keys are ordered bytewise. Writes become durable when the batch commits; a
// failed batch leaves no trace. Reads see the writes of earlier events in the
// same batch. During a query, state is read-only: a write traps.
//
// Keys are strings (stored as UTF-8) or Uint8Arrays; values of `get`/`put`
// are bytes (a string is stored as UTF-8). The `*Json` helpers store JSON, so
// that state is readable over HTTP whatever language wrote it.

import * as host from './host.js';
import { ProjectionError } from './errors.js';
import { bytesOf, parse, parseMarked, stringify, utf8 } from './json.js';
import { DecodeError } from './types.js';

/** Entries fetched per host call by `iter` and `iterJson`. */
const PAGE = 256;

function keyBytes(key) {
  if (typeof key === 'string') return bytesOf(key);
  if (key instanceof Uint8Array) return key;
  throw new ProjectionError(`a state key must be a string or a Uint8Array, not ${typeof key}`);
}

function valueBytes(value) {
  if (typeof value === 'string') return bytesOf(value);
  if (value instanceof Uint8Array) return value;
  throw new ProjectionError(`a state value must be a string or a Uint8Array, not ${typeof value}`);
}

function keyName(key) {
  if (typeof key === 'string') return key;
  try {
    return utf8(key);
  } catch {
    return `[${Array.from(key).join(', ')}]`;
  }
}

/** The bytes stored under `key`, or undefined. */
export function get(key) {
  return host.get(keyBytes(key));
}

/**
 * Store `value` under `key`. Traps during a query, and when the key or value
 * exceeds the host's size limits.
 */
export function put(key, value) {
  host.put(keyBytes(key), valueBytes(value));
}

/** Remove `key` if present. Traps during a query. */
function remove(key) {
  host.remove(keyBytes(key));
}
export { remove as delete };

/**
 * Up to `limit` entries whose key starts with `prefix`, in ascending key
 * order, strictly after `startAfter` when given, as [key, value] byte pairs.
 * The host may return fewer than `limit` even when more exist: page with the
 * last key returned, or use `iter`.
 */
export function scan(prefix, startAfter, limit) {
  const after = startAfter === undefined || startAfter === null ? undefined : keyBytes(startAfter);
  if (!Number.isInteger(limit) || limit < 0) {
    throw new ProjectionError(`scan limit must be a non-negative integer, not ${String(limit)}`);
  }
  return host.scan(keyBytes(prefix), after, Math.min(limit, 4294967295));
}

/** Every entry whose key starts with `prefix`, in key order, a page at a time. */
export function* iter(prefix) {
  const start = keyBytes(prefix);
  let after;
  for (;;) {
    const page = host.scan(start, after, PAGE);
    if (page.length === 0) return;
    yield* page;
    after = page[page.length - 1][0];
  }
}

function decodeValue(key, bytes, type) {
  let value;
  try {
    value = type === undefined ? parse(utf8(bytes)) : type.decode(parseMarked(bytes));
  } catch (error) {
    if (error instanceof ProjectionError) throw error;
    const what = type === undefined ? 'JSON' : `JSON for ${type.name}`;
    throw new ProjectionError(`state key \`${keyName(key)}\` does not hold valid ${what}: ${error.message}`);
  }
  return value;
}

/**
 * The JSON value under `key`, or undefined when absent. With `type` (see
 * `t`), decoded and checked into it; a stored value that is not valid JSON
 * (for `type`) fails.
 */
export function getJson(key, type) {
  const bytes = host.get(keyBytes(key));
  return bytes === undefined ? undefined : decodeValue(key, bytes, type);
}

/**
 * Store `value` as compact JSON under `key`. With `type`, the value is
 * checked and written with the type's fields in declared order. Fails on
 * values JSON cannot hold; traps as `put` does.
 */
export function putJson(key, value, type) {
  let text;
  try {
    text = stringify(type === undefined ? value : type.encode(value));
  } catch (error) {
    if (!(error instanceof DecodeError) && !(error instanceof TypeError) && !(error instanceof ProjectionError)) {
      throw error;
    }
    const what = type === undefined ? typeof value : type.name;
    throw new ProjectionError(`cannot encode ${what} as JSON for state key \`${keyName(key)}\`: ${error.message}`);
  }
  host.put(keyBytes(key), bytesOf(text));
}

function jsonEntry([key, value], type) {
  let name;
  try {
    name = utf8(key);
  } catch {
    throw new ProjectionError(`state key ${keyName(key)} is not UTF-8`);
  }
  return [name, decodeValue(name, value, type)];
}

/** Like `scan`, with keys as strings and values decoded from JSON (into `type`). */
export function scanJson(prefix, startAfter, limit, type) {
  return scan(prefix, startAfter, limit).map((entry) => jsonEntry(entry, type));
}

/** Like `iter`, with keys as strings and values decoded from JSON (into `type`). */
export function* iterJson(prefix, type) {
  for (const entry of iter(prefix)) yield jsonEntry(entry, type);
}
