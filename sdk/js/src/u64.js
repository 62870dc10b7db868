// Checked arithmetic on u64 values as the typed decoders give them: a Number
// up to 2^53 - 1, a BigInt above. Results follow the same rule, so they can
// be stored as they are and compare with `<`, `>` and `===` against values
// decoded later.

import { ProjectionError } from './errors.js';

const U64_MAX = 18446744073709551615n;
const SAFE = BigInt(Number.MAX_SAFE_INTEGER);

function big(value, what) {
  if (typeof value === 'bigint') {
    if (value >= 0n && value <= U64_MAX) return value;
  } else if (typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= 2 ** 64) {
    return BigInt(value);
  }
  throw new ProjectionError(`${what} is not a u64: ${String(value)}`);
}

function normal(value) {
  return value <= SAFE ? Number(value) : value;
}

/** `a + b`, or undefined when the sum exceeds 2^64 - 1 (Rust's `checked_add`). */
export function checkedAdd(a, b) {
  if (typeof a === 'number' && typeof b === 'number' && a >= 0 && b >= 0) {
    const sum = a + b;
    if (Number.isSafeInteger(sum) && Number.isSafeInteger(a) && Number.isSafeInteger(b)) return sum;
  }
  const sum = big(a, 'left operand') + big(b, 'right operand');
  return sum > U64_MAX ? undefined : normal(sum);
}

/** `a - b`, or undefined when `b > a` (Rust's `checked_sub`). */
export function checkedSub(a, b) {
  if (typeof a === 'number' && typeof b === 'number' && Number.isSafeInteger(a) && Number.isSafeInteger(b) && b >= 0) {
    return b <= a ? a - b : undefined;
  }
  const difference = big(a, 'left operand') - big(b, 'right operand');
  return difference < 0n ? undefined : normal(difference);
}

/** `a + b`; throws a ProjectionError when the sum exceeds 2^64 - 1. */
export function add(a, b) {
  const sum = checkedAdd(a, b);
  if (sum === undefined) throw new ProjectionError(`u64 overflow: ${a} + ${b}`);
  return sum;
}

/** `a - b`; throws a ProjectionError when `b > a`. */
export function sub(a, b) {
  const difference = checkedSub(a, b);
  if (difference === undefined) throw new ProjectionError(`u64 underflow: ${a} - ${b}`);
  return difference;
}
