import { randomUUID } from 'node:crypto';
import pg from 'pg';
import {
  decodeCursor,
  decodeTurnCursor,
  encodeCursor,
  encodeTurnCursor,
  TurnFencedError,
  type ConversationPage,
  type ConversationRecord,
  type ConversationStore,
  type ConversationSummary,
  type ConversationTurnsPage,
  type ImportResult,
  type NewTurn,
  type ToolStep,
  type TurnOutcome,
  type TurnRecord,
} from './conversation-store.js';
import { SUMMARY_COLUMNS, toSummary, toTurn, type ConversationRow, type TurnRow } from './sql-rows.js';
import { InstanceLease } from './postgres-instances.js';
import { migratePostgres } from './postgres-migrations.js';
import { fromStoredText } from './postgres-text.js';
import { insertTurn, updateProgress, writeOutcome } from './postgres-turn-writes.js';
import { EXPORT_CONCURRENCY, importPostgresConversation, postgresConversationIds, readInOrder } from './postgres-transfer.js';
import { BoundedPool } from './postgres-bounded.js';
import {
  operationBudgetMs,
  poolSize,
  postgresClientConfig,
  postgresPoolConfig,
  toPostgresStoreError,
  type PostgresStoreOptions,
} from './postgres-pool.js';

/** A turn row's record, its texts decoded (see postgres-text.ts). */
const fromRow = (row: TurnRow) => toTurn(row, fromStoredText);

/** How long one conversation's import (store:copy) may take in all. */
const IMPORT_BUDGET_MS = 60_000;

/** How the store is opened: its tuning, and whether this process joins the instances sharing the database. */
export interface PostgresOpenOptions extends PostgresStoreOptions {
  /** false: an admin tool (store:copy), not an instance: no instances row, no heartbeat, no reaping; it must not start turns. */
  lease?: boolean;
}

// `owner = $1` can use the index where `IS NOT DISTINCT FROM` cannot: one query for each case.
const OWNER_IS = (owner: string | null) => (owner === null ? 'c.owner IS NULL' : 'c.owner = $1');

/**
 * Conversations in PostgreSQL, shared by every ChatWait instance that names the same database. A pool
 * of connections with a timeout on each statement and on each connection attempt, so an outage fails
 * requests in about two seconds instead of hanging them; a connection that dies while idle is dropped
 * by the pool and logged, never thrown.
 */
export class PostgresConversationStore implements ConversationStore {
  readonly #db: BoundedPool;
  readonly #lease: InstanceLease;
  readonly #instanceId: string;
  readonly #options: PostgresStoreOptions;
  #clock = 0;
  #leased = false;

  private constructor(pool: pg.Pool, clientConfig: pg.ClientConfig, instanceId: string, options: PostgresStoreOptions) {
    this.#db = new BoundedPool(pool, operationBudgetMs(options), poolSize(options));
    this.#instanceId = instanceId;
    this.#options = options;
    this.#lease = new InstanceLease(clientConfig, {
      instanceId,
      timeoutMs: options.instanceTimeoutMs ?? 30_000,
      heartbeatMs: options.heartbeatMs,
      onError: options.onInstanceError,
      onReaped: options.onReaped,
      onReaping: options.onReaping,
    });
  }

  /** This process's id among the instances sharing the database (new at every start). */
  get instanceId(): string {
    return this.#instanceId;
  }

  /** Connects to `url`, brings the schema up to date (safely, while other instances do too) and returns the store. */
  static async open(url: string, options: PostgresOpenOptions = {}): Promise<PostgresConversationStore> {
    const pool = new pg.Pool(postgresPoolConfig(url, options));
    // Without a listener an idle connection's error (the server restarted, a network cut) would crash the process.
    pool.on('error', (error) => options.onIdleError?.(error));
    // The pool listens to its idle connections only: one lent out that breaks between two statements would crash
    // the process too. Its holder learns of it from its next statement, which fails (and drops it).
    pool.on('connect', (client) => client.on('error', () => {}));
    let store: PostgresConversationStore | undefined;
    try {
      await migratePostgres(pool);
      store = new PostgresConversationStore(pool, postgresClientConfig(url, options), options.instanceId ?? randomUUID(), options);
      store.#leased = options.lease !== false;
      if (store.#leased) await store.#lease.start();
    } catch (error) {
      if (store) await store.#lease.stop(); // its own connection, if its first heartbeat opened one
      await pool.end().catch(() => {});
      throw toPostgresStoreError(error, url);
    }
    return store;
  }

  async startTurn(turn: NewTurn): Promise<TurnRecord> {
    const now = this.#now();
    await insertTurn(this.#db, turn, this.#instanceId, now);
    const { owner: _owner, ...fields } = turn;
    return {
      ...fields,
      answer: '',
      status: 'streaming',
      createdAt: new Date(now),
      finishedAt: undefined,
      usage: undefined,
      timings: undefined,
      errorCode: undefined,
      tokenCount: 0,
      toolSteps: [],
    };
  }

  async saveProgress(turnId: string, answer: string, tokenCount: number, toolSteps?: readonly ToolStep[]): Promise<void> {
    if (!(await updateProgress(this.#db, this.#instanceId, turnId, { answer, tokenCount, toolSteps }))) this.#fenced(turnId);
  }

  async finishTurn(turnId: string, outcome: TurnOutcome): Promise<void> {
    if (!(await writeOutcome(this.#db, this.#instanceId, turnId, outcome, this.#now()))) this.#fenced(turnId);
  }

  async getTurn(turnId: string): Promise<TurnRecord | undefined> {
    return this.#oneTurn('SELECT * FROM turns WHERE turn_id = $1', [turnId]);
  }

  async findTurnByClientMessageId(contextId: string, clientMessageId: string): Promise<TurnRecord | undefined> {
    return this.#oneTurn('SELECT * FROM turns WHERE context_id = $1 AND client_message_id = $2', [contextId, clientMessageId]);
  }

  async latestTurn(contextId: string): Promise<TurnRecord | undefined> {
    return this.#oneTurn('SELECT * FROM turns WHERE context_id = $1 ORDER BY sequence DESC LIMIT 1', [contextId]);
  }

  async conversationOwner(contextId: string): Promise<string | null | undefined> {
    const { rows } = await this.#db.query<{ owner: string | null }>('SELECT owner FROM conversations WHERE context_id = $1', [contextId]);
    return rows[0]?.owner;
  }

  async getConversation(contextId: string): Promise<ConversationRecord | undefined> {
    const summary = await this.#summary(contextId);
    if (!summary) return undefined;
    const { rows } = await this.#db.query<TurnRow>('SELECT * FROM turns WHERE context_id = $1 ORDER BY sequence', [contextId]);
    return { ...summary, turns: rows.map(fromRow) };
  }

  async getConversationPage(
    contextId: string,
    options: { limit: number; cursor?: string | undefined },
  ): Promise<ConversationTurnsPage | undefined> {
    const summary = await this.#summary(contextId);
    if (!summary) return undefined;
    const before = (options.cursor === undefined ? undefined : decodeTurnCursor(options.cursor)) ?? 2 ** 31 - 1;
    const { rows } = await this.#db.query<TurnRow>(
      'SELECT * FROM turns WHERE context_id = $1 AND sequence < $2 ORDER BY sequence DESC LIMIT $3',
      [contextId, Math.min(before, 2 ** 31 - 1), options.limit + 1],
    );
    const page = rows.slice(0, options.limit).reverse();
    const nextCursor = rows.length > options.limit ? encodeTurnCursor(page[0]!.sequence) : undefined;
    return { ...summary, turns: page.map(fromRow), nextCursor };
  }

  async recentTurns(contextId: string, maxTurns: number): Promise<TurnRecord[]> {
    if (maxTurns <= 0) return [];
    const { rows } = await this.#db.query<TurnRow>(
      "SELECT * FROM turns WHERE context_id = $1 AND status <> 'streaming' AND answer <> '' ORDER BY sequence DESC LIMIT $2",
      [contextId, maxTurns],
    );
    return rows.reverse().map(fromRow);
  }

  async listConversations(options: { owner: string | null; limit: number; cursor?: string | undefined }): Promise<ConversationPage> {
    const position = options.cursor === undefined ? undefined : decodeCursor(options.cursor);
    const ownerParameters = options.owner === null ? [] : [options.owner];
    const next = ownerParameters.length + 1;
    const { rows } = position
      ? await this.#db.query<ConversationRow>(
          `SELECT ${SUMMARY_COLUMNS} FROM conversations c WHERE ${OWNER_IS(options.owner)}
           AND (c.updated_at < $${next} OR (c.updated_at = $${next} AND c.context_id < $${next + 1}))
           ORDER BY c.updated_at DESC, c.context_id DESC LIMIT $${next + 2}`,
          [...ownerParameters, position.updatedAt, position.contextId, options.limit + 1],
        )
      : await this.#db.query<ConversationRow>(
          `SELECT ${SUMMARY_COLUMNS} FROM conversations c WHERE ${OWNER_IS(options.owner)} ORDER BY c.updated_at DESC, c.context_id DESC LIMIT $${next}`,
          [...ownerParameters, options.limit + 1],
        );
    const conversations = rows.slice(0, options.limit).map(toSummary);
    const last = conversations.at(-1);
    const nextCursor =
      rows.length > options.limit && last ? encodeCursor({ updatedAt: last.updatedAt.getTime(), contextId: last.contextId }) : undefined;
    return { conversations, nextCursor };
  }

  async renameConversation(contextId: string, title: string): Promise<ConversationSummary | undefined> {
    const { rowCount } = await this.#db.query('UPDATE conversations SET title = $1 WHERE context_id = $2', [title, contextId]);
    return rowCount === 0 ? undefined : this.#summary(contextId);
  }

  async deleteConversation(contextId: string): Promise<boolean> {
    const { rowCount } = await this.#db.query('DELETE FROM conversations WHERE context_id = $1', [contextId]);
    return (rowCount ?? 0) > 0;
  }

  async exportConversations(options: { after?: string | undefined; limit: number }): Promise<ConversationRecord[]> {
    let ids: string[];
    try {
      ids = await postgresConversationIds(this.#db.pool, options);
    } catch (error) {
      throw toPostgresStoreError(error);
    }
    // A few at a time, not the whole page at once: a copy running beside live instances is a light load on their database.
    const records = await readInOrder(ids, (id) => this.getConversation(id), EXPORT_CONCURRENCY);
    return records.filter((record) => record !== undefined);
  }

  async importConversation(copy: ConversationRecord): Promise<ImportResult> {
    let result: ImportResult = { created: false, turnsAdded: 0, turnsSkipped: 0 };
    // An admin copy, not a request: a long conversation's many inserts get a minute, each still within the statement timeout.
    await this.#db.transaction(async (client) => {
      result = await importPostgresConversation(client, copy);
    }, IMPORT_BUDGET_MS);
    return result;
  }

  /**
   * Reaps, now, the turns of instances that are dead (their heartbeat stale): not every `streaming` turn,
   * since other instances may be generating theirs. Only when the database has itself been up for a
   * whole instance timeout, so instances it just lost during its own restart are not judged yet; the
   * heartbeat's regular reaping takes them later.
   */
  async markInterrupted(): Promise<number> {
    // An admin tool judges no instance: reaping is the instances' business.
    if (!this.#leased) return 0;
    const { rows } = await this.#db.query<{ settled: boolean }>(
      'SELECT pg_postmaster_start_time() < clock_timestamp() - make_interval(secs => $1::double precision / 1000) AS settled',
      [this.#options.instanceTimeoutMs ?? 30_000],
    );
    if (!rows[0]?.settled) return 0;
    try {
      // Only the turns of instances that are gone (stopped, or never recorded): a stale heartbeat may be a
      // live instance that was cut off with this one; the heartbeat judges those once it has run a whole timeout.
      return await this.#lease.reap({ goneOnly: true });
    } catch (error) {
      throw toPostgresStoreError(error);
    }
  }

  /**
   * Ends a `streaming` turn as `cancelled` if the instance generating it is dead (as the reaper would,
   * sealing its shared log the same way); whether it did. A live instance's turn is left to it.
   */
  async endAbandonedTurn(turnId: string): Promise<boolean> {
    if (!this.#leased) return false;
    try {
      return (await this.#lease.reap({ turnId, status: 'cancelled' })) > 0;
    } catch (error) {
      throw toPostgresStoreError(error);
    }
  }

  async reapAbandonedTurn(contextId: string): Promise<string | undefined> {
    // An admin tool judges no instance.
    if (!this.#leased) return undefined;
    try {
      return await this.#lease.reapConversation(contextId);
    } catch (error) {
      throw toPostgresStoreError(error);
    }
  }

  async ping(): Promise<void> {
    // A standby answers reads but refuses every write: it is not a store ChatWait can use.
    const { rows } = await this.#db.query<{ standby: boolean }>(
      'SELECT pg_is_in_recovery() AS standby, EXISTS (SELECT 1 FROM turns LIMIT 1) AS has_turns',
      [],
    );
    if (rows[0]?.standby) throw toPostgresStoreError(new Error('the database is a read-only standby'));
  }

  async close(): Promise<void> {
    if (!this.#db.close()) return;
    if (this.#leased) await this.#lease.stop();
    await this.#db.pool.end();
  }

  async #summary(contextId: string): Promise<ConversationSummary | undefined> {
    const { rows } = await this.#db.query<ConversationRow>(`SELECT ${SUMMARY_COLUMNS} FROM conversations c WHERE c.context_id = $1`, [
      contextId,
    ]);
    return rows[0] && toSummary(rows[0]);
  }

  async #oneTurn(sql: string, parameters: unknown[]): Promise<TurnRecord | undefined> {
    const { rows } = await this.#db.query<TurnRow>(sql, parameters);
    return rows[0] && fromRow(rows[0]);
  }

  /** Refuses a write to a turn that is no longer this instance's to write (see TurnFencedError). */
  #fenced(turnId: string): never {
    this.#options.onFenced?.(turnId);
    throw new TurnFencedError(turnId);
  }

  /** A clock that never repeats a millisecond within this process, so the newest-first order is total. */
  #now(): number {
    this.#clock = Math.max(Date.now(), this.#clock + 1);
    return this.#clock;
  }
}
