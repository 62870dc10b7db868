// Types for @projector/sdk: write Projector projections in JavaScript or
// TypeScript, built into WebAssembly components with componentize-js.

/** A u64 (or i64) as the SDK gives it: a Number up to 2^53 - 1, a BigInt beyond. */
export type U64 = number | bigint;

/** Bytes or text (stored as UTF-8). */
export type Bytes = Uint8Array | string;

/** One record of a stream, the same for every source (embedded log or Kafka). */
export declare class Event {
  /** Topic. */
  readonly source: string;
  /** Partition within the topic. Order is guaranteed within a partition only. */
  readonly partition: number;
  /** Position within the partition. */
  readonly offset: bigint;
  /** Record key bytes; undefined when the producer set none. */
  readonly key: Uint8Array | undefined;
  /** Record value bytes; undefined is a tombstone (Kafka null value), unlike an empty payload. */
  readonly payload: Uint8Array | undefined;
  /** Producer or broker timestamp, ms since the Unix epoch; the same on replay. */
  readonly timestampMs: bigint;
  /** Headers as [name, value] pairs, in the order the producer set them. */
  readonly headers: ReadonlyArray<readonly [string, Uint8Array]>;

  /** `source/partition@offset`, to name the event in messages. */
  position(): string;
  /** The payload as UTF-8 text. Throws on a tombstone or invalid UTF-8. */
  text(): string;
  /** The payload parsed as JSON (a fresh value per call); integers beyond 2^53 - 1 as BigInt. */
  json(): unknown;
  /**
   * The payload decoded into `type`, checked as serde checks a Rust struct.
   * Throws a ProjectionError naming the event and the type.
   */
  decode<T>(type: Type<T>): T;
  /** The key as text; undefined when absent or not UTF-8. */
  keyText(): string | undefined;
  /** The value of the first header called `name`. */
  header(name: string): Uint8Array | undefined;
}

/** Why an event could not be applied: the message goes to status and dead letters. */
export declare class ProjectionError extends Error {
  constructor(message: string);
}

export type QueryErrorKind = 'unknown-query' | 'bad-args' | 'failed';

/** Why a custom query failed. */
export declare class QueryError extends Error {
  constructor(kind: QueryErrorKind, message?: string);
  readonly kind: QueryErrorKind;
  /** The projection knows no query of that name. */
  static unknownQuery(): QueryError;
  /** The arguments could not be understood. */
  static badArgs(message: string): QueryError;
  /** The query failed while running. */
  static failed(message: string): QueryError;
}

/** What a projection module is. */
export interface Projection {
  /** Name in URLs and on the CLI: lowercase ASCII letters, digits and `-`, 1 to 64 characters. */
  readonly name: string;
  /** Free-form version label shown in status. */
  readonly version?: string;
  /** Topics this projection consumes, at least one. */
  readonly sources: readonly string[];
  /**
   * Version of the state layout: bump it when new code needs its state rebuilt
   * by replay; keep it when only queries or logging changed.
   */
  readonly stateVersion: number;
  /** Names of the custom queries `query` answers. */
  readonly queries?: readonly string[];
  /**
   * Apply one event. Throwing fails the event: the host discards the state
   * changes of the whole batch and applies the projection's error policy.
   */
  handle(event: Event): void | Promise<void>;
  /**
   * Answer the custom query `name` with `args` (JSON by convention, see
   * `query.argsJson`): a JSON value (encoded for you) or bytes. State is
   * read-only here. Throw a QueryError; anything else thrown is `failed`.
   */
  query?(name: string, args: Uint8Array): unknown;
}

/** The component's `handler` export. */
export interface Handler {
  describe(): {
    name: string;
    version: string;
    sources: string[];
    stateVersion: number;
    queries: string[];
  };
  handle(events: readonly RawEvent[]): Promise<{ tag: 'ok'; val: undefined } | { tag: 'err'; val: { index: number; message: string } }>;
  query(
    name: string,
    args: Uint8Array,
  ): Promise<
    | { tag: 'ok'; val: Uint8Array }
    | { tag: 'err'; val: { tag: 'unknown-query' } | { tag: 'bad-args' | 'failed'; val: string } }
  >;
}

/** The WIT `event` record as componentize-js hands it over. */
export interface RawEvent {
  source: string;
  partition: number;
  offset: bigint;
  key?: Uint8Array;
  payload?: Uint8Array;
  timestampMs: bigint;
  headers: Array<[string, Uint8Array]>;
}

/**
 * The `handler` export for a projection. The module componentize-js builds
 * must export it under that name: `export const handler = defineProjection({...})`.
 */
export declare function defineProjection(projection: Projection): Handler;

/** A JSON type: decodes parsed JSON into a checked `T`, and encodes `T` back. */
export declare class Type<T> {
  readonly name: string;
  decode(value: unknown): T;
  encode(value: T): unknown;
  /** What Rust's `Default` gives: 0, '', false, null, [] or a struct of those. */
  default(): T;
}

/** A struct type: `fields` in declared order. */
export interface StructType<T> extends Type<T> {
  readonly fields: Readonly<Record<string, Type<unknown>>>;
}

/** The value type of a Type. */
export type Infer<X> = X extends Type<infer T> ? T : never;

/** JSON types with serde's rules (see README). */
export declare namespace t {
  /** A JSON string (well-formed: no lone surrogate). */
  const string: Type<string>;
  /** true or false. */
  const bool: Type<boolean>;
  /** Unsigned 64-bit integer: integers only, 0 to 2^64 - 1. */
  const u64: Type<U64>;
  /** Signed 64-bit integer. */
  const i64: Type<U64>;
  /** Unsigned 32-bit integer (Rust's `usize` on wasm32). */
  const u32: Type<number>;
  /** Signed 32-bit integer. */
  const i32: Type<number>;
  /** Any JSON number. */
  const f64: Type<number>;
  /** Any JSON value, unchecked. */
  const any: Type<unknown>;
  /** null, absent (in a struct) or a `T`; decodes to null, never undefined. */
  function optional<T>(type: Type<T>): Type<T | null>;
  /** A JSON array of `T`. */
  function array<T>(type: Type<T>): Type<T[]>;
  /** A JSON object with any keys, each value a `T`. */
  function map<T>(type: Type<T>): Type<Record<string, T>>;
  /**
   * A record with the given fields, in declared order. Unknown fields are
   * ignored unless `denyUnknownFields`; a missing field fails unless optional.
   */
  function struct<F extends Record<string, Type<any>>>(
    name: string,
    fields: F,
    options?: { denyUnknownFields?: boolean },
  ): StructType<{ -readonly [K in keyof F]: Infer<F[K]> }>;
  /** A failure to decode or encode. */
  class DecodeError extends Error {}
}

/** This projection's own key/value state, ordered bytewise by key. */
export interface State {
  /** The bytes under `key`, or undefined. */
  get(key: Bytes): Uint8Array | undefined;
  /** Store `value` under `key`. Traps during a query or over the host's size limits. */
  put(key: Bytes, value: Bytes): void;
  /** Remove `key` if present. Traps during a query. */
  delete(key: Bytes): void;
  /** Up to `limit` [key, value] entries with `prefix`, in key order, after `startAfter`. */
  scan(prefix: Bytes, startAfter: Bytes | undefined | null, limit: number): Array<[Uint8Array, Uint8Array]>;
  /** Every entry with `prefix`, in key order, fetched a page at a time. */
  iter(prefix: Bytes): Generator<[Uint8Array, Uint8Array], void, undefined>;
  /** The JSON value under `key` (decoded into `type`), or undefined. */
  getJson<T>(key: Bytes, type: Type<T>): T | undefined;
  getJson(key: Bytes): unknown;
  /** Store `value` as compact JSON (through `type`: checked, fields in declared order). */
  putJson<T>(key: Bytes, value: T, type?: Type<T>): void;
  /** Like `scan`, with keys as text and values decoded from JSON. */
  scanJson<T>(prefix: Bytes, startAfter: Bytes | undefined | null, limit: number, type: Type<T>): Array<[string, T]>;
  scanJson(prefix: Bytes, startAfter: Bytes | undefined | null, limit: number): Array<[string, unknown]>;
  /** Like `iter`, with keys as text and values decoded from JSON. */
  iterJson<T>(prefix: Bytes, type: Type<T>): Generator<[string, T], void, undefined>;
  iterJson(prefix: Bytes): Generator<[string, unknown], void, undefined>;
}
export declare const state: State;

export type Level = 'trace' | 'debug' | 'info' | 'warn' | 'error';

/** Log lines attributed by the host to this projection and its version. */
export declare namespace log {
  function log(level: Level, message: string): void;
  function trace(message: string): void;
  function debug(message: string): void;
  function info(message: string): void;
  function warn(message: string): void;
  function error(message: string): void;
}

/** Helpers for `query`. */
export declare namespace query {
  /** Arguments from JSON (blank reads as `{}`), into `type`; a `bad-args` QueryError otherwise. */
  function argsJson<T>(args: Bytes, type: Type<T>): T;
  function argsJson(args: Bytes): unknown;
  /** An answer as compact JSON bytes (through `type` when given). */
  function replyJson<T>(value: T, type?: Type<T>): Uint8Array;
}

/** Checked arithmetic on u64 values (Number up to 2^53 - 1, BigInt beyond). */
export declare namespace u64 {
  /** `a + b`, or undefined past 2^64 - 1. */
  function checkedAdd(a: U64, b: U64): U64 | undefined;
  /** `a - b`, or undefined below 0. */
  function checkedSub(a: U64, b: U64): U64 | undefined;
  /** `a + b`; throws a ProjectionError past 2^64 - 1. */
  function add(a: U64, b: U64): U64;
  /** `a - b`; throws a ProjectionError below 0. */
  function sub(a: U64, b: U64): U64;
}

/** JSON with exact integers, written as serde_json writes it. */
export declare const json: {
  /** Parse JSON text or UTF-8 bytes; integers beyond 2^53 - 1 as BigInt. */
  parse(input: Bytes): unknown;
  /** Compact JSON, properties in creation order, BigInt as integers. */
  stringify(value: unknown): string;
};
