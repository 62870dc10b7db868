// Typed decoding and encoding of JSON values, following the rules serde's
// derives apply in a Rust projection, so that a JavaScript projection and a
// Rust one with the same fields accept and refuse the same payloads and write
// the same bytes:
//
// - a struct reads the fields it declares and ignores others (unless
//   `denyUnknownFields`); a missing field fails, except an optional one,
//   which reads as null; like serde, a struct also accepts an array of
//   exactly its fields in declared order;
// - integer types take integers only: `5` fits `t.u64`, `-5`, `5.5`,
//   `5.0`, `5e0` and `"5"` do not;
// - a decoded struct is a new plain object with its fields in declared
//   order, so writing it back gives the same JSON a Rust struct gives;
// - like serde_json, reading a string (a value, or any key of an object read
//   as a struct or map) fails on invalid UTF-8 or a lone surrogate escape,
//   and a struct fails on a field given twice; the values of fields it does
//   not declare are skipped unread, whatever strings they hold.

import { BAD_KEY, DUPLICATE_KEYS, JsonBadString, JsonFloat } from './json.js';

const U64_MAX = 18446744073709551615n;
const I64_MIN = -9223372036854775808n;
const I64_MAX = 9223372036854775807n;

/** A decoding or encoding failure; callers add what was being decoded. */
export class DecodeError extends Error {
  constructor(message) {
    super(message);
    this.name = 'DecodeError';
  }
}

function floatText(value) {
  if (Number.isInteger(value) && Math.abs(value) < 1e16) {
    return Object.is(value, -0) ? '-0.0' : `${value}.0`;
  }
  return String(value);
}

/** What serde calls the unexpected value in `invalid type: ...`. */
function unexpected(value) {
  if (value === null || value === undefined) return 'null';
  if (value instanceof JsonFloat) return `floating point \`${floatText(value.value)}\``;
  if (value instanceof JsonBadString) return 'string';
  switch (typeof value) {
    case 'boolean':
      return `boolean \`${value}\``;
    case 'number':
      return Number.isInteger(value) && !Object.is(value, -0)
        ? `integer \`${value}\``
        : `floating point \`${floatText(value)}\``;
    case 'bigint':
      return `integer \`${value}\``;
    case 'string':
      return `string ${JSON.stringify(value)}`;
    default:
      return Array.isArray(value) ? 'sequence' : 'map';
  }
}

function invalidType(value, expected) {
  // serde_json fails on a string it cannot read before looking at its type.
  if (value instanceof JsonBadString) return new DecodeError(value.reason);
  return new DecodeError(`invalid type: ${unexpected(value)}, expected ${expected}`);
}

/** A JSON object (not an array, nor a marked number or string). */
function isObject(value) {
  return (
    value !== null &&
    typeof value === 'object' &&
    !Array.isArray(value) &&
    !(value instanceof JsonFloat) &&
    !(value instanceof JsonBadString)
  );
}

/** Fails as serde_json does when an object has a key it cannot read as a string. */
function checkKeys(object) {
  const bad = object[BAD_KEY];
  if (bad !== undefined) throw new DecodeError(`${bad.reason} in a key`);
}

/** A JSON type: decodes parsed JSON into a checked value, and back. */
export class Type {
  /**
   * @param {string} name shown in messages
   * @param {(value: unknown) => unknown} decode throws DecodeError
   * @param {(value: unknown) => unknown} encode throws DecodeError
   * @param {() => unknown} [makeDefault]
   */
  constructor(name, decode, encode, makeDefault) {
    this.name = name;
    this.decode = decode;
    this.encode = encode;
    this.makeDefault = makeDefault;
  }

  /** The value `Default` gives in Rust: 0, '', false, null, [] or a struct of those. */
  default() {
    if (this.makeDefault === undefined) {
      throw new DecodeError(`${this.name} has no default value`);
    }
    return this.makeDefault();
  }
}

/** An integer type between `min` and `max` (BigInt bounds). */
function integer(name, min, max) {
  const low = Number(min);
  const high = Number(max);
  const check = (value) => {
    let big;
    if (typeof value === 'number') {
      if (Number.isSafeInteger(value) && value >= low && value <= high && !Object.is(value, -0)) return value;
      if (!Number.isInteger(value) || Object.is(value, -0)) throw invalidType(value, name);
      big = BigInt(value);
    } else if (typeof value === 'bigint') {
      big = value;
    } else {
      throw invalidType(value, name);
    }
    if (big < min || big > max) {
      throw new DecodeError(`invalid value: integer \`${big}\`, expected ${name}`);
    }
    return big >= BigInt(Number.MIN_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER)
      ? Number(big)
      : big;
  };
  return new Type(name, check, check, () => 0);
}

/** A string: JSON strings only, and well-formed (no lone surrogate). */
export const string = new Type(
  'a string',
  (value) => {
    if (typeof value !== 'string') throw invalidType(value, 'a string');
    if (!value.isWellFormed()) {
      throw new DecodeError('lone surrogate in a string (\\uD800-\\uDFFF escape without its pair)');
    }
    return value;
  },
  (value) => {
    if (typeof value !== 'string') throw invalidType(value, 'a string');
    return value;
  },
  () => '',
);

/** true or false. */
export const bool = new Type(
  'a boolean',
  (value) => {
    if (typeof value !== 'boolean') throw invalidType(value, 'a boolean');
    return value;
  },
  (value) => {
    if (typeof value !== 'boolean') throw invalidType(value, 'a boolean');
    return value;
  },
  () => false,
);

/** Unsigned 64-bit integer: a Number up to 2^53 - 1, a BigInt above. */
export const u64 = integer('u64', 0n, U64_MAX);
/** Signed 64-bit integer: a Number within ±(2^53 - 1), a BigInt beyond. */
export const i64 = integer('i64', I64_MIN, I64_MAX);
/** Unsigned 32-bit integer (also Rust's `usize` on wasm32). */
export const u32 = integer('u32', 0n, 4294967295n);
/** Signed 32-bit integer. */
export const i32 = integer('i32', -2147483648n, 2147483647n);

/** A double: any JSON number. */
export const f64 = new Type(
  'f64',
  (value) => {
    if (typeof value === 'number') return value;
    if (value instanceof JsonFloat) return value.value;
    if (typeof value === 'bigint') return Number(value);
    throw invalidType(value, 'f64');
  },
  (value) => {
    if (typeof value !== 'number') throw invalidType(value, 'f64');
    return value;
  },
  () => 0,
);

function plain(value) {
  if (value instanceof JsonFloat) return value.value;
  if (value instanceof JsonBadString) throw new DecodeError(value.reason);
  if (Array.isArray(value)) return value.map(plain);
  if (value !== null && typeof value === 'object') {
    checkKeys(value);
    const copy = {};
    for (const key of Object.keys(value)) copy[key] = plain(value[key]);
    return copy;
  }
  return value;
}

/** Any JSON value, unchecked (integers beyond 2^53 - 1 as BigInt). */
export const any = new Type(
  'any value',
  plain,
  (value) => value,
  () => null,
);

/** `null` (or absent in a struct) or a value of `type`; decodes to null, never undefined. */
export function optional(type) {
  const name = type.name;
  const result = new Type(
    name,
    (value) => (value === null || value === undefined ? null : type.decode(value)),
    (value) => (value === null || value === undefined ? null : type.encode(value)),
    () => null,
  );
  result.optional = true;
  return result;
}

/** A JSON array of `type`. */
export function array(type) {
  return new Type(
    'a sequence',
    (value) => {
      if (!Array.isArray(value)) throw invalidType(value, 'a sequence');
      return value.map((item) => type.decode(item));
    },
    (value) => {
      if (!Array.isArray(value)) throw invalidType(value, 'a sequence');
      return value.map((item) => type.encode(item));
    },
    () => [],
  );
}

/** A JSON object with any keys, each value of `type`. */
export function map(type) {
  return new Type(
    'a map',
    (value) => {
      if (!isObject(value)) throw invalidType(value, 'a map');
      checkKeys(value);
      const out = {};
      for (const key of Object.keys(value)) out[key] = type.decode(value[key]);
      return out;
    },
    (value) => {
      if (value === null || typeof value !== 'object' || Array.isArray(value)) {
        throw invalidType(value, 'a map');
      }
      const out = {};
      for (const key of Object.keys(value)) out[key] = type.encode(value[key]);
      return out;
    },
    () => ({}),
  );
}

const hasOwn = Object.prototype.hasOwnProperty;

/**
 * A record with named fields, in declared order.
 *
 * @param {string} name shown in messages (`expected struct Name`)
 * @param {Record<string, Type>} fields field name -> type, in order
 * @param {{denyUnknownFields?: boolean}} [options]
 */
export function struct(name, fields, options = {}) {
  const names = Object.keys(fields);
  const types = names.map((field) => fields[field]);
  const known = new Set(names);
  const expected = `struct ${name}`;
  const deny = options.denyUnknownFields === true;
  const oneOf =
    names.length === 0
      ? 'there are no fields'
      : `expected ${names.length === 1 ? '' : 'one of '}${names.map((n) => `\`${n}\``).join(', ')}`;
  const elements = `${expected} with ${names.length} element${names.length === 1 ? '' : 's'}`;

  const decode = (value) => {
    const out = {};
    if (Array.isArray(value)) {
      for (let i = 0; i < names.length; i++) {
        if (i >= value.length) throw new DecodeError(`invalid length ${value.length}, expected ${elements}`);
        out[names[i]] = types[i].decode(value[i]);
      }
      if (value.length > names.length) {
        throw new DecodeError(`invalid length ${value.length}, expected ${elements}`);
      }
      return out;
    }
    if (!isObject(value)) throw invalidType(value, expected);
    checkKeys(value);
    const duplicates = value[DUPLICATE_KEYS];
    if (duplicates !== undefined) {
      for (const field of names) {
        if (duplicates.has(field)) throw new DecodeError(`duplicate field \`${field}\``);
      }
    }
    if (deny) {
      for (const key of Object.keys(value)) {
        if (!known.has(key)) throw new DecodeError(`unknown field \`${key}\`, ${oneOf}`);
      }
    }
    for (let i = 0; i < names.length; i++) {
      const field = names[i];
      if (hasOwn.call(value, field)) {
        out[field] = types[i].decode(value[field]);
      } else if (types[i].optional) {
        out[field] = null;
      } else {
        throw new DecodeError(`missing field \`${field}\``);
      }
    }
    return out;
  };

  const encode = (value) => {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      throw invalidType(value, expected);
    }
    const out = {};
    for (let i = 0; i < names.length; i++) {
      const field = names[i];
      const item = value[field];
      if (item === undefined && !types[i].optional) {
        throw new DecodeError(`${name} has no field \`${field}\``);
      }
      out[field] = types[i].encode(item);
    }
    return out;
  };

  const makeDefault = () => {
    const out = {};
    for (let i = 0; i < names.length; i++) out[names[i]] = types[i].default();
    return out;
  };

  const type = new Type(name, decode, encode, makeDefault);
  type.fields = fields;
  return type;
}
