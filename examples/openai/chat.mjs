// ChatWait through OpenAI's own SDK: `node examples/openai/chat.mjs "Your question"`.
// CHATWAIT_URL (http://localhost:8000 by default) and CHATWAIT_API_KEY (when the server sets API_KEYS).
import OpenAI from 'openai';

const client = new OpenAI({
  baseURL: `${process.env.CHATWAIT_URL ?? 'http://localhost:8000'}/v1`,
  apiKey: process.env.CHATWAIT_API_KEY ?? 'not-needed',
});
const [{ id: model }] = (await client.models.list()).data;

// Streamed: the deltas as they come. The response headers name the stored conversation and turn.
const { data: stream, response } = await client.chat.completions
  .create({
    model,
    messages: [
      { role: 'system', content: 'Answer in one short paragraph.' },
      { role: 'user', content: process.argv[2] ?? 'What is Server-Sent Events?' },
    ],
    stream: true,
    stream_options: { include_usage: true },
  })
  .withResponse();
for await (const chunk of stream) {
  process.stdout.write(chunk.choices[0]?.delta.content ?? '');
  if (chunk.usage) process.stdout.write(`\n(${chunk.usage.completion_tokens} tokens)\n`);
}
const conversation = response.headers.get('x-chatwait-conversation-id');

// Not streamed, in the same conversation (it shows on the chat page as one conversation of two turns).
const followUp = await client.chat.completions.create(
  { model, messages: [{ role: 'user', content: 'Say it again in five words.' }] },
  { headers: { 'X-ChatWait-Conversation-Id': conversation } },
);
process.stdout.write(`${followUp.choices[0].message.content}\n`);
process.stdout.write(`conversation ${conversation}\n`);
