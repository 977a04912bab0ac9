// The fake OpenAI-compatible upstream of the benchmark: streams T tokens at R tokens/s per answer in
// the real chat-completions wire format. Every token carries the monotonic time (ns) it was sent,
// so the load generator can tell exactly what the server in between added.
// Usage: node bench/upstream.mjs <port> ; GET /config?tokens=T&rate=R sets the answer shape.
import http from 'node:http';

const port = Number(process.argv[2] ?? 0);
let tokens = 200;
let rate = 50;

function chunk(id, delta, finishReason = null) {
  return `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created: 1, model: 'bench', choices: [{ index: 0, delta, finish_reason: finishReason }] })}\n\n`;
}

let sequence = 0;
const server = http.createServer((request, response) => {
  if (request.url.startsWith('/config')) {
    const url = new URL(request.url, 'http://x');
    tokens = Number(url.searchParams.get('tokens') ?? tokens);
    rate = Number(url.searchParams.get('rate') ?? rate);
    response.end(JSON.stringify({ tokens, rate }));
    return;
  }
  if (request.url.endsWith('/models')) {
    response.writeHead(200, { 'content-type': 'application/json' }).end('{"object":"list","data":[]}');
    return;
  }
  request.resume();
  request.on('end', () => {
    const id = `bench-${++sequence}`;
    response.writeHead(200, { 'content-type': 'text/event-stream' });
    response.write(chunk(id, { role: 'assistant', content: '' }));
    const interval = rate > 0 ? 1000 / rate : 0;
    const started = performance.now();
    let index = 0;
    const sendNext = () => {
      if (response.destroyed) return;
      // Send every token that is due (a late timer catches up), each as its own chunk.
      while (index < tokens && (interval === 0 || performance.now() - started >= index * interval)) {
        response.write(chunk(id, { content: ` t${index}@${process.hrtime.bigint()}` }));
        index++;
        if (interval === 0 && index % 64 === 0) return setImmediate(sendNext);
      }
      if (index < tokens) return setTimeout(sendNext, Math.max(0, started + index * interval - performance.now()));
      response.write(chunk(id, {}, 'stop'));
      response.write(
        `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created: 1, model: 'bench', choices: [], usage: { prompt_tokens: 10, completion_tokens: tokens, total_tokens: tokens + 10 } })}\n\n`,
      );
      response.end('data: [DONE]\n\n');
    };
    sendNext();
  });
});
server.keepAliveTimeout = 120_000;
server.listen(port, '127.0.0.1', () => process.stdout.write(`listening ${server.address().port}\n`));
