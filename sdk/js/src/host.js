// The host's imports, as componentize-js exposes the WIT world
// `projector:projection/projection`: one module per imported interface.
// Off the host (unit tests under Node), `testing/register.js` maps these
// specifiers to an in-memory stand-in.
export { get, put, delete as remove, scan } from 'projector:projection/state@0.1.0';
export { log } from 'projector:projection/log@0.1.0';
