import { setTimeout as sleep } from 'node:timers/promises';
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
    const dead = await PostgresConversationStore.open(url, {
      instanceTimeoutMs: 600,
      heartbeatMs: 3_600_000,
      onFenced: (id) => fenced.push(id),
    });
    const live = await PostgresConversationStore.open(url, {
      instanceTimeoutMs: 600,
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
    await expect.poll(async () => (await live.getTurn('dead-turn'))!.status, { timeout: 5000, interval: 100 }).toBe('interrupted');
    expect(reaped.reduce((a, b) => a + b, 0)).toBe(1);
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
});
