// Turns a projection object into the `handler` export of the WIT world.

import { ProjectionError, QueryError, messageOf } from './errors.js';
import { Event } from './event.js';
import { replyJson } from './query.js';

const NAME = /^[a-z0-9-]{1,64}$/;

function check(projection) {
  const problems = [];
  if (typeof projection.name !== 'string' || !NAME.test(projection.name)) {
    problems.push('name must be 1 to 64 lowercase ASCII letters, digits or "-"');
  }
  if (
    !Array.isArray(projection.sources) ||
    projection.sources.length === 0 ||
    !projection.sources.every((s) => typeof s === 'string' && s.length > 0)
  ) {
    problems.push('sources must be a non-empty array of topic names');
  }
  if (!Number.isInteger(projection.stateVersion) || projection.stateVersion < 0 || projection.stateVersion > 4294967295) {
    problems.push('stateVersion must be an integer from 0 to 4294967295');
  }
  const queries = projection.queries ?? [];
  if (!Array.isArray(queries) || !queries.every((q) => typeof q === 'string')) {
    problems.push('queries must be an array of strings');
  }
  if (typeof projection.handle !== 'function') {
    problems.push('handle(event) must be a function');
  }
  if (projection.query !== undefined && typeof projection.query !== 'function') {
    problems.push('query(name, args) must be a function when given');
  }
  if (problems.length > 0) {
    throw new TypeError(`invalid projection ${JSON.stringify(projection.name)}: ${problems.join('; ')}`);
  }
}

function isThenable(value) {
  return value !== null && (typeof value === 'object' || typeof value === 'function') && typeof value.then === 'function';
}

function queryError(thrown) {
  if (thrown instanceof QueryError) {
    return thrown.kind === 'unknown-query' ? { tag: 'unknown-query' } : { tag: thrown.kind, val: thrown.message };
  }
  // A state helper (or anything else) failing inside a query is a failed query.
  return { tag: 'failed', val: messageOf(thrown) };
}

/**
 * The `handler` export for `projection`: an object (or class instance) with
 *
 * - `name`: lowercase letters, digits and `-`, 1 to 64 characters;
 * - `version` (optional): a free-form label shown in status;
 * - `sources`: the topics it reads, at least one;
 * - `stateVersion`: bump it when new code needs state rebuilt by replay;
 * - `queries` (optional): names of the custom queries `query` answers;
 * - `handle(event)`: apply one event; throwing fails the event;
 * - `query(name, args)` (optional): answer a custom query with a JSON value
 *   (encoded for you) or a Uint8Array (sent as is); throw a `QueryError`.
 *
 * Export the result from the module componentize-js builds, as `handler`:
 * `export const handler = defineProjection({...})`.
 */
export function defineProjection(projection) {
  check(projection);
  const descriptor = {
    name: projection.name,
    version: projection.version === undefined ? '' : String(projection.version),
    sources: [...projection.sources],
    stateVersion: projection.stateVersion,
    queries: [...(projection.queries ?? [])],
  };

  return {
    describe() {
      return descriptor;
    },

    // The host hands over a batch; events run one by one in order and the
    // first failure ends the batch with its index (the host then discards
    // every state change of the batch). A result object, not a throw: the
    // bindings would turn a thrown Error without `payload` into a trap.
    async handle(records) {
      for (let index = 0; index < records.length; index++) {
        try {
          const outcome = projection.handle(new Event(records[index]));
          if (isThenable(outcome)) await outcome;
        } catch (thrown) {
          return { tag: 'err', val: { index, message: messageOf(thrown) } };
        }
      }
      return { tag: 'ok', val: undefined };
    },

    async query(name, args) {
      if (projection.query === undefined) return { tag: 'err', val: { tag: 'unknown-query' } };
      try {
        let answer = projection.query(name, args);
        if (isThenable(answer)) answer = await answer;
        if (answer instanceof Uint8Array) return { tag: 'ok', val: answer };
        return { tag: 'ok', val: replyJson(answer) };
      } catch (thrown) {
        return { tag: 'err', val: queryError(thrown) };
      }
    },
  };
}

export { ProjectionError };
