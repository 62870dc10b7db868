// SDK unit tests under Node: npm test (see package.json).
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Event, ProjectionError, QueryError, defineProjection, json, log, query, state, t, u64 } from '@projector/sdk';
import * as testing from '@projector/sdk/testing';

test('json keeps integers exact and writes them as serde_json does', () => {
  assert.equal(json.parse('{"a": 9007199254740993}').a, 9007199254740993n);
  assert.equal(json.parse('[1.5, 100.0, 7]').join(','), '1.5,100,7');
  assert.equal(json.stringify({ b: 2n ** 64n - 1n, a: [1, 'x\u001f"\\'] }), '{"b":18446744073709551615,"a":[1,"x\\u001f\\"\\\\"]}');
  assert.throws(() => json.stringify(undefined), ProjectionError);
});

test('the exact parse takes any depth and long strings, as JSON.parse does', () => {
  const deep = `${'['.repeat(100000)}1.5${']'.repeat(100000)}`;
  let value = json.parse(deep);
  let depth = 0;
  while (Array.isArray(value)) {
    value = value[0];
    depth++;
  }
  assert.equal(depth, 100000);
  assert.equal(value, 1.5);
  const long = 'ab\\"\u00e9'.repeat(200000);
  const doc = `{"n": 1.0, "s": "${long}", "__proto__": {"x": 18446744073709551615}}`;
  const parsed = json.parse(doc);
  assert.equal(parsed.s, JSON.parse(doc).s);
  assert.equal(parsed.n, 1);
  assert.equal(Object.getPrototypeOf(parsed), Object.prototype);
  assert.equal(parsed['__proto__'].x, 18446744073709551615n);
});

test('typed decoding follows serde', () => {
  const S = t.struct('S', { a: t.u64, b: t.optional(t.string) });
  assert.deepEqual(S.decode({ b: 'x', a: 1, extra: [] }), { a: 1, b: 'x' });
  assert.deepEqual(Object.keys(S.decode({ b: 'x', a: 1 })), ['a', 'b']);
  assert.deepEqual(S.decode({ a: 1 }), { a: 1, b: null });
  assert.deepEqual(S.decode([1, null]), { a: 1, b: null });
  const decode = (text) => S.decode(JSON.parse(text));
  assert.throws(() => decode('[1]'), /invalid length 1, expected struct S with 2 elements/);
  assert.throws(() => decode('{"b": "x"}'), /missing field `a`/);
  assert.throws(() => decode('"s"'), /invalid type: string "s", expected struct S/);
  assert.throws(() => t.u64.decode(-1), /invalid value: integer `-1`, expected u64/);
  assert.throws(() => t.u64.decode(1.5), /floating point `1.5`/);
  assert.throws(() => t.u32.decode(2 ** 32), /expected u32/);
  assert.equal(t.u64.decode(2n ** 64n - 1n), 2n ** 64n - 1n);
  assert.throws(() => t.u64.decode(2n ** 64n), /expected u64/);
  assert.throws(() => t.string.decode('\ud800'), /lone surrogate/);
  const Strict = t.struct('Strict', {}, { denyUnknownFields: true });
  assert.throws(() => Strict.decode({ x: 1 }), /unknown field `x`, there are no fields/);
  assert.deepEqual(S.default(), { a: 0, b: null });
  assert.deepEqual(S.encode({ b: null, a: 3, c: 1 }), { a: 3, b: null });
  assert.throws(() => S.encode({ b: 'x' }), /S has no field `a`/);
});

test('decoding reads strings and keys as serde_json does, skipping unread fields', () => {
  // Payload bytes, as the host hands them over; `\xff` is a byte, not UTF-8.
  const payload = (text) => Uint8Array.from(text, (c) => c.charCodeAt(0));
  const decode = (text, type) => new Event(testing.event('t', 0, payload(text))).decode(type);
  const Kind = t.struct('Kind', { type: t.string });
  const Placed = t.struct('Placed', { id: t.string, n: t.u64 });
  const ok = (text, type, expected) => assert.deepEqual(decode(text, type), expected);
  const refused = (text, type, pattern) => assert.throws(() => decode(text, type), pattern);
  // A declared field given twice fails; an undeclared one twice is fine.
  refused('{"id": "a", "id": "b", "n": 1}', Placed, /duplicate field `id`/);
  refused('{"type": "x", "type": "x"}', Kind, /duplicate field `type`/);
  ok('{"x": 1, "x": 2, "id": "a", "n": 1}', Placed, { id: 'a', n: 1 });
  ok('{"id": "a", "n": 1, "type": "x", "type": "y"}', Placed, { id: 'a', n: 1 });
  // A string that is read must be valid UTF-8 without lone surrogates...
  refused('{"id": "\xff", "n": 1}', Placed, /invalid unicode code point/);
  refused('{"id": "\\ud800", "n": 1}', Placed, /lone surrogate/);
  refused('{"id": "\\ud83dx", "n": 1}', Placed, /lone surrogate/);
  refused('{"id": "\\udc00\\ud800", "n": 1}', Placed, /lone surrogate/);
  ok('{"id": "\\ud83d\\ude00\xc3\xa9\\"", "n": 1}', Placed, { id: '\u{1f600}\u00e9"', n: 1 });
  // ...and so must every key of an object read as a struct or a map...
  refused('{"id": "a", "n": 1, "\xff": 1}', Placed, /invalid unicode code point in a key/);
  refused('{"id": "a", "n": 1, "\\udc00": 1}', Placed, /lone surrogate in hex escape in a key/);
  refused('{"m": {"\\ud800": 1}}', t.struct('M', { m: t.map(t.u64) }), /lone surrogate/);
  refused('{"v": ["\xff"]}', t.struct('V', { v: t.any }), /invalid unicode code point/);
  // ...but the value of an undeclared field is skipped unread.
  ok('{"id": "a", "n": 1, "x": "\xff\\ud800"}', Placed, { id: 'a', n: 1 });
  ok('{"type": "x", "deep": {"\xff": ["\\ud800", {"k": "k", "k": "\xfe"}]}}', Kind, { type: 'x' });
  refused('[{"\xff": 1}, "a"]', t.struct('P', { a: t.any, b: t.string }), /invalid unicode code point in a key/);
  // Any depth, long escaped strings and exact integers, as before.
  const deep = `${'['.repeat(100000)}"\xff"${']'.repeat(100000)}`;
  ok(`{"type": "x", "deep": ${deep}}`, Kind, { type: 'x' });
  const long = 'ab\\"\\u00e9'.repeat(100000);
  ok(`{"id": "${long}", "n": 18446744073709551615}`, Placed, { id: JSON.parse(`"${long}"`), n: 2n ** 64n - 1n });
  refused('{"id": "a", "n": 1.0}', Placed, /invalid type: floating point `1.0`, expected u64/);
  // Invalid UTF-8 outside strings is a syntax error.
  refused('{"type": "x"}\xff', Kind, /not valid JSON/);
  // Query arguments follow the same rules.
  const Args = t.struct('Args', { n: t.u32 });
  const badArgs = (args) => assert.throws(() => query.argsJson(args, Args), (e) => e.kind === 'bad-args');
  badArgs('{"n": 1, "n": 2}');
  badArgs(payload('{"n": 1, "\xff": 2}'));
  assert.deepEqual(query.argsJson(payload('{"n": 1, "x": "\xff"}'), Args), { n: 1 });
  assert.deepEqual(query.argsJson(payload(' \t'), t.struct('None', {})), {});
  // Maps and untyped values keep the last of repeated keys.
  assert.deepEqual(decode('{"m": {"a": 1, "a": 2}}', t.struct('M', { m: t.map(t.u64) })), { m: { a: 2 } });
  assert.deepEqual(decode('{"a": 1, "a": 2}', t.any), { a: 2 });
});

test('u64 arithmetic is checked and moves to BigInt past 2^53', () => {
  assert.equal(u64.checkedAdd(1, 2), 3);
  assert.equal(u64.checkedAdd(Number.MAX_SAFE_INTEGER, 1), 9007199254740992n);
  assert.equal(u64.checkedAdd(2n ** 64n - 1n, 1), undefined);
  assert.equal(u64.checkedSub(9007199254740992n, 1), Number.MAX_SAFE_INTEGER);
  assert.equal(u64.checkedSub(1, 2), undefined);
  assert.throws(() => u64.add(2n ** 64n - 1n, 1), ProjectionError);
  assert.throws(() => u64.sub(0, 1), ProjectionError);
});

const counter = defineProjection({
  name: 'counter',
  sources: ['t'],
  stateVersion: 3,
  queries: ['count', 'keys'],
  handle(event) {
    const body = event.decode(t.struct('Body', { n: t.u64, fail: t.optional(t.bool) }));
    if (body.fail) throw new ProjectionError(`refusing ${event.position()}`);
    if (body.n === 99) null.boom;
    state.putJson('count', u64.add(state.getJson('count', t.u64) ?? 0, body.n));
    state.put(`seen/${event.offset}`, 'x');
    log.info(`got ${body.n}`);
  },
  query(name, args) {
    if (name === 'count') return { count: state.getJson('count') ?? 0 };
    if (name === 'keys') {
      const { prefix } = query.argsJson(args, t.struct('Args', { prefix: t.string }));
      return [...state.iter(prefix)].map(([key]) => new TextDecoder().decode(key));
    }
    if (name === 'write') state.put('x', 'y');
    throw QueryError.unknownQuery();
  },
});

test('describe, batches stopping at the first failure, and queries', async () => {
  testing.reset();
  assert.deepEqual(counter.describe(), { name: 'counter', version: '', sources: ['t'], stateVersion: 3, queries: ['count', 'keys'] });
  const ev = (offset, body) => testing.event('t', offset, JSON.stringify(body));
  assert.equal(await testing.handle(counter, [ev(0, { n: 2 }), ev(1, { n: 3 })]), null);
  assert.deepEqual(await testing.handle(counter, [ev(2, { n: 1 }), ev(3, { n: 1, fail: true }), ev(4, { n: 1 })]), {
    index: 1,
    message: 'refusing t/0@3',
  });
  const bug = await testing.handle(counter, [ev(5, { n: 99 })]);
  assert.equal(bug.index, 0);
  assert.match(bug.message, /^TypeError: /);
  assert.deepEqual(await testing.queryJson(counter, 'count'), { count: 5 });
  assert.deepEqual(await testing.queryJson(counter, 'keys', '{"prefix": "seen/"}'), ['seen/0', 'seen/1']);
  await assert.rejects(testing.query(counter, 'keys', '{"prefix": 1}'), (e) => e.kind === 'bad-args');
  await assert.rejects(testing.query(counter, 'nope'), (e) => e.kind === 'unknown-query');
  // A write during a query fails the query (the host traps).
  await assert.rejects(testing.query(counter, 'write'), (e) => e.kind === 'failed' && /read-only/.test(e.message));
  assert.deepEqual(testing.logs(), [
    ['info', 'got 2'],
    ['info', 'got 3'],
    ['info', 'got 1'],
  ]);
});

test('iter pages through more entries than one scan returns', () => {
  testing.reset();
  for (let i = 0; i < 600; i++) state.put(`k/${String(i).padStart(3, '0')}`, String(i));
  state.put('l/0', 'other prefix');
  const keys = [...state.iterJson('k/')].map(([key]) => key);
  assert.equal(keys.length, 600);
  assert.equal(keys[599], 'k/599');
  assert.deepEqual(state.scanJson('k/', 'k/597', 10), [['k/598', 598], ['k/599', 599]]);
  state.delete('k/598');
  assert.equal(state.get('k/598'), undefined);
});

test('invalid projections are refused at definition', () => {
  assert.throws(() => defineProjection({ name: 'Bad Name', sources: [], stateVersion: -1 }), /name must be.*sources.*stateVersion.*handle/);
});
