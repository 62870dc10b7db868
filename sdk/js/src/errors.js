/**
 * Why an event could not be applied, or why a state or payload helper
 * failed: a message for the operator, shown in status and kept with
 * dead-lettered events.
 */
export class ProjectionError extends Error {
  constructor(message) {
    super(message);
    this.name = 'ProjectionError';
  }
}

/**
 * Why a custom query failed: `kind` is `unknown-query`, `bad-args` or
 * `failed`, as in the WIT variant `query-error`.
 */
export class QueryError extends Error {
  constructor(kind, message) {
    if (kind !== 'unknown-query' && kind !== 'bad-args' && kind !== 'failed') {
      throw new TypeError(`unknown query error kind ${JSON.stringify(kind)}`);
    }
    super(message ?? (kind === 'unknown-query' ? 'unknown query' : kind));
    this.name = 'QueryError';
    this.kind = kind;
  }

  /** The projection knows no query of that name. */
  static unknownQuery() {
    return new QueryError('unknown-query');
  }

  /** The arguments could not be understood; `message` says why. */
  static badArgs(message) {
    return new QueryError('bad-args', String(message));
  }

  /** The query failed while running. */
  static failed(message) {
    return new QueryError('failed', String(message));
  }
}

/** The text of anything thrown, for the operator. */
export function messageOf(thrown) {
  if (thrown instanceof ProjectionError || thrown instanceof QueryError) {
    return thrown.message;
  }
  if (thrown instanceof Error) {
    // A bug in the projection (TypeError, RangeError, ...): keep the kind.
    return `${thrown.name}: ${thrown.message}`;
  }
  try {
    return String(thrown);
  } catch {
    return 'a value that cannot be shown was thrown';
  }
}
