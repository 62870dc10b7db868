// An in-memory stand-in for the host's `state` and `log` interfaces, for
// unit tests under Node (see ./register.js). Both specifiers resolve here
// (with a different query string, so each is its own module instance
// exporting the same functions, over one shared store).

const STORE = (globalThis.__projectorTestStore ??= { entries: new Map(), readOnly: false, logs: [] });

function hex(bytes) {
  let out = '';
  for (const byte of bytes) out += byte.toString(16).padStart(2, '0');
  return out;
}

function unhex(text) {
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}

function writable() {
  if (STORE.readOnly) throw new Error('state is read-only while a query runs (the host traps)');
}

export function get(key) {
  const value = STORE.entries.get(hex(key));
  return value === undefined ? undefined : value.slice();
}

export function put(key, value) {
  writable();
  STORE.entries.set(hex(key), Uint8Array.from(value));
}

function remove(key) {
  writable();
  STORE.entries.delete(hex(key));
}
export { remove as delete };

export function scan(prefix, startAfter, limit) {
  const start = hex(prefix);
  const after = startAfter === undefined ? undefined : hex(startAfter);
  // Hex strings compare as their bytes do.
  const keys = [...STORE.entries.keys()].filter((k) => k.startsWith(start) && (after === undefined || k > after)).sort();
  return keys.slice(0, limit).map((k) => [unhex(k), STORE.entries.get(k).slice()]);
}

export function log(level, message) {
  STORE.logs.push([level, message]);
  if (process.env.PROJECTOR_TEST_LOG) console.error(`[${level}] ${message}`);
}
