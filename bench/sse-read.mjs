// How the load generators read ChatWait's SSE: as a real client does (every event parsed, token
// order checked, the joined tokens compared with final_output), so a server that drops or repeats
// tokens fails the run instead of winning it. Shared by load.mjs and load-redis.mjs.
import http from 'node:http';

/** The load generators' keep-alive agent (one per process). */
export const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });

/** Percentile of a sorted-on-demand list of numbers. */
export function percentile(values, p) {
  if (values.length === 0) return null;
  const sorted = Float64Array.from(values).sort();
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** p50 and p99 of a list. */
export const spread = (values) => ({ p50: percentile(values, 50), p99: percentile(values, 99) });

/**
 * Reads one SSE stream; resolves with per-token timings once `end` arrives (or rejects).
 * Options: `onFirstToken(ms since the request)`, `onStart(event, receivedAt)`, `onToken(event, id,
 * receivedAt)` (receivedAt: process.hrtime.bigint()), `firstIndex` (a resume after a position: the
 * first token index expected; final_output is then not compared), `firstTokenOnly` (close after the
 * first token).
 */
export function readStream(url, headers = {}, onFirstToken, options = {}) {
  const firstIndex = options.firstIndex ?? 0;
  return new Promise((resolve, reject) => {
    const sentAt = process.hrtime.bigint();
    const request = http.get(url, { agent, headers }, (response) => {
      if (response.statusCode !== 200) {
        // The error code says which refusal it was (SERVER_BUSY, CONVERSATION_BUSY, ...).
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (text) => (body += text));
        response.on('end', () => {
          const code = /"error_code":"(\w+)"/.exec(body)?.[1];
          reject(Object.assign(new Error(`status ${response.statusCode}${code ? ` ${code}` : ''}`), { status: response.statusCode, code }));
        });
        return;
      }
      response.setEncoding('utf8');
      let buffer = '';
      const tokens = [];
      const added = [];
      let firstTokenAt;
      let done = false;
      response.on('data', (text) => {
        const receivedAt = process.hrtime.bigint();
        buffer += text;
        let end;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const lines = block.split('\n');
          const dataLine = lines.find((line) => line.startsWith('data: '));
          if (!dataLine) continue;
          const event = JSON.parse(dataLine.slice(6));
          if (event.type === 'token') {
            if (event.token_index !== firstIndex + tokens.length)
              return reject(new Error(`token ${event.token_index} where ${firstIndex + tokens.length} was expected`));
            tokens.push(event.token);
            const stamp = /@(\d+)/.exec(event.token);
            if (stamp) added.push(Number(receivedAt - BigInt(stamp[1])) / 1e6);
            options.onToken?.(event, lines.find((line) => line.startsWith('id: '))?.slice(4), receivedAt);
            if (firstTokenAt === undefined) {
              firstTokenAt = receivedAt;
              onFirstToken?.(Number(receivedAt - sentAt) / 1e6);
              if (options.firstTokenOnly) {
                done = true;
                response.destroy();
                return resolve({ tokens: 1, added, firstAdded: added[0] ?? null });
              }
            }
          } else if (event.type === 'start') {
            options.onStart?.(event, receivedAt);
          } else if (event.type === 'end') {
            done = true;
            if (firstIndex === 0 && event.final_output !== tokens.join(''))
              return reject(new Error('joined tokens differ from final_output'));
            if (event.token_count !== firstIndex + tokens.length) return reject(new Error('token_count differs from the tokens read'));
            response.destroy();
            return resolve({ tokens: tokens.length, added, firstAdded: added[0] ?? null, turnId: event.turn_id });
          } else if (event.type === 'error') {
            return reject(new Error(`error event ${event.error_code}`));
          }
        }
      });
      response.on('end', () => !done && reject(new Error('stream ended without end')));
      response.on('error', (error) => !done && reject(error));
    });
    request.on('error', reject);
  });
}
