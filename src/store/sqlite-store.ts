import type { Database, Statement } from 'better-sqlite3';
import {
  decodeCursor,
  decodeTurnCursor,
  encodeCursor,
  encodeTurnCursor,
  titleFromMessage,
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
import { StoreUnavailableError } from '../errors.js';
import { migrate } from './sqlite-migrations.js';
import { importSqliteConversation, sqliteConversationIds } from './sqlite-transfer.js';
import { guardStatement, openSqliteDatabase, toStoreError } from './open-sqlite-store.js';

/** Conversations in a SQLite file (WAL mode): the default store, durable across restarts and crashes. */
export class SqliteConversationStore implements ConversationStore {
  readonly #database: Database;
  readonly #statements: Record<string, Statement>;
  #clock = 0;
  #pending: { operation: () => void; resolve: () => void; reject: (error: unknown) => void }[] = [];
  /** The last write the store refused as STORE_UNAVAILABLE (a full disk...), until a write commits again: health fails meanwhile. */
  #writeFailure: StoreUnavailableError | undefined;

  /** Opens (creating if needed) and migrates the database at `path` (`:memory:` for a throwaway one). */
  constructor(path: string) {
    this.#database = openSqliteDatabase(path, (database) => {
      database.pragma('journal_mode = WAL');
      // NORMAL in WAL mode survives a process crash (kill -9); only a power loss can cost the last commits.
      database.pragma('synchronous = NORMAL');
      database.pragma('foreign_keys = ON');
      database.pragma('busy_timeout = 5000');
      migrate(database);
    });
    const prepare = (sql: string) => guardStatement(this.#database.prepare(sql));
    this.#statements = {
      insertConversation: prepare(
        'INSERT INTO conversations (context_id, owner, title, created_at, updated_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (context_id) DO UPDATE SET updated_at = excluded.updated_at',
      ),
      insertTurn: prepare(`INSERT INTO turns (turn_id, context_id, sequence, user_message, status, model, created_at, client_message_id)
        VALUES (?, ?, (SELECT COALESCE(MAX(sequence), 0) + 1 FROM turns WHERE context_id = ?), ?, 'streaming', ?, ?, ?)`),
      saveProgress: prepare("UPDATE turns SET answer = ?, token_count = ? WHERE turn_id = ? AND status = 'streaming'"),
      saveProgressWithSteps: prepare(
        "UPDATE turns SET answer = ?, token_count = ?, tool_steps = ? WHERE turn_id = ? AND status = 'streaming'",
      ),
      finishTurn: prepare(
        "UPDATE turns SET status = ?, answer = ?, usage = ?, timings = ?, error_code = ?, token_count = ?, finished_at = ?, tool_steps = COALESCE(?, tool_steps) WHERE turn_id = ? AND status = 'streaming'",
      ),
      touchConversation: prepare(
        'UPDATE conversations SET updated_at = ? WHERE context_id = (SELECT context_id FROM turns WHERE turn_id = ?)',
      ),
      getTurn: prepare('SELECT * FROM turns WHERE turn_id = ?'),
      findByClientMessage: prepare('SELECT * FROM turns WHERE context_id = ? AND client_message_id = ?'),
      latestTurn: prepare('SELECT * FROM turns WHERE context_id = ? ORDER BY sequence DESC LIMIT 1'),
      conversationTurns: prepare('SELECT * FROM turns WHERE context_id = ? ORDER BY sequence'),
      // Both read backwards along turns_by_conversation and stop after LIMIT rows, however long the conversation.
      turnsBefore: prepare('SELECT * FROM turns WHERE context_id = ? AND sequence < ? ORDER BY sequence DESC LIMIT ?'),
      recentTurns: prepare(
        "SELECT * FROM turns WHERE context_id = ? AND status <> 'streaming' AND answer <> '' ORDER BY sequence DESC LIMIT ?",
      ),
      owner: prepare('SELECT owner FROM conversations WHERE context_id = ?'),
      getSummary: prepare(`SELECT ${SUMMARY_COLUMNS} FROM conversations c WHERE c.context_id = ?`),
      firstPage: prepare(
        `SELECT ${SUMMARY_COLUMNS} FROM conversations c WHERE c.owner IS ? ORDER BY c.updated_at DESC, c.context_id DESC LIMIT ?`,
      ),
      nextPage: prepare(`SELECT ${SUMMARY_COLUMNS} FROM conversations c
        WHERE c.owner IS ? AND (c.updated_at < ? OR (c.updated_at = ? AND c.context_id < ?))
        ORDER BY c.updated_at DESC, c.context_id DESC LIMIT ?`),
      rename: prepare('UPDATE conversations SET title = ? WHERE context_id = ?'),
      deleteConversation: prepare('DELETE FROM conversations WHERE context_id = ?'),
      markInterrupted: prepare("UPDATE turns SET status = 'interrupted', finished_at = ? WHERE status = 'streaming'"),
      // Health: a row of each table is read, and a write is begun then rolled back (a read-only file or one
      // another process locks fails it). A rolled-back write needs no disk space, so a full disk shows in the
      // writes that failed (#writeFailure); then the probe row is really written, to see when space is back.
      pingConversations: prepare('SELECT context_id FROM conversations LIMIT 1'),
      pingTurns: prepare('SELECT turn_id, answer FROM turns ORDER BY rowid DESC LIMIT 1'),
      pingWrite: prepare('INSERT INTO schema_migrations (version, applied_at) VALUES (0, 0)'),
      probeWrite: prepare(
        'INSERT INTO store_probe (id, written_at) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET written_at = excluded.written_at',
      ),
    };
  }

  async startTurn(turn: NewTurn): Promise<TurnRecord> {
    const now = this.#now();
    await this.#write(() => {
      this.#statements.insertConversation!.run(turn.contextId, turn.owner, titleFromMessage(turn.userMessage), now, now);
      this.#statements.insertTurn!.run(
        turn.turnId,
        turn.contextId,
        turn.contextId,
        turn.userMessage,
        turn.model,
        now,
        turn.clientMessageId ?? null,
      );
    });
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
    const steps = toolSteps && toolSteps.length > 0 ? JSON.stringify(toolSteps) : undefined;
    await this.#write(() => {
      const { changes } =
        steps === undefined
          ? this.#statements.saveProgress!.run(answer, tokenCount, turnId)
          : this.#statements.saveProgressWithSteps!.run(answer, tokenCount, steps, turnId);
      // Thrown inside the batch: it rolls back, and the other writes of the batch are applied one by one.
      if (changes === 0) throw new TurnFencedError(turnId);
    });
  }

  async finishTurn(turnId: string, outcome: TurnOutcome): Promise<void> {
    const now = this.#now();
    await this.#write(() => {
      const { changes } = this.#statements.finishTurn!.run(
        outcome.status,
        outcome.answer,
        outcome.usage ? JSON.stringify(outcome.usage) : null,
        outcome.timings ? JSON.stringify(outcome.timings) : null,
        outcome.errorCode ?? null,
        outcome.tokenCount,
        now,
        outcome.toolSteps && outcome.toolSteps.length > 0 ? JSON.stringify(outcome.toolSteps) : null,
        turnId,
      );
      // Recorded once: a turn that already ended (or was marked interrupted, or deleted) keeps its outcome.
      if (changes === 0) throw new TurnFencedError(turnId);
      this.#statements.touchConversation!.run(now, turnId);
    });
  }

  async getTurn(turnId: string): Promise<TurnRecord | undefined> {
    this.#flush();
    const row = this.#statements.getTurn!.get(turnId) as TurnRow | undefined;
    return row && toTurn(row);
  }

  async findTurnByClientMessageId(contextId: string, clientMessageId: string): Promise<TurnRecord | undefined> {
    this.#flush();
    const row = this.#statements.findByClientMessage!.get(contextId, clientMessageId) as TurnRow | undefined;
    return row && toTurn(row);
  }

  async latestTurn(contextId: string): Promise<TurnRecord | undefined> {
    this.#flush();
    const row = this.#statements.latestTurn!.get(contextId) as TurnRow | undefined;
    return row && toTurn(row);
  }

  async conversationOwner(contextId: string): Promise<string | null | undefined> {
    this.#flush();
    const row = this.#statements.owner!.get(contextId) as { owner: string | null } | undefined;
    return row?.owner;
  }

  async getConversation(contextId: string): Promise<ConversationRecord | undefined> {
    this.#flush();
    const summary = this.#statements.getSummary!.get(contextId) as ConversationRow | undefined;
    if (!summary) return undefined;
    const turns = (this.#statements.conversationTurns!.all(contextId) as TurnRow[]).map((row) => toTurn(row));
    return { ...toSummary(summary), turns };
  }

  async getConversationPage(
    contextId: string,
    options: { limit: number; cursor?: string | undefined },
  ): Promise<ConversationTurnsPage | undefined> {
    this.#flush();
    const summary = this.#statements.getSummary!.get(contextId) as ConversationRow | undefined;
    if (!summary) return undefined;
    const before = (options.cursor === undefined ? undefined : decodeTurnCursor(options.cursor)) ?? Number.MAX_SAFE_INTEGER;
    const rows = this.#statements.turnsBefore!.all(contextId, before, options.limit + 1) as TurnRow[];
    const page = rows.slice(0, options.limit).reverse();
    const nextCursor = rows.length > options.limit ? encodeTurnCursor(page[0]!.sequence) : undefined;
    return { ...toSummary(summary), turns: page.map((row) => toTurn(row)), nextCursor };
  }

  async recentTurns(contextId: string, maxTurns: number): Promise<TurnRecord[]> {
    this.#flush();
    if (maxTurns <= 0) return [];
    return (this.#statements.recentTurns!.all(contextId, maxTurns) as TurnRow[]).reverse().map((row) => toTurn(row));
  }

  async listConversations(options: { owner: string | null; limit: number; cursor?: string | undefined }): Promise<ConversationPage> {
    this.#flush();
    const position = options.cursor === undefined ? undefined : decodeCursor(options.cursor);
    const rows = (
      position
        ? this.#statements.nextPage!.all(options.owner, position.updatedAt, position.updatedAt, position.contextId, options.limit + 1)
        : this.#statements.firstPage!.all(options.owner, options.limit + 1)
    ) as ConversationRow[];
    const conversations = rows.slice(0, options.limit).map(toSummary);
    const last = conversations.at(-1);
    const nextCursor =
      rows.length > options.limit && last ? encodeCursor({ updatedAt: last.updatedAt.getTime(), contextId: last.contextId }) : undefined;
    return { conversations, nextCursor };
  }

  async renameConversation(contextId: string, title: string): Promise<ConversationSummary | undefined> {
    this.#flush();
    if (this.#tracked(() => this.#statements.rename!.run(title, contextId)).changes === 0) return undefined;
    return toSummary(this.#statements.getSummary!.get(contextId) as ConversationRow);
  }

  async deleteConversation(contextId: string): Promise<boolean> {
    this.#flush();
    return this.#tracked(() => this.#statements.deleteConversation!.run(contextId)).changes > 0;
  }

  async exportConversations(options: { after?: string | undefined; limit: number }): Promise<ConversationRecord[]> {
    this.#flush();
    const records = await Promise.all(sqliteConversationIds(this.#database, options).map((id) => this.getConversation(id)));
    return records.filter((record) => record !== undefined);
  }

  async importConversation(copy: ConversationRecord): Promise<ImportResult> {
    this.#flush();
    return this.#tracked(() => importSqliteConversation(this.#database, copy));
  }

  async markInterrupted(): Promise<number> {
    this.#flush();
    return this.#statements.markInterrupted!.run(Date.now()).changes;
  }

  async reapAbandonedTurn(): Promise<string | undefined> {
    // Only this process writes here: a turn `streaming` is this process's own, or one a restart marks.
    return undefined;
  }

  async ping(): Promise<void> {
    this.#flush();
    if (this.#writeFailure) {
      // A real commit: it needs the disk space (or write access) the failed writes lacked.
      this.#tracked(() => this.#statements.probeWrite!.run(Date.now()));
      return;
    }
    try {
      this.#database.transaction(() => {
        this.#statements.pingConversations!.get();
        this.#statements.pingTurns!.get();
        this.#statements.pingWrite!.run();
        throw ROLLBACK;
      })();
    } catch (error) {
      if (error !== ROLLBACK) throw error;
    }
  }

  async close(): Promise<void> {
    this.#flush();
    if (this.#database.open) this.#database.close();
  }

  /** Runs one write outside the queue, recording whether the store refused it or took it. */
  #tracked<T>(write: () => T): T {
    try {
      const result = write();
      this.#writeFailure = undefined;
      return result;
    } catch (error) {
      // A commit's own failure (WAL mode writes at commit) comes straight from SQLite, not through guardStatement.
      const failure = toStoreError(error);
      if (failure instanceof StoreUnavailableError) this.#writeFailure = failure;
      throw failure;
    }
  }

  /**
   * Queues a write; every write queued in the same turn of the event loop commits in one transaction
   * (a commit costs ~90 µs here, a write inside one a few µs). Reads flush the queue first, so
   * they always see every write asked for before them.
   */
  #write(operation: () => void): Promise<void> {
    // A closed store has no connection to write with: refuse at once rather than leave the caller waiting forever.
    if (!this.#database.open) return Promise.reject(closedError());
    return new Promise((resolve, reject) => {
      this.#pending.push({ operation, resolve, reject });
      if (this.#pending.length === 1) setImmediate(() => this.#flush());
    });
  }

  #flush(): void {
    if (this.#pending.length === 0) return;
    const batch = this.#pending.splice(0);
    if (!this.#database.open) {
      for (const write of batch) write.reject(closedError());
      return;
    }
    try {
      this.#tracked(() =>
        this.#database.transaction(() => {
          for (const write of batch) write.operation();
        })(),
      );
      for (const write of batch) write.resolve();
    } catch {
      // One bad write must not fail the others: apply them one by one, failing only the bad one.
      for (const write of batch) {
        try {
          this.#tracked(() => this.#database.transaction(write.operation)());
          write.resolve();
        } catch (error) {
          write.reject(toStoreError(error));
        }
      }
    }
  }

  /** A clock that never repeats a millisecond within this process, so the newest-first order is total. */
  #now(): number {
    this.#clock = Math.max(Date.now(), this.#clock + 1);
    return this.#clock;
  }
}

function closedError(): StoreUnavailableError {
  return new StoreUnavailableError('The conversation store is closed (the server is shutting down). Please try again in a moment.');
}

/** Thrown inside the health probe's transaction so that its write is rolled back. */
const ROLLBACK = Symbol('rollback');
