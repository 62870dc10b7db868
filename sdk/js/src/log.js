// Log lines attributed by the host to this projection and its version.

import * as host from './host.js';

const LEVELS = new Set(['trace', 'debug', 'info', 'warn', 'error']);

/** Log `message` at `level` (`trace`, `debug`, `info`, `warn` or `error`). */
export function log(level, message) {
  if (!LEVELS.has(level)) throw new TypeError(`unknown log level ${JSON.stringify(level)}`);
  host.log(level, String(message));
}

/** Log at trace level. */
export const trace = (message) => host.log('trace', String(message));
/** Log at debug level. */
export const debug = (message) => host.log('debug', String(message));
/** Log at info level. */
export const info = (message) => host.log('info', String(message));
/** Log at warn level. */
export const warn = (message) => host.log('warn', String(message));
/** Log at error level. */
export const error = (message) => host.log('error', String(message));
