import { startNginx, type LocalNginx } from './nginx.js';
import { spawnServer, type SpawnedServer } from './spawn-server.js';

/** Several ChatWait processes behind nginx (the repository's configuration), as a deployment runs them. */
export interface InstancesBehindNginx {
  /** nginx's URL: what every request of a multi-instance test goes to. */
  url: string;
  nginx: LocalNginx;
  /** The ChatWait processes, in the order of their upstream `server` lines. */
  instances: SpawnedServer[];
  /** Each process's own URL (for a test that must reach one directly, such as a health probe). */
  urls: string[];
  /**
   * Which instance (its index) served the request with this `X-Request-ID`, from the processes' logs
   * (each completed request is logged with its id); waits up to 10 s for the line to be written.
   */
  servedBy(requestId: string): Promise<number>;
  /**
   * Kills instance `index` (SIGKILL, unless it has already exited) and starts a new process in its
   * place, on the same port (so nginx's upstream line still names it), with the same environment
   * plus `env`. Resolves once it listens.
   */
  restart(index: number, env?: Record<string, string>): Promise<SpawnedServer>;
  /** Stops nginx and kills the processes. */
  stop(): Promise<void>;
}

/** Starts `count` ChatWait processes (dist/main.js) with `env` (the same for all), then nginx in front of them. */
export async function startInstancesBehindNginx(count: number, env: Record<string, string>): Promise<InstancesBehindNginx> {
  const instances = Array.from({ length: count }, () => spawnServer(env));
  let nginx: LocalNginx | undefined;
  const stop = async () => {
    try {
      await nginx?.stop();
    } finally {
      for (const instance of instances) instance.child.kill('SIGKILL');
      await Promise.all(instances.map((instance) => instance.exited));
    }
  };
  try {
    const urls = await Promise.all(instances.map((instance) => instance.url));
    nginx = await startNginx(urls.map((url) => new URL(url).host));
    const servedBy = async (requestId: string) => {
      const marker = `"request_id":"${requestId}"`;
      for (const deadline = Date.now() + 10_000; Date.now() < deadline; await new Promise((resolve) => setTimeout(resolve, 20))) {
        const index = instances.findIndex((instance) => instance.output().stdout.includes(marker));
        if (index !== -1) return index;
      }
      throw new Error(`no instance logged request ${requestId}`);
    };
    const restart = async (index: number, extra: Record<string, string> = {}) => {
      const previous = instances[index]!;
      if (previous.child.exitCode === null && previous.child.signalCode === null) previous.child.kill('SIGKILL');
      await previous.exited;
      const replacement = spawnServer({ ...env, ...extra, PORT: new URL(urls[index]!).port });
      instances[index] = replacement;
      await replacement.url;
      return replacement;
    };
    return { url: nginx.url, nginx, instances, urls, servedBy, restart, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
