import { ProjectionError } from './errors.js';
import { parse, parseMarked, utf8 } from './json.js';
import { DecodeError } from './types.js';

/**
 * One record of a stream, the same for every source (embedded log or
 * Kafka). Order is guaranteed within a partition only.
 */
export class Event {
  /** @param {object} record the WIT `event` record as componentize-js lifts it */
  constructor(record) {
    /** Topic. */
    this.source = record.source;
    /** Partition within the topic. */
    this.partition = record.partition;
    /** Position within the partition (BigInt: WIT `u64`). */
    this.offset = record.offset;
    /** Record key bytes, or undefined when the producer set none. */
    this.key = record.key;
    /** Record value bytes; undefined is a tombstone (Kafka null value). */
    this.payload = record.payload;
    /** Producer or broker timestamp, ms since the Unix epoch (BigInt: WIT `s64`). */
    this.timestampMs = record.timestampMs;
    /** Headers as [name, value bytes] pairs, in producer order. */
    this.headers = record.headers;
    this._marked = undefined;
  }

  /** `source/partition@offset`, to name the event in messages. */
  position() {
    return `${this.source}/${this.partition}@${this.offset}`;
  }

  _payloadBytes(what) {
    if (this.payload === undefined) {
      throw new ProjectionError(`event ${this.position()} has no payload (tombstone), expected ${what}`);
    }
    return this.payload;
  }

  _payloadText(what) {
    this._payloadBytes(what);
    try {
      return utf8(this.payload);
    } catch {
      throw new ProjectionError(`event ${this.position()} payload is not valid UTF-8, expected ${what}`);
    }
  }

  /** The payload as text (UTF-8). Fails on a tombstone or invalid UTF-8. */
  text() {
    return this._payloadText('text');
  }

  /**
   * The payload parsed as JSON: a fresh value on every call. Integers beyond
   * 2^53 - 1 come back as BigInt. Fails on a tombstone or invalid JSON.
   */
  json() {
    const text = this._payloadText('JSON');
    try {
      return parse(text);
    } catch (error) {
      throw new ProjectionError(`event ${this.position()} payload is not valid JSON: ${error.message}`);
    }
  }

  /**
   * The payload decoded into `type` (see `t`): checked as serde checks a Rust
   * struct. Fails, naming the event and the type, on a tombstone, invalid
   * JSON or a value that does not fit. The payload is parsed once per event.
   *
   * @template T
   * @param {import('./types.js').Type} type
   * @returns {T}
   */
  decode(type) {
    if (this._marked === undefined) {
      // The bytes, not text: like serde_json, invalid UTF-8 fails only in a
      // string that is read, not in the value of a field the type skips.
      const bytes = this._payloadBytes(`JSON for ${type.name}`);
      try {
        this._marked = { value: parseMarked(bytes) };
      } catch (error) {
        throw new ProjectionError(
          `event ${this.position()} payload is not valid JSON for ${type.name}: ${error.message}`,
        );
      }
    }
    try {
      return type.decode(this._marked.value);
    } catch (error) {
      if (!(error instanceof DecodeError)) throw error;
      throw new ProjectionError(
        `event ${this.position()} payload is not valid JSON for ${type.name}: ${error.message}`,
      );
    }
  }

  /** The key as text; undefined when there is no key or it is not UTF-8. */
  keyText() {
    if (this.key === undefined) return undefined;
    try {
      return utf8(this.key);
    } catch {
      return undefined;
    }
  }

  /** The value bytes of the first header called `name`, or undefined. */
  header(name) {
    for (const [header, value] of this.headers) {
      if (header === name) return value;
    }
    return undefined;
  }
}
