import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { appendToRedisLog, defineLogScripts } from './redis-append-script.js';
import { decodeRange, type RedisLogKeys } from './redis-log-format.js';
import type { RedisTailHub } from './redis-tail-hub.js';
import { ReplayLogUnavailable } from './replay-log.js';
import type { SealedAnswer, TurnControl } from './turn-control.js';

/** Sets a generating turn's cancel flag (only on a log that exists: a flag must not outlive its log), then tells its producer. */
const REQUEST_CANCEL_LUA = `
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'cancel', '1') end
redis.call('PUBLISH', ARGV[1], ARGV[2])
return 1
`;

/**
 * Takes a turn's log over from its producer, unless it has ended: from now on the producer's flushes
 * are refused (FENCED), so what the log holds stops changing. Returns MISSING, SEALED or OK.
 */
const TAKE_OVER_LUA = `
local meta = redis.call('HMGET', KEYS[1], 'owner', 'sealed')
if not meta[1] then return 'MISSING' end
if meta[2] then return 'SEALED' end
redis.call('HSET', KEYS[1], 'owner', ARGV[1])
return 'OK'
`;

interface ControlRedis extends Redis {
  chatwaitRequestCancel(meta: string, channel: string, turnId: string): Promise<number>;
  chatwaitTakeOver(meta: string, writer: string): Promise<string>;
}

/** What the control of a Redis log needs from it. */
export interface RedisTurnControlOptions {
  redis: Redis;
  hub: RedisTailHub;
  /** What the control channel's name starts with (the log's key prefix). */
  prefix: string;
  keys: (turnId: string) => RedisLogKeys;
  /** The time to live of a sealed log's keys. */
  sealedTtlMs: number;
  /** How often the cancel flags of the turns generating here are read; 1 s by default. */
  pollMs?: number;
}

/**
 * Cancels and seals across instances over Redis (scale-out.md §6.13–14). The cancel flag in a turn's
 * meta is the truth; the message on the one control channel only makes the producer act at once. The
 * producer reads the flags of all its turns in one pipelined round trip every `pollMs`, and its log
 * writer reports the flag with each flush, so a lost message (a subscriber connection cut) delays a
 * cancel by a second at most, and a stalled model or a long tool call cannot hide it.
 */
export class RedisTurnControl implements TurnControl {
  readonly shared = true;
  readonly #options: RedisTurnControlOptions;
  readonly #redis: ControlRedis;
  readonly #channel: string;
  readonly #watched = new Map<string, () => void>();
  readonly #poll: NodeJS.Timeout;
  #listening: Promise<() => void> | undefined;
  #polling = false;

  constructor(options: RedisTurnControlOptions) {
    this.#options = options;
    this.#redis = options.redis as ControlRedis;
    this.#redis.defineCommand('chatwaitRequestCancel', { numberOfKeys: 1, lua: REQUEST_CANCEL_LUA });
    this.#redis.defineCommand('chatwaitTakeOver', { numberOfKeys: 1, lua: TAKE_OVER_LUA });
    // A seal appends its final entry with the log's own script.
    defineLogScripts(this.#redis);
    this.#channel = `${options.prefix}ctl`;
    this.#poll = setInterval(() => void this.#pollFlags(), options.pollMs ?? 1000);
    this.#poll.unref();
    // Subscribed from the start: a first connection takes a while, and a cancel may come right after a turn starts.
    this.#listening = options.hub.listen(this.#channel, (message) => this.cancelRequested(message));
  }

  watch(turnId: string, stop: () => void): () => void {
    let stopped = false;
    const once = () => {
      if (stopped) return;
      stopped = true;
      stop();
    };
    this.#watched.set(turnId, once);
    return () => {
      if (this.#watched.get(turnId) === once) this.#watched.delete(turnId);
    };
  }

  /** Resolves once the control channel is subscribed (or a second has passed): messages published before are not heard, only flags. */
  async subscribed(): Promise<void> {
    await this.#listening;
  }

  /** A flush or a message said a turn's cancel was asked: stops it if it generates here. */
  cancelRequested(turnId: string): void {
    this.#watched.get(turnId)?.();
  }

  async requestCancel(turnId: string): Promise<void> {
    try {
      await this.#redis.chatwaitRequestCancel(this.#options.keys(turnId).meta, this.#channel, turnId);
    } catch (error) {
      // Redis away (refused, or no answer within the command timeout): the cancel is a retryable 503, not a failure of ours.
      throw new ReplayLogUnavailable(error);
    }
  }

  async seal(turnId: string, finalData: (sealed: SealedAnswer) => string): Promise<SealedAnswer | undefined> {
    const keys = this.#options.keys(turnId);
    // A writer id of its own: two instances sealing at once fence each other, so only one final entry lands.
    const writer = `sealer:${randomUUID()}`;
    const taken = await this.#redis.chatwaitTakeOver(keys.meta, writer);
    if (taken === 'MISSING') return undefined;
    const { entries, finalPosition } = decodeRange((await this.#redis.xrange(keys.log, '-', '+')) as [string, string[]][]);
    const sealed = answerOf(entries);
    // Ended already (by its producer, or by an earlier seal whose reap did not get to mark the turn): what it ended with stands.
    if (taken === 'SEALED' || finalPosition !== undefined) {
      const final = entries.find((entry) => entry.position === finalPosition);
      return { ...sealed, endedWith: final?.data };
    }
    const next = entries.length === 0 ? 0 : entries.at(-1)!.position + 1;
    const data = finalData(sealed);
    const result = await appendToRedisLog(this.#redis, keys, writer, next, [{ data, tokenIndex: undefined }], {
      final: true,
      ttlMs: this.#options.sealedTtlMs,
    });
    // FENCED: another instance sealed it meanwhile; either way the log has exactly one final entry.
    if (result.status !== 'OK' && result.status !== 'FENCED') throw new Error(`could not seal the log of turn ${turnId}: ${result.status}`);
    return sealed;
  }

  async close(): Promise<void> {
    clearInterval(this.#poll);
    this.#watched.clear();
    const listening = this.#listening;
    this.#listening = undefined;
    if (listening) (await listening)();
  }

  /** Reads the cancel flags of every turn generating here, in one pipelined round trip. */
  async #pollFlags(): Promise<void> {
    if (this.#polling || this.#watched.size === 0) return;
    this.#polling = true;
    try {
      const turnIds = [...this.#watched.keys()];
      const flags = await Promise.all(
        turnIds.map((turnId) => this.#redis.hget(this.#options.keys(turnId).meta, 'cancel').catch(() => null)),
      );
      turnIds.forEach((turnId, index) => {
        if (flags[index] === '1') this.cancelRequested(turnId);
      });
    } finally {
      this.#polling = false;
    }
  }
}

/** The answer a log's token entries make. */
function answerOf(entries: readonly { data: string; tokenIndex: number | undefined }[]): SealedAnswer {
  const tokens: string[] = [];
  for (const entry of entries) {
    if (entry.tokenIndex === undefined) continue;
    try {
      tokens.push(String((JSON.parse(entry.data) as { token: unknown }).token));
    } catch {
      // Not a token after all: left out.
    }
  }
  return { answer: tokens.join(''), tokenCount: tokens.length };
}
