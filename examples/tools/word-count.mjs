// A ChatWait tool plugin: one tool per file, exported by default as a plain object.
// Copy it into the folder TOOLS_DIR names; ChatWait loads it at start-up.
export default {
  // 1 to 64 characters from A-Z, a-z, 0-9, _ and -; unique among the tools.
  name: 'word_count',
  // What the model reads to decide when to call the tool.
  description: 'Counts the words, sentences and characters of a text. Use it whenever the user asks how long a text is.',
  // A JSON Schema of the arguments (a zod object schema works too).
  parameters: {
    type: 'object',
    properties: {
      text: { type: 'string', description: 'The text to count' },
    },
    required: ['text'],
    additionalProperties: false,
  },
  // Gets the parsed arguments and { signal }, aborted when the call times out or the answer is cancelled.
  // Returns a string or any JSON value; a throw becomes an "Error: <message>" result for the model.
  async execute({ text }, { signal }) {
    signal?.throwIfAborted();
    const trimmed = text.trim();
    return {
      words: trimmed === '' ? 0 : trimmed.split(/\s+/).length,
      sentences: (trimmed.match(/[^.!?]+[.!?]+/g) ?? []).length,
      characters: [...text].length,
    };
  },
};
