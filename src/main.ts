import { createServices } from './app/create-services.js';
import { ConfigError, loadConfig, resolveProvider, type Config } from './config.js';
import { buildApp } from './server/build-app.js';

/** How long after the drain the process may take to close everything before it exits anyway. */
const SHUTDOWN_GRACE_MS = 5000;

/** Starts ChatWait: configuration, services, app, listen; closes cleanly on SIGTERM or SIGINT. */
async function main(): Promise<void> {
  const config = loadConfig();
  const services = await createServices(config);
  const app = await buildApp({ config, services }).catch(async (error: unknown) => {
    // The store is open by now; the error that stopped the app is the one to report.
    await services.close().catch(() => undefined);
    throw error;
  });

  let closing = false;
  const shutdown = (signal: string) => {
    if (closing) return;
    closing = true;
    app.log.info({ signal }, 'shutting down');
    // The last resort: connections are force-closed after the drain, so only a bug can get here.
    setTimeout(
      () => {
        app.log.error('shutdown did not finish in time; exiting anyway');
        process.exit(1);
      },
      config.SHUTDOWN_DRAIN_SECONDS * 1000 + SHUTDOWN_GRACE_MS,
    ).unref();
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

  let address: string;
  try {
    address = await app.listen({ host: config.HOST, port: config.PORT });
  } catch (error) {
    throw new ConfigError(describeListenError(error, config));
  }
  const provider = resolveProvider(config);
  app.log.info(
    { address, provider },
    provider === 'demo'
      ? `ChatWait is listening on ${address} with the built-in demo model (set GEMINI_API_KEY or OPENAI_BASE_URL for a real one)`
      : `ChatWait is listening on ${address}`,
  );
}

/** Why listening failed, as one line naming the variable to change. */
function describeListenError(error: unknown, config: Config): string {
  const code = (error as NodeJS.ErrnoException).code;
  const where = `${config.HOST}:${config.PORT}`;
  switch (code) {
    case 'EADDRINUSE':
      return `Cannot listen on ${where}: the port is already in use. Stop what uses it, or choose another port with PORT (for example PORT=${config.PORT === 8000 ? 8001 : 8000}).`;
    case 'EACCES':
      return `Cannot listen on ${where}: permission denied (ports below 1024 need privileges). Choose another port with PORT (for example PORT=8000).`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EAI_NONAME':
      return `Cannot listen: HOST=${config.HOST} does not resolve to an address. Set HOST to a name or address of this machine (localhost, 127.0.0.1, or 0.0.0.0 for every interface).`;
    case 'EADDRNOTAVAIL':
      return `Cannot listen on ${where}: HOST=${config.HOST} is not an address of this machine. Set HOST to localhost, 127.0.0.1, or 0.0.0.0 for every interface.`;
    default:
      return `Cannot listen on ${where} (HOST, PORT): ${oneLine(error)}`;
  }
}

/** An error's message as one line, without its stack. */
function oneLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.replace(/\s+/g, ' ').trim();
}

main().catch((error: unknown) => {
  // Every start-up failure is one line: a configuration error says which variable to change.
  console.error(error instanceof ConfigError ? error.message : `ChatWait could not start: ${oneLine(error)}`);
  process.exit(1);
});
