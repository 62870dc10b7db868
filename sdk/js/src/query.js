// Helpers for a projection's `query`: JSON arguments in, JSON answer out.

import { QueryError } from './errors.js';
import { bytesOf, parse, parseMarked, stringify, utf8 } from './json.js';
import { DecodeError } from './types.js';

const BLANK = /^[ \t\n\r]*$/;

/**
 * Decode query arguments from JSON (bytes or text), into `type` when given.
 * Empty or blank arguments read as `{}`, so a query called without arguments
 * can take a struct whose fields are all optional. Anything that is not valid
 * JSON (for `type`) is a `bad-args` error.
 */
export function argsJson(args, type) {
  let text;
  try {
    text = typeof args === 'string' ? args : utf8(args);
  } catch {
    throw QueryError.badArgs('expected JSON: arguments are not valid UTF-8');
  }
  if (BLANK.test(text)) text = '{}';
  const what = type === undefined ? 'JSON' : `JSON for ${type.name}`;
  try {
    return type === undefined ? parse(text) : type.decode(parseMarked(text));
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
