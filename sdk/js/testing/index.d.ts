import type { Handler, QueryError, RawEvent } from '../index.js';

/** An event record: partition 0, no key, no headers, timestamp 0 unless given; null payload = tombstone. */
export declare function event(
  source: string,
  offset: number | bigint,
  payload: Uint8Array | string | null | undefined,
  fields?: {
    partition?: number;
    key?: Uint8Array | string;
    timestampMs?: number | bigint;
    headers?: Array<[string, Uint8Array | string]>;
  },
): RawEvent;
/** Empty the state and the captured log lines. */
export declare function reset(): void;
/** Apply a batch as the host does: null, or the failure (the batch's changes undone). */
export declare function handle(handler: Handler, events: RawEvent[]): Promise<null | { index: number; message: string }>;
/** A query with read-only state: the answer bytes, or a rejected QueryError. */
export declare function query(handler: Handler, name: string, args?: Uint8Array | string): Promise<Uint8Array>;
/** Like `query`, parsed from JSON. */
export declare function queryJson(handler: Handler, name: string, args?: Uint8Array | string): Promise<unknown>;
/** The raw state, by key, in key order. */
export declare function state(): Map<string, Uint8Array>;
/** The state, each value parsed from JSON. */
export declare function stateJson(): Record<string, unknown>;
/** The state, each value as stored text. */
export declare function stateText(): Record<string, string>;
/** Log lines so far. */
export declare function logs(): Array<[string, string]>;
export type { QueryError };
