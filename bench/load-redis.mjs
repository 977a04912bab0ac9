// The load generator's scenarios across two instances (P6): a turn produced on one instance (`url`)
// read at the same time on the other (`remoteUrl`) from the replay log in Redis, and resumes on the
// other instance. Both readers are in this one process, so their receive times share one clock.
import { readStream, spread } from './sse-read.mjs';

const milliseconds = (nanoseconds) => Number(nanoseconds) / 1e6;

/**
 * `concurrency` streams (× `rounds`) on the producing instance, each with a second reader on the
 * other instance that attaches by `Last-Event-ID: <turn_id>/start` as soon as `start` arrives. The
 * remote delay of a token is its receive time on the remote reader minus on the local one, counted
 * for the tokens the local reader got after the remote reader's `start` (live tail, not backlog).
 */
export async function pair({ url, remoteUrl, concurrency, rounds = 1 }) {
  const remoteDelay = [];
  const localAdded = [];
  const remoteAdded = [];
  const localFirst = [];
  let tokens = 0;
  let failures = 0;
  let busy = 0;
  const errors = new Set();
  let next = 0;
  const total = concurrency * rounds;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) {
        const index = next++;
        const localAt = [];
        const remoteAt = [];
        let remoteStartAt;
        let remote;
        // Before the producer's first flush lands, the other instance cannot find the turn's log in
        // Redis and refuses as busy (409): counted, and tried again 5 ms later, as a client would.
        const attach = (lastEventId) =>
          readStream(`${remoteUrl}/api/v1/chat/streaming?message=pair%20${index}`, { 'last-event-id': lastEventId }, undefined, {
            onStart: (_, at) => (remoteStartAt = at),
            onToken: (token, _, at) => (remoteAt[token.token_index] = at),
          }).catch(async (error) => {
            if (error.code !== 'CONVERSATION_BUSY') throw error;
            busy++;
            await new Promise((resolve) => setTimeout(resolve, 5));
            return attach(lastEventId);
          });
        try {
          const local = await readStream(`${url}/api/v1/chat/streaming?message=pair%20${index}`, {}, undefined, {
            onStart: (event) => {
              remote = attach(`${event.turn_id}/start`);
              remote.catch(() => {});
            },
            onToken: (token, _, at) => (localAt[token.token_index] = at),
          });
          const onRemote = await remote;
          if (onRemote.tokens !== local.tokens) throw new Error(`remote reader got ${onRemote.tokens} tokens, local ${local.tokens}`);
          tokens += local.tokens;
          if (local.firstAdded !== null) localFirst.push(local.firstAdded);
          localAdded.push(...local.added);
          remoteAdded.push(...onRemote.added);
          for (let token = 0; token < localAt.length; token++)
            if (localAt[token] > remoteStartAt) remoteDelay.push(milliseconds(remoteAt[token] - localAt[token]));
        } catch (error) {
          failures++;
          errors.add(error.message);
        }
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  return {
    streams: total,
    failures,
    errors: [...errors].slice(0, 5),
    seconds,
    tokens,
    tokensPerSecond: tokens / seconds,
    firstTokenAdded: spread(localFirst),
    tokenAdded: spread(localAdded),
    remoteTokenAdded: spread(remoteAdded),
    remoteDelay: { ...spread(remoteDelay), samples: remoteDelay.length },
    busyRefusals: busy,
  };
}

/**
 * Resumes on the other instance, one after another, timed from the request to the first token.
 * `running`: one turn generating on `url` (read there to its end); each resume gives the id of the
 * token 10 behind the newest the local reader has, so its first token is backlog, not a wait for the
 * model. `ended`: `reconnects` turns each generated on `url` and, the moment its `end` arrives,
 * resumed on `remoteUrl` from `<turn_id>/start` and read to the end.
 */
export async function crossResume({ url, remoteUrl, reconnects, mode }) {
  const firstToken = [];
  let failures = 0;
  const errors = new Set();
  const fail = (error) => {
    failures++;
    errors.add(error.message);
  };
  if (mode === 'running') {
    const ids = [];
    let ended = false;
    const producer = readStream(`${url}/api/v1/chat/streaming?message=running`, {}, undefined, {
      onToken: (token, id) => (ids[token.token_index] = id),
    }).finally(() => (ended = true));
    producer.catch(() => {});
    while (ids.length < 20 && !ended) await new Promise((resolve) => setTimeout(resolve, 5));
    for (let done = 0; done < reconnects && !ended; done++) {
      const behind = ids.length - 10;
      await readStream(
        `${remoteUrl}/api/v1/chat/streaming?message=running`,
        { 'last-event-id': ids[behind] },
        (ms) => firstToken.push(ms),
        {
          firstIndex: behind + 1,
          firstTokenOnly: true,
        },
      ).catch(fail);
    }
    await producer.catch(fail);
  } else {
    for (let index = 0; index < reconnects; index++) {
      try {
        const { turnId } = await readStream(`${url}/api/v1/chat/streaming?message=ended%20${index}`);
        await readStream(`${remoteUrl}/api/v1/chat/streaming?message=ended%20${index}`, { 'last-event-id': `${turnId}/start` }, (ms) =>
          firstToken.push(ms),
        );
      } catch (error) {
        fail(error);
      }
    }
  }
  return { mode, reconnects: firstToken.length, failures, errors: [...errors].slice(0, 5), firstToken: spread(firstToken) };
}
