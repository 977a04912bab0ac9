/** A PostgreSQL server started for tests or the bench: where it listens, and how to stop it. */
export interface LocalPostgres {
  /** A URL of its `postgres` database, for creating databases in it. */
  adminUrl: string;
  /** Stops the server (fast shutdown: open connections are cut), keeping its data, to start it again. */
  halt(): void;
  /** Starts it again, on the same port, after `halt`. */
  resume(): void;
  /** Stops it for good and removes its files. */
  stop(): void;
}
/** Where Debian's PostgreSQL binaries are, or undefined when the package is not installed. */
export function findPostgresBin(): string | undefined;
/** A free loopback TCP port. */
export function freePort(): Promise<number>;
/** Starts a throwaway cluster on a free loopback port. */
export function startLocalPostgres(bin: string): Promise<LocalPostgres>;
