// Unit tests under Node, without a host:
//   node --harmony-json-parse-with-source --import ../../../sdk/js/testing/register.js --test test.js
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import * as testing from '@projector/sdk/testing';
import { handler } from './index.js';

const events = (lines) => lines.map((line, offset) => testing.event('orders', offset, JSON.stringify(line)));
const top = (n) => testing.queryJson(handler, 'top-customers', JSON.stringify({ n }));
const sample = (name) => new URL(`../../events/${name}`, import.meta.url);

test('sample events fold to the expected state', async () => {
  testing.reset();
  const lines = readFileSync(sample('orders.jsonl'), 'utf8').split('\n').filter((l) => l.trim() !== '');
  const batch = lines.map((line, offset) => testing.event('orders', offset, line));
  assert.equal(await testing.handle(handler, batch), null);
  assert.deepEqual(testing.stateJson(), JSON.parse(readFileSync(sample('orders.expected.json'), 'utf8')));
  assert.deepEqual(await top(3), [
    { customer: 'carol', total_cents: 32472 },
    { customer: 'bob', total_cents: 18490 },
    { customer: 'dave', total_cents: 18349 },
  ]);
});

test('state is written as serde_json writes it', async () => {
  testing.reset();
  await testing.handle(handler, events([{ amount_cents: 5, customer: 'ann', order_id: '1', type: 'OrderPlaced' }]));
  assert.deepEqual(testing.stateText(), {
    'customer/ann': '{"orders":1,"total_cents":5}',
    'order/1': '{"customer":"ann","amount_cents":5,"cancelled":false}',
  });
  assert.equal(new TextDecoder().decode(await testing.query(handler, 'top-customers', '{"n":1}')), '[{"customer":"ann","total_cents":5}]');
});

test('cancel uses the remembered order', async () => {
  testing.reset();
  const result = await testing.handle(
    handler,
    events([
      { type: 'OrderPlaced', order_id: '1', customer: 'ann', amount_cents: 500 },
      { type: 'OrderPlaced', order_id: '2', customer: 'ann', amount_cents: 700 },
      { type: 'OrderCancelled', order_id: '1', customer: 'bea', amount_cents: 1 },
      { type: 'OrderCancelled', order_id: '1' },
      { type: 'OrderCancelled', order_id: '404' },
      { type: 'OrderPlaced', order_id: '2', customer: 'bea', amount_cents: 9 },
    ]),
  );
  assert.equal(result, null);
  assert.deepEqual(testing.stateJson(), {
    'customer/ann': { orders: 1, total_cents: 700 },
    'order/1': { customer: 'ann', amount_cents: 500, cancelled: true },
    'order/2': { customer: 'ann', amount_cents: 700, cancelled: false },
  });
  assert.deepEqual(testing.logs(), [
    ['warn', 'ignoring cancel of unknown order 404'],
    ['warn', 'ignoring duplicate OrderPlaced for order 2'],
  ]);
});

test('unknown types are skipped and bad payloads fail', async () => {
  testing.reset();
  assert.equal(await testing.handle(handler, events([{ type: 'OrderShipped', order_id: 7, carrier: ['x'] }])), null);
  assert.deepEqual(testing.stateJson(), {});

  const ok = '{"type": "OrderPlaced", "order_id": "ok", "customer": "a", "amount_cents": 1}';
  for (const [payload, needle] of [
    ['{"type": "OrderPlaced", "order_id": "1", "amount_cents": 5}', 'missing field `customer`'],
    ['{"type": "OrderPlaced", "order_id": "1", "customer": "a", "amount_cents": -5}', 'integer `-5`, expected u64'],
    ['{"type": "OrderPlaced", "order_id": "1", "customer": "a", "amount_cents": 5.0}', 'floating point `5.0`, expected u64'],
    ['{"type": "OrderPlaced", "order_id": "1", "customer": "a", "amount_cents": 5e0}', 'floating point'],
    ['{"type": "OrderPlaced", "order_id": "1", "customer": "a", "amount_cents": "5"}', 'string "5", expected u64'],
    ['{"type": "OrderPlaced", "order_id": "1", "customer": "a", "amount_cents": 18446744073709551616}', 'floating point'],
    ['{"type": "OrderCancelled"}', 'missing field `order_id`'],
    ['{"order_id": "1"}', 'missing field `type`'],
    ['[1, 2]', 'invalid type'],
    ['{"type": "OrderPlaced"', 'not valid JSON'],
  ]) {
    const batch = [testing.event('orders', 0, ok), testing.event('orders', 1, payload)];
    const error = await testing.handle(handler, batch);
    assert.equal(error?.index, 1, payload);
    assert.ok(error.message.includes(needle), `${payload}: ${error.message}`);
    assert.ok(error.message.startsWith('event orders/0@1 payload is not valid JSON'), error.message);
    // The failed batch left no trace.
    assert.deepEqual(testing.stateJson(), {});
  }

  const error = await testing.handle(handler, [testing.event('orders', 0, null)]);
  assert.ok(error.message.includes('tombstone'), error.message);
});

test('amounts beyond 2^53 stay exact, and overflow past 2^64 - 1 fails', async () => {
  testing.reset();
  const big = '18446744073709551000';
  const lines = [
    `{"type": "OrderPlaced", "order_id": "1", "customer": "c", "amount_cents": ${big}}`,
    '{"type": "OrderPlaced", "order_id": "2", "customer": "c", "amount_cents": 615}',
  ];
  assert.equal(await testing.handle(handler, lines.map((l, i) => testing.event('orders', i, l))), null);
  assert.equal(testing.stateText()['customer/c'], '{"orders":2,"total_cents":18446744073709551615}');
  assert.equal(new TextDecoder().decode(await testing.query(handler, 'top-customers', '{"n":1}')), '[{"customer":"c","total_cents":18446744073709551615}]');
  const error = await testing.handle(handler, [
    testing.event('orders', 2, '{"type": "OrderPlaced", "order_id": "3", "customer": "c", "amount_cents": 1}'),
  ]);
  assert.equal(error.message, 'total of customer c overflows');
  const cancel = await testing.handle(handler, [testing.event('orders', 3, '{"type": "OrderCancelled", "order_id": "2"}')]);
  assert.equal(cancel, null);
  assert.equal(testing.stateText()['customer/c'], `{"orders":1,"total_cents":${big}}`);
});

test('top-customers ranks by total then id', async () => {
  testing.reset();
  await testing.handle(
    handler,
    events([
      { type: 'OrderPlaced', order_id: '1', customer: 'cy', amount_cents: 300 },
      { type: 'OrderPlaced', order_id: '2', customer: 'al', amount_cents: 100 },
      { type: 'OrderPlaced', order_id: '3', customer: 'bo', amount_cents: 300 },
      { type: 'OrderPlaced', order_id: '4', customer: 'di', amount_cents: 50 },
    ]),
  );
  assert.deepEqual(await top(10), [
    { customer: 'bo', total_cents: 300 },
    { customer: 'cy', total_cents: 300 },
    { customer: 'al', total_cents: 100 },
    { customer: 'di', total_cents: 50 },
  ]);
  assert.deepEqual(await top(2), [
    { customer: 'bo', total_cents: 300 },
    { customer: 'cy', total_cents: 300 },
  ]);
  assert.deepEqual(await top(0), []);

  for (const args of ['{"n": -1}', '', '{"n": 4294967296}', '{"n": 1.5}', 'nonsense']) {
    await assert.rejects(testing.query(handler, 'top-customers', args), (e) => e.kind === 'bad-args', args);
  }
  await assert.rejects(testing.query(handler, 'nope', '{}'), (e) => e.kind === 'unknown-query');
});

test('top-customers pages through many customers', async () => {
  testing.reset();
  const placed = Array.from({ length: 3000 }, (_, i) => ({
    type: 'OrderPlaced',
    order_id: String(i),
    customer: `c${String(i).padStart(4, '0')}`,
    amount_cents: i % 7,
  }));
  assert.equal(await testing.handle(handler, events(placed)), null);
  assert.deepEqual(await top(2), [
    { customer: 'c0006', total_cents: 6 },
    { customer: 'c0013', total_cents: 6 },
  ]);
  const all = await top(5000);
  assert.equal(all.length, 3000);
  assert.deepEqual(all[2999], { customer: 'c2996', total_cents: 0 });
});
