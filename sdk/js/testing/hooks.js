// Module resolution hooks for Node, registered by ./register.js:
// - the host's WIT imports resolve to the in-memory stand-in in ./host.js;
// - `@projector/sdk` (and its subpaths) resolve to this SDK, so examples and
//   projections inside a checkout need no `npm install` to be tested.

const HOST = new URL('./host.js', import.meta.url).href;
const SDK = new URL('../', import.meta.url).href;
const WIT = new Map([
  ['projector:projection/state@0.1.0', `${HOST}?state`],
  ['projector:projection/log@0.1.0', `${HOST}?log`],
]);
const SDK_PATHS = new Map([
  ['@projector/sdk', `${SDK}index.js`],
  ['@projector/sdk/testing', `${SDK}testing/index.js`],
  ['@projector/sdk/testing/register', `${SDK}testing/register.js`],
]);

export async function resolve(specifier, context, nextResolve) {
  const url = WIT.get(specifier) ?? SDK_PATHS.get(specifier);
  if (url !== undefined) return { url, format: 'module', shortCircuit: true };
  return nextResolve(specifier, context);
}
