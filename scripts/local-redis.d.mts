/** A Redis server started for tests or the bench: where it listens, and how to stop it. */
export interface LocalRedis {
  /** Its URL (redis://127.0.0.1:<port>). */
  url: string;
  port: number;
  /** The server's process id. */
  pid: number | undefined;
  /** Stops the server at once and removes its folder. */
  stop(): void;
}
/** Where Debian's `redis-server` is, or undefined when the package is not installed. */
export function findRedisServer(): string | undefined;
/**
 * Starts a throwaway server on a free loopback port (or `port`: to restart one, empty, where its clients
 * look for it), with no persistence; `args` are added to its command line.
 */
export function startLocalRedis(server?: string, options?: { args?: string[]; port?: number }): Promise<LocalRedis>;
