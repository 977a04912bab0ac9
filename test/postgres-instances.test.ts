import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { TurnFencedError, type TurnOutcome } from '../src/store/conversation-store.js';
import { PostgresConversationStore } from '../src/store/postgres-store.js';
import { createTestDatabase, hasPostgres } from './support/postgres.js';
import { instanceIds } from './support/process-store.js';

const OUTCOME: TurnOutcome = {
  status: 'complete',
  answer: 'all of it',
  usage: undefined,
  timings: undefined,
  errorCode: undefined,
  tokenCount: 3,
};
/** A plain connection to `url`, for what the test itself reads and holds. */
async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  return client;
}

/** The instance's heartbeat and stored timeout, read from its row. */
async function instanceRow(client: pg.Client, instanceId: string): Promise<{ heartbeat_at: number; timeout_ms: number }> {
  const { rows } = await client.query<{ heartbeat_at: string; timeout_ms: string }>(
    'SELECT heartbeat_at, timeout_ms FROM instances WHERE instance_id = $1',
    [instanceId],
  );
  return { heartbeat_at: Number(rows[0]!.heartbeat_at), timeout_ms: Number(rows[0]!.timeout_ms) };
}

const turn = (turnId: string, contextId: string) => ({
  turnId,
  contextId,
  userMessage: 'hi',
  model: 'm',
  clientMessageId: undefined,
  owner: null,
});

describe.skipIf(!hasPostgres())('instances sharing one PostgreSQL', () => {
  const open: PostgresConversationStore[] = [];
  afterEach(async () => {
    await Promise.allSettled(open.splice(0).map((store) => store.close()));
  });

  it("reaps only the turns of an instance whose heartbeat stopped, and fences that instance's later writes", async () => {
    const url = await createTestDatabase('instances');
    const reaped: number[] = [];
    const fenced: string[] = [];
    // The "dead" instance: its heartbeat is written once, at start, and never again (as after kill -9 or SIGSTOP).
    // 3 s: the live instance judges others only once it has been connected that long, so the check right after
    // start-up below holds even on a loaded machine, where opening and the first writes can take a second or more.
    const dead = await PostgresConversationStore.open(url, {
      instanceTimeoutMs: 3000,
      heartbeatMs: 3_600_000,
      onFenced: (id) => fenced.push(id),
    });
    const live = await PostgresConversationStore.open(url, {
      instanceTimeoutMs: 3000,
      heartbeatMs: 100,
      onReaped: (count) => reaped.push(count),
    });
    open.push(dead, live);
    expect(dead.instanceId).not.toBe(live.instanceId);
    await dead.startTurn(turn('dead-turn', 'c-dead'));
    await dead.saveProgress('dead-turn', 'half', 1);
    await live.startTurn(turn('live-turn', 'c-live'));

    // Reaped only after the timeout, and only the dead instance's turn.
    await sleep(200);
    expect((await live.getTurn('dead-turn'))!.status).toBe('streaming');
    await expect.poll(async () => (await live.getTurn('dead-turn'))!.status, { timeout: 10_000, interval: 100 }).toBe('interrupted');
    // The reap is counted once its statement returns, a moment after the row changed.
    await expect.poll(() => reaped.reduce((a, b) => a + b, 0), { timeout: 2000, interval: 20 }).toBe(1);
    expect(await live.getTurn('live-turn')).toMatchObject({ status: 'streaming' });
    expect(await live.getTurn('dead-turn')).toMatchObject({ answer: 'half', tokenCount: 1 });

    // The dead instance wakes up: its writes to the reaped turn change nothing.
    await expect(dead.saveProgress('dead-turn', 'more text', 2)).rejects.toBeInstanceOf(TurnFencedError);
    await expect(dead.finishTurn('dead-turn', OUTCOME)).rejects.toBeInstanceOf(TurnFencedError);
    expect(await live.getTurn('dead-turn')).toMatchObject({ status: 'interrupted', answer: 'half', tokenCount: 1 });
    expect(fenced).toEqual(['dead-turn', 'dead-turn']);

    // The live instance's own turn ends normally.
    await live.finishTurn('live-turn', OUTCOME);
    expect(await live.getTurn('live-turn')).toMatchObject({ status: 'complete', answer: 'all of it' });
  });

  it('at start-up reaps nothing of a live instance, and what a closed instance left at once', async () => {
    const url = await createTestDatabase('boot');
    const first = await PostgresConversationStore.open(url, { instanceTimeoutMs: 60_000 });
    open.push(first);
    await first.startTurn(turn('first-live', 'c1'));
    const second = await PostgresConversationStore.open(url, { instanceTimeoutMs: 60_000 });
    open.push(second);
    // The database started moments ago in this test run only if it is younger than the timeout: either way a live instance's turn stays.
    await second.markInterrupted();
    expect((await second.getTurn('first-live'))!.status).toBe('streaming');
    await first.close();
    // A closed instance's row is gone: its leftovers are dead at once (when the database has been up long enough to judge).
    const third = await PostgresConversationStore.open(url, { instanceTimeoutMs: 1 });
    open.push(third);
    await sleep(20);
    expect(await third.markInterrupted()).toBe(1);
    expect((await third.getTurn('first-live'))!.status).toBe('interrupted');
  });

  it("hands the turns it reaps to the reap step, keeps the longer of the log's and the saved answer, and ends a dead instance's turn as cancelled on request", async () => {
    const url = await createTestDatabase('reapstep');
    const gone = await PostgresConversationStore.open(url, { instanceTimeoutMs: 60_000 });
    await gone.startTurn(turn('longer-in-log', 'c1'));
    await gone.saveProgress('longer-in-log', 'half', 1);
    await gone.startTurn(turn('shorter-in-log', 'c2'));
    await gone.saveProgress('shorter-in-log', 'saved more', 2);
    await gone.startTurn(turn('cancel-me', 'c3'));
    await gone.saveProgress('cancel-me', 'so far', 2);
    const alive = await PostgresConversationStore.open(url, { instanceTimeoutMs: 60_000 });
    open.push(alive);
    await alive.startTurn(turn('alive', 'c4'));
    await gone.close();
    const steps: [string, string][] = [];
    // No heartbeat after the first, so no reap of its own: the cancel below must find its turn still `streaming`.
    const reaper = await PostgresConversationStore.open(url, {
      instanceTimeoutMs: 1,
      heartbeatMs: 3_600_000,
      onReaping: (turns, status) => {
        for (const reaped of turns) steps.push([reaped.turnId, status]);
        return Promise.resolve({
          logged: new Map([
            ['longer-in-log', { answer: 'half and more', tokenCount: 3 }],
            ['shorter-in-log', { answer: 'saved', tokenCount: 1 }],
            ['cancel-me', { answer: 'so far, and on', tokenCount: 4 }],
          ]),
          unsealed: new Set<string>(),
        });
      },
    });
    open.push(reaper);
    await sleep(20);
    // Asked by a cancel: only a dead instance's turn, and it ends `cancelled`.
    expect(await reaper.endAbandonedTurn('alive')).toBe(false);
    expect(await reaper.endAbandonedTurn('cancel-me')).toBe(true);
    expect(await reaper.getTurn('cancel-me')).toMatchObject({ status: 'cancelled', answer: 'so far, and on', tokenCount: 4 });
    await reaper.markInterrupted();
    await expect.poll(async () => (await reaper.getTurn('shorter-in-log'))!.status, { timeout: 5000, interval: 50 }).toBe('interrupted');
    expect(await reaper.getTurn('longer-in-log')).toMatchObject({ status: 'interrupted', answer: 'half and more', tokenCount: 3 });
    expect(await reaper.getTurn('shorter-in-log')).toMatchObject({ answer: 'saved more', tokenCount: 2 });
    expect(await reaper.getTurn('alive')).toMatchObject({ status: 'streaming' });
    expect(steps).toContainEqual(['cancel-me', 'cancelled']);
    expect(steps).toContainEqual(['longer-in-log', 'interrupted']);
    expect(steps.filter(([turnId]) => turnId === 'alive')).toEqual([]);
  });

  it('opened without a lease (an admin tool such as store:copy), joins no instances and reaps nothing', async () => {
    const url = await createTestDatabase('nolease');
    const instance = await PostgresConversationStore.open(url, { instanceTimeoutMs: 60_000 });
    await instance.startTurn(turn('left', 'c1'));
    await instance.close();
    // What a closed instance left is reaped at once by any instance (the test above); not by an admin tool.
    const admin = await PostgresConversationStore.open(url, { instanceTimeoutMs: 1, heartbeatMs: 10, lease: false });
    open.push(admin);
    await sleep(50);
    expect(await admin.markInterrupted()).toBe(0);
    expect((await admin.getTurn('left'))!.status).toBe('streaming');
    expect(await instanceIds(url)).toEqual([]);
    await admin.close();
    expect(await instanceIds(url)).toEqual([]);
  });

  it('keeps its heartbeat going on its own connection while every pooled connection is held by requests', async () => {
    const url = await createTestDatabase('busypool');
    const store = await PostgresConversationStore.open(url, {
      maxConnections: 1,
      timeoutMs: 5000,
      instanceTimeoutMs: 600,
      heartbeatMs: 100,
    });
    open.push(store);
    await store.startTurn(turn('held-turn', 'c-held'));
    const admin = await connect(url);
    try {
      // The pool's only connection waits on this lock, and the next request waits for that connection.
      await admin.query('BEGIN');
      await admin.query('LOCK TABLE conversations IN ACCESS EXCLUSIVE MODE');
      const requests = [store.listConversations({ owner: null, limit: 10 }), store.getConversation('c-held')];
      const before = await instanceRow(admin, store.instanceId);
      await sleep(700);
      const during = await instanceRow(admin, store.instanceId);
      const pending = Symbol('pending');
      expect(await Promise.race([Promise.allSettled(requests), sleep(0, pending)])).toBe(pending);
      expect(during.heartbeat_at - before.heartbeat_at).toBeGreaterThanOrEqual(300);
      await admin.query('ROLLBACK');
      expect((await Promise.all(requests))[1]).toMatchObject({ contextId: 'c-held' });
    } finally {
      await admin.end();
    }
  });

  it("reconnects its heartbeat after the database dropped the lease's connection, without crashing", async () => {
    const url = await createTestDatabase('relink');
    const store = await PostgresConversationStore.open(url, { instanceTimeoutMs: 600, heartbeatMs: 100 });
    open.push(store);
    const admin = await connect(url);
    try {
      await admin.query(
        'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()',
      );
      const cut = Date.now();
      await expect
        .poll(async () => (await instanceRow(admin, store.instanceId)).heartbeat_at, { timeout: 5000, interval: 100 })
        .toBeGreaterThan(cut + 200);
      // The request pool reconnects too.
      expect(await store.getConversation('none')).toBeUndefined();
    } finally {
      await admin.end();
    }
  });

  it("judges each instance by the timeout it stored itself: a shorter one's reaper leaves a longer one's turns alone", async () => {
    const url = await createTestDatabase('mixed');
    const reaped: number[] = [];
    // A quick reaper (600 ms) next to a patient instance (2 s timeout, a heartbeat every 667 ms) and a dead one (1 s timeout).
    const quickOpened = performance.now();
    const quick = await PostgresConversationStore.open(url, { instanceTimeoutMs: 600, heartbeatMs: 100, onReaped: (n) => reaped.push(n) });
    const patient = await PostgresConversationStore.open(url, { instanceTimeoutMs: 2000 });
    const dead = await PostgresConversationStore.open(url, { instanceTimeoutMs: 1000, heartbeatMs: 3_600_000 });
    open.push(quick, patient, dead);
    await patient.startTurn(turn('patient-turn', 'c-patient'));
    await dead.startTurn(turn('dead-turn', 'c-dead'));
    const admin = await connect(url);
    try {
      expect(await instanceRow(admin, patient.instanceId)).toMatchObject({ timeout_ms: 2000 });
      expect(await instanceRow(admin, quick.instanceId)).toMatchObject({ timeout_ms: 600 });
    } finally {
      await admin.end();
    }
    await expect.poll(async () => (await quick.getTurn('dead-turn'))!.status, { timeout: 5000, interval: 100 }).toBe('interrupted');
    // The patient instance's heartbeat is often older than 600 ms: by the quick one's timeout it would look dead. Until the
    // quick one has been connected for the patient's 2 s, another clause protects it too: the sample comes well after that.
    await sleep(Math.max(0, quickOpened + 5000 - performance.now()));
    expect((await quick.getTurn('patient-turn'))!.status).toBe('streaming');
    expect(reaped.reduce((a, b) => a + b, 0)).toBe(1);
  });

  it('keeps its heartbeat going, outside the transaction, while a reap waits on a slow seal', async () => {
    const url = await createTestDatabase('slowseal');
    const gone = await PostgresConversationStore.open(url, { instanceTimeoutMs: 60_000 });
    await gone.startTurn(turn('slow-seal', 'c-slow'));
    await gone.close();
    let release = () => {};
    const held = new Promise<void>((resolve) => (release = resolve));
    let entered = () => {};
    const sealing = new Promise<void>((resolve) => (entered = resolve));
    const errors: unknown[] = [];
    // A long timeout: no reap of the heartbeat's own here, only the one asked below.
    const store = await PostgresConversationStore.open(url, {
      instanceTimeoutMs: 60_000,
      heartbeatMs: 100,
      onInstanceError: (error) => errors.push(error),
      onReaping: async () => {
        entered();
        await held;
        return { logged: new Map(), unsealed: new Set<string>() };
      },
    });
    open.push(store);
    const admin = await connect(url);
    try {
      const ending = store.endAbandonedTurn('slow-seal');
      await sealing;
      const before = await instanceRow(admin, store.instanceId);
      await sleep(1000);
      // Committed and seen by others while the reap's transaction still waits.
      const during = await instanceRow(admin, store.instanceId);
      expect(during.heartbeat_at - before.heartbeat_at).toBeGreaterThanOrEqual(300);
      release();
      expect(await ending).toBe(true);
      expect(await store.getTurn('slow-seal')).toMatchObject({ status: 'cancelled' });
      expect(errors).toEqual([]);
    } finally {
      release();
      await admin.end();
    }
  });

  it('leaves a turn whose log it could not seal streaming for the next reap, and marks a turn as its log already ended', async () => {
    const url = await createTestDatabase('halfseal');
    const gone = await PostgresConversationStore.open(url, { instanceTimeoutMs: 60_000 });
    await gone.startTurn(turn('half-sealed', 'c1'));
    await gone.startTurn(turn('cancelled-in-log', 'c2'));
    await gone.saveProgress('cancelled-in-log', 'so far', 2);
    await gone.startTurn(turn('step-failed', 'c3'));
    await gone.close();
    let sealFailures = 1;
    const reaper = await PostgresConversationStore.open(url, {
      instanceTimeoutMs: 60_000,
      onReaping: async ([reaped]) => {
        if (reaped!.turnId === 'step-failed' && sealFailures-- > 0) throw new Error('the step failed');
        // Redis failed mid-seal once; the other log was ended `cancelled` by a reap whose update was lost.
        if (reaped!.turnId === 'half-sealed' && sealFailures-- > 0) return { logged: new Map(), unsealed: new Set(['half-sealed']) };
        const endedAs = reaped!.turnId === 'cancelled-in-log' ? ('cancelled' as const) : undefined;
        return { logged: new Map([[reaped!.turnId, { answer: 'from the log', tokenCount: 3, endedAs }]]), unsealed: new Set<string>() };
      },
    });
    open.push(reaper);
    expect(await reaper.reapAbandonedTurn('c1')).toBeUndefined();
    expect(await reaper.getTurn('half-sealed')).toMatchObject({ status: 'streaming' });
    expect(await reaper.reapAbandonedTurn('c1')).toBe('half-sealed');
    expect(await reaper.getTurn('half-sealed')).toMatchObject({ status: 'interrupted', answer: 'from the log' });
    expect(await reaper.reapAbandonedTurn('c2')).toBe('cancelled-in-log');
    expect(await reaper.getTurn('cancelled-in-log')).toMatchObject({ status: 'cancelled', answer: 'from the log', tokenCount: 3 });
    sealFailures = 1;
    expect(await reaper.reapAbandonedTurn('c3')).toBeUndefined();
    expect(await reaper.getTurn('step-failed')).toMatchObject({ status: 'streaming' });
    expect(await reaper.reapAbandonedTurn('c3')).toBe('step-failed');
  });
});
