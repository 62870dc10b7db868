// Native unit tests under Node, no host needed:
//   node --harmony-json-parse-with-source --import ./sdk/testing/register.js --test test.js
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import * as testing from '@projector/sdk/testing';
import { handler } from './index.js';

const events = (lines) => lines.map((line, offset) => testing.event('events', offset, line));
const here = (name) => new URL(name, import.meta.url);

test('sample events fold to the expected state', async () => {
  testing.reset();
  const lines = readFileSync(here('events.jsonl'), 'utf8').split('\n').filter((l) => l.trim() !== '');
  assert.equal(await testing.handle(handler, events(lines)), null);
  assert.deepEqual(testing.stateJson(), JSON.parse(readFileSync(here('expected.json'), 'utf8')));
});

test('query answers a count or null', async () => {
  testing.reset();
  await testing.handle(handler, events(['{"type":"a"}', '{"type":"a"}']));
  assert.deepEqual(await testing.queryJson(handler, 'count', '{"type":"a"}'), { count: 2 });
  assert.equal(await testing.queryJson(handler, 'count', '{"type":"b"}'), null);
});

test('an event without a type fails and changes nothing', async () => {
  testing.reset();
  const failed = await testing.handle(handler, events(['{"type":"a"}', '{"kind":"a"}']));
  assert.equal(failed.index, 1);
  assert.deepEqual(testing.stateJson(), {});
});
