// Write Projector projections in JavaScript or TypeScript.
//
// See README.md; types in index.d.ts.

import * as state from './src/state.js';
import * as log from './src/log.js';
import * as query from './src/query.js';
import { parse, stringify } from './src/json.js';
import * as t from './src/types.js';
import * as u64 from './src/u64.js';

export { defineProjection } from './src/projection.js';
export { ProjectionError, QueryError } from './src/errors.js';
export { Event } from './src/event.js';
export { state, log, query, t, u64 };

/** JSON with exact integers (BigInt beyond 2^53 - 1), written as serde_json writes it. */
export const json = Object.freeze({ parse, stringify });
