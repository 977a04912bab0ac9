// The bare relay: a few dozen lines of plain node:http that forward the upstream's SSE to the client
// with ChatWait's framing, and nothing else (no framework, agent, storage or resumption). The floor.
// Usage: node bench/relay.mjs <port> <upstream base URL>
import http from 'node:http';

const port = Number(process.argv[2] ?? 0);
const upstream = new URL(process.argv[3]);
const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });

function relay(message, onEvent, onDone) {
  const body = JSON.stringify({ model: 'bench', stream: true, messages: [{ role: 'user', content: message }] });
  const request = http.request(
    {
      host: upstream.hostname,
      port: upstream.port,
      path: `${upstream.pathname.replace(/\/$/, '')}/chat/completions`,
      method: 'POST',
      agent,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
    },
    (response) => {
      let buffer = '';
      const tokens = [];
      response.setEncoding('utf8');
      response.on('data', (text) => {
        buffer += text;
        let end;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const line = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          if (!line.startsWith('data: ') || line === 'data: [DONE]') continue;
          const content = JSON.parse(line.slice(6)).choices[0]?.delta?.content;
          if (content) {
            onEvent(content, tokens.length);
            tokens.push(content);
          }
        }
      });
      response.on('end', () => onDone(tokens));
    },
  );
  request.end(body);
}

const server = http.createServer((request, response) => {
  const url = new URL(request.url, 'http://x');
  const message = url.searchParams.get('message') ?? 'hi';
  if (url.pathname === '/api/v1/chat/wait') {
    relay(
      message,
      () => {},
      (tokens) => {
        response.writeHead(200, { 'content-type': 'application/json' });
        response.end(JSON.stringify({ message: tokens.join(''), token_count: tokens.length }));
      },
    );
    return;
  }
  const contextJson = JSON.stringify(url.searchParams.get('context_id') ?? 'relay');
  response.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });
  response.write(`data: {"type":"start","event_type":"start","context_id":${contextJson},"turn_id":"r","resumed":false}\nid: r/start\n\n`);
  relay(
    message,
    (token, index) =>
      response.write(
        `data: {"token":${JSON.stringify(token)},"token_index":${index},"context_id":${contextJson},"event_type":"token","type":"token"}\nid: r/${index}\n\n`,
      ),
    (tokens) =>
      response.end(
        `data: ${JSON.stringify({ type: 'end', event_type: 'end', final_output: tokens.join(''), token_count: tokens.length })}\nid: r/${tokens.length}\n\n`,
      ),
  );
});
server.keepAliveTimeout = 120_000;
server.listen(port, '127.0.0.1', () => process.stdout.write(`listening ${server.address().port}\n`));
