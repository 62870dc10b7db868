// `node --harmony-json-parse-with-source --import @projector/sdk/testing/register ...`:
// lets a projection and the SDK run under Node, with the host's imports
// served from memory. The flag gives Node 20 JSON.rawJSON (ES2025), which
// the SDK uses to write BigInt as a JSON integer and which the engine inside
// the component has.
import { register } from 'node:module';

if (typeof JSON.rawJSON !== 'function') {
  process.emitWarning(
    'JSON.rawJSON is missing: run node with --harmony-json-parse-with-source, or writing integers beyond 2^53 will fail',
  );
}
register('./hooks.js', import.meta.url);
