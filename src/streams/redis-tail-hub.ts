import type { Redis } from 'ioredis';
import { decodeLive, type DecodedEntries } from './redis-log-format.js';

/** One reader following a turn's live channel. */
export interface TailListener {
  /** Entries a flush published (undefined: a message that could not be read, so the reader repairs from the stream). */
  deliver(entries: DecodedEntries | undefined): void;
  /** The subscriber connection came back: messages may have been missed, so the reader catches up from the stream. */
  reconnected(): void;
}

interface Channel {
  listeners: Set<TailListener>;
  /** Listeners of a channel whose messages are not log entries (the control channel): handed each message as it came. */
  raw?: Set<(message: string) => void>;
  /** Settles once Redis confirmed the subscription (or failed to: readers then rely on catch-up reads). */
  subscribed: Promise<void>;
}

/**
 * The live tail of every turn this process reads but does not produce, over ONE subscriber connection
 * (scale-out.md §6.10): one channel subscription per tailed turn, shared by all its local readers, and
 * dropped when the last leaves. No blocking reads anywhere: pub/sub only says what was appended; the
 * Stream stays the truth, and after every reconnect each reader catches up from it.
 */
export class RedisTailHub {
  readonly #createSubscriber: () => Redis;
  #subscriber: Redis | undefined;
  readonly #channels = new Map<string, Channel>();
  #closed = false;

  constructor(createSubscriber: () => Redis) {
    this.#createSubscriber = createSubscriber;
  }

  /** How many channels are subscribed now. */
  get channels(): number {
    return this.#channels.size;
  }

  /**
   * Starts delivering a channel's messages to a listener; resolves once the subscription is in place,
   * so whatever the reader reads from the stream after that cannot miss an entry. Returns how to stop.
   */
  async follow(channel: string, listener: TailListener): Promise<() => void> {
    if (this.#closed) return ignore;
    const subscriber = this.#connection();
    let record = this.#channels.get(channel);
    if (!record) {
      // Not confirmed within a second (Redis away): the reader goes on with range reads, and the
      // subscription, queued by the connection, is confirmed (with a catch-up) once it is back.
      const confirmed = subscriber.subscribe(channel).then(ignore, ignore);
      const waited = new Promise<void>((resolve) => setTimeout(resolve, SUBSCRIBE_WAIT_MS).unref());
      record = { listeners: new Set(), subscribed: Promise.race([confirmed, waited]) };
      this.#channels.set(channel, record);
    }
    record.listeners.add(listener);
    await record.subscribed;
    const followed = record;
    return () => {
      followed.listeners.delete(listener);
      if (followed.listeners.size > 0 || this.#channels.get(channel) !== followed) return;
      this.#channels.delete(channel);
      if (!this.#closed) subscriber.unsubscribe(channel).catch(ignore);
    };
  }

  /**
   * Hands every message of a channel that carries no log entries (the control channel) to `onMessage`,
   * over the same subscriber connection; resolves once subscribed (or a second later). Returns how to stop.
   */
  async listen(channel: string, onMessage: (message: string) => void): Promise<() => void> {
    const stop = await this.follow(channel, { deliver: ignore, reconnected: ignore });
    const record = this.#channels.get(channel);
    if (!record) return stop;
    (record.raw ??= new Set()).add(onMessage);
    return () => {
      record.raw?.delete(onMessage);
      stop();
    };
  }

  /** Closes the subscriber connection; readers still following end through their log's close. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#channels.clear();
    const subscriber = this.#subscriber;
    this.#subscriber = undefined;
    if (subscriber) {
      if (subscriber.status === 'ready') await subscriber.quit().catch(ignore);
      subscriber.disconnect();
    }
  }

  /** The subscriber connection, made on first use. */
  #connection(): Redis {
    if (this.#subscriber) return this.#subscriber;
    const subscriber = this.#createSubscriber();
    this.#subscriber = subscriber;
    subscriber.on('message', (channel: string, message: string) => {
      const record = this.#channels.get(channel);
      if (!record) return;
      if (record.raw) {
        for (const onMessage of record.raw) onMessage(message);
        return;
      }
      const entries = decodeLive(message);
      for (const listener of record.listeners) listener.deliver(entries);
    });
    subscriber.on('ready', () => {
      // On every connection, the first too (a reader may have begun while Redis was away): subscribed
      // again (ioredis resubscribes too; a repeated SUBSCRIBE is harmless) BEFORE the readers catch up
      // from the stream, so an entry published in between is either read or delivered.
      const channels = [...this.#channels.keys()];
      const resubscribed = channels.length > 0 ? subscriber.subscribe(...channels).then(ignore, ignore) : Promise.resolve();
      void resubscribed.then(() => {
        for (const record of this.#channels.values()) for (const listener of record.listeners) listener.reconnected();
      });
    });
    return subscriber;
  }
}

/** How long a new reader waits for its subscription to be confirmed. */
const SUBSCRIBE_WAIT_MS = 1000;

function ignore(): void {}
