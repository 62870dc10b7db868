// Helpers for a projection's `query`: JSON arguments in, JSON answer out.

import { QueryError } from './errors.js';
import { bytesOf, parse, parseMarked, stringify, utf8 } from './json.js';
import { DecodeError } from './types.js';

const BLANK = /^[ \t\n\r]*$/;
const isBlank = (byte) => byte === 0x20 || byte === 0x09 || byte === 0x0a || byte === 0x0d;

/**
 * Decode query arguments from JSON (bytes or text), into `type` when given.
 * Empty or blank arguments read as `{}`, so a query called without arguments
 * can take a struct whose fields are all optional. Anything that is not valid
 * JSON (for `type`) is a `bad-args` error.
 */
export function argsJson(args, type) {
  let input = args;
  if (type === undefined && typeof args !== 'string') {
    try {
      input = utf8(args);
    } catch {
      throw QueryError.badArgs('expected JSON: arguments are not valid UTF-8');
    }
  }
  // With a type the bytes are read as they are: like serde_json, invalid
  // UTF-8 fails only in a string that is read, not in a skipped field.
  if (typeof input === 'string' ? BLANK.test(input) : input.every(isBlank)) input = '{}';
  const what = type === undefined ? 'JSON' : `JSON for ${type.name}`;
  try {
    return type === undefined ? parse(input) : type.decode(parseMarked(input));
  } catch (error) {
    if (error instanceof SyntaxError || error instanceof DecodeError) {
      throw QueryError.badArgs(`expected ${what}: ${error.message}`);
    }
    throw error;
  }
}

/** Encode a query answer as compact JSON bytes, through `type` when given. */
export function replyJson(value, type) {
  try {
    return bytesOf(stringify(type === undefined ? value : type.encode(value)));
  } catch (error) {
    const what = type === undefined ? typeof value : type.name;
    throw QueryError.failed(`cannot encode ${what} as JSON: ${error.message}`);
  }
}
