// `node --harmony-json-parse-with-source --import @projector/sdk/testing/register ...`:
// lets a projection and the SDK run under Node, with the host's imports
// served from memory. The flag gives Node 20 the ES2025 JSON features the
// SDK relies on for exact integers (JSON.rawJSON and JSON.parse source text
// access), which the engine inside the component has.
import { register } from 'node:module';

if (typeof JSON.rawJSON !== 'function') {
  process.emitWarning(
    'JSON.rawJSON is missing: run node with --harmony-json-parse-with-source, or integers beyond 2^53 will fail',
  );
}
register('./hooks.js', import.meta.url);
