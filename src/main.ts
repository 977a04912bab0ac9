import { ConfigError, loadConfig, resolveProvider } from './config.js';
import { buildApp } from './server/build-app.js';

/** Starts ChatWait: configuration, app, listen; closes cleanly on SIGTERM or SIGINT. */
async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      process.exit(1);
    }
    throw error;
  }
  let app;
  try {
    app = await buildApp({ config });
  } catch (error) {
    // A broken tool plugin is a configuration error too: one line, no stack.
    if (error instanceof ConfigError) {
      console.error(error.message);
      process.exit(1);
    }
    throw error;
  }
  if (config.REDIS_URL) app.log.warn('REDIS_URL is set, but this version keeps stream replay logs in process memory.');

  let closing = false;
  const shutdown = (signal: string) => {
    if (closing) return;
    closing = true;
    app.log.info({ signal }, 'shutting down');
    app.close().then(
      () => process.exit(0),
      (error: unknown) => {
        app.log.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  // 'on', not 'once': the Agents SDK adds its own SIGTERM listener that exits at once when it thinks it is alone.
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));

  const address = await app.listen({ host: config.HOST, port: config.PORT });
  const provider = resolveProvider(config);
  app.log.info(
    { address, provider },
    provider === 'demo'
      ? `ChatWait is listening on ${address} with the built-in demo model (set GEMINI_API_KEY or OPENAI_BASE_URL for a real one)`
      : `ChatWait is listening on ${address}`,
  );
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : error);
  process.exit(1);
});
