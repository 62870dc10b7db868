// Unit tests under Node, without a host:
//   node --harmony-json-parse-with-source --import ../../../sdk/js/testing/register.js --test test.js
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import * as testing from '@projector/sdk/testing';
import { handler } from './index.js';

const events = (lines) => lines.map((line, offset) => testing.event('accounts', offset, JSON.stringify(line)));
const ask = (name, args) => testing.queryJson(handler, name, args);
const sample = (name) => new URL(`../../events/${name}`, import.meta.url);

test('sample events fold to the expected state', async () => {
  testing.reset();
  const lines = readFileSync(sample('accounts.jsonl'), 'utf8').split('\n').filter((l) => l.trim() !== '');
  assert.equal(await testing.handle(handler, lines.map((line, i) => testing.event('accounts', i, line))), null);
  const expected = JSON.parse(readFileSync(sample('accounts.expected.json'), 'utf8'));
  assert.deepEqual(testing.stateJson(), expected);

  assert.deepEqual(await ask('balance', '{"account": "acc-300"}'), expected['account/acc-300']);
  assert.equal(await ask('balance', '{"account": "acc-999"}'), null);
  const attempts = [
    { account: 'acc-200', overdraft_attempts: 2 },
    { account: 'acc-300', overdraft_attempts: 1 },
    { account: 'acc-400', overdraft_attempts: 1 },
    { account: 'acc-500', overdraft_attempts: 1 },
    { account: 'acc-600', overdraft_attempts: 1 },
  ];
  assert.deepEqual(await ask('overdrawn-attempts', ''), attempts);
  assert.deepEqual(await ask('overdrawn-attempts', '{}'), attempts);
  assert.deepEqual(await ask('overdrawn-attempts', ' []'), attempts);
});

test('overdrafts are counted not applied', async () => {
  testing.reset();
  const result = await testing.handle(
    handler,
    events([
      { type: 'Deposited', account: 'a', amount_cents: 100 },
      { type: 'Withdrawn', account: 'a', amount_cents: 101 },
      { type: 'Withdrawn', account: 'a', amount_cents: 100 },
      { type: 'AccountOpened', account: 'a', owner: 'ann' },
      { type: 'AccountOpened', account: 'a', owner: 'bea' },
    ]),
  );
  assert.equal(result, null);
  assert.deepEqual(testing.stateText(), {
    'account/a':
      '{"owner":"ann","balance_cents":0,"deposits":1,"withdrawals":1,"overdraft_attempts":1,"overdraft_attempted_cents":101}',
  });
  assert.equal(
    new TextDecoder().decode(await testing.query(handler, 'balance', '{"account":"a"}')),
    testing.stateText()['account/a'],
  );
  assert.equal(new TextDecoder().decode(await testing.query(handler, 'balance', '{"account":"b"}')), 'null');
});

test('an account without AccountOpened has a null owner', async () => {
  testing.reset();
  assert.equal(await testing.handle(handler, events([{ type: 'Deposited', account: 'x', amount_cents: 7 }])), null);
  assert.equal(
    testing.stateText()['account/x'],
    '{"owner":null,"balance_cents":7,"deposits":1,"withdrawals":0,"overdraft_attempts":0,"overdraft_attempted_cents":0}',
  );
});

test('bad amounts fail and unknown types are skipped', async () => {
  testing.reset();
  assert.equal(await testing.handle(handler, events([{ type: 'InterestAccrued', account: 1, rate: 'high' }])), null);
  assert.deepEqual(testing.stateJson(), {});

  for (const payload of [
    { type: 'Deposited', account: 'a', amount_cents: -1 },
    { type: 'Withdrawn', account: 'a', amount_cents: 1.5 },
    { type: 'Deposited', account: 'a', amount_cents: '10' },
    { type: 'Deposited', account: 'a' },
    { type: 'AccountOpened', account: 'a' },
    { type: 'AccountOpened', account: 'a', owner: null },
    'Deposited',
  ]) {
    const error = await testing.handle(handler, events([payload]));
    assert.equal(error?.index, 0, JSON.stringify(payload));
    assert.deepEqual(testing.stateJson(), {});
  }
});

test('queries check their arguments', async () => {
  testing.reset();
  for (const [name, args] of [
    ['balance', ''],
    ['balance', '{"account": 5}'],
    ['overdrawn-attempts', '{"limit": 5}'],
    ['overdrawn-attempts', 'nonsense'],
    ['overdrawn-attempts', 'null'],
    ['overdrawn-attempts', '[1]'],
  ]) {
    await assert.rejects(testing.query(handler, name, args), (e) => e.kind === 'bad-args', `${name} ${args}`);
  }
  await assert.rejects(testing.query(handler, 'balances', '{}'), (e) => e.kind === 'unknown-query');
});
