// Run a projection under Node, without a host, for unit tests:
//
//   node --harmony-json-parse-with-source --import @projector/sdk/testing/register --test
//
// State is one in-memory map. `handle` and `query` follow the host's rules: a
// failed batch leaves no trace, and state is read-only during a query.

// Loads the in-memory host (through the hooks), which creates the store.
import 'projector:projection/state@0.1.0';
import { parse } from '../src/json.js';
import { QueryError } from '../src/errors.js';

function store() {
  const s = globalThis.__projectorTestStore;
  if (s === undefined) {
    throw new Error(
      'the test host is not loaded: run node with --import @projector/sdk/testing/register and import the projection after it',
    );
  }
  return s;
}

const ENCODER = new TextEncoder();

function bytes(value) {
  return typeof value === 'string' ? ENCODER.encode(value) : value;
}

/**
 * An event record as the host hands it over: partition 0, no key, no
 * headers, timestamp 0, unless `fields` says otherwise. A `payload` of null
 * or undefined is a tombstone.
 */
export function event(source, offset, payload, fields = {}) {
  return {
    source,
    partition: fields.partition ?? 0,
    offset: BigInt(offset),
    key: fields.key === undefined ? undefined : bytes(fields.key),
    payload: payload === null || payload === undefined ? undefined : bytes(payload),
    timestampMs: BigInt(fields.timestampMs ?? 0),
    headers: (fields.headers ?? []).map(([name, value]) => [name, bytes(value)]),
  };
}

/** Empty the state and the captured log lines. */
export function reset() {
  const s = store();
  s.entries.clear();
  s.readOnly = false;
  s.logs.length = 0;
}

/**
 * Apply a batch through `handler` (what `defineProjection` returned) as the
 * host does: null on success; on failure `{index, message}`, with every
 * state change of the batch undone.
 */
export async function handle(handler, events) {
  const s = store();
  const before = new Map(s.entries);
  const result = await handler.handle(events);
  if (result.tag === 'ok') return null;
  s.entries = before;
  return result.val;
}

/**
 * Run a custom query with state read-only, as the host does: the answer's
 * bytes, or a thrown QueryError.
 */
export async function query(handler, name, args = '') {
  const s = store();
  s.readOnly = true;
  try {
    const result = await handler.query(name, bytes(args));
    if (result.tag === 'ok') return result.val;
    const error = result.val;
    throw new QueryError(error.tag, error.val);
  } finally {
    s.readOnly = false;
  }
}

/** Like `query`, with the answer parsed from JSON. */
export async function queryJson(handler, name, args = '') {
  return parse(await query(handler, name, args));
}

/** The state: a Map from each key (text, or hex when not UTF-8) to its raw bytes, in key order. */
export function state() {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const out = new Map();
  for (const key of [...store().entries.keys()].sort()) {
    const raw = Uint8Array.from(key.match(/../g) ?? [], (h) => parseInt(h, 16));
    let name;
    try {
      name = decoder.decode(raw);
    } catch {
      name = key;
    }
    out.set(name, store().entries.get(key).slice());
  }
  return out;
}

/** The state as one object mapping each key to its value parsed from JSON. */
export function stateJson() {
  const out = {};
  for (const [key, value] of state()) out[key] = parse(value);
  return out;
}

/** The state as one object mapping each key to its value as stored (text). */
export function stateText() {
  const decoder = new TextDecoder();
  const out = {};
  for (const [key, value] of state()) out[key] = decoder.decode(value);
  return out;
}

/** Log lines so far, as [level, message] pairs. */
export function logs() {
  return store().logs.slice();
}
