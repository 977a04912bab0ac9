/** An nginx started for tests or the bench with the repository's deploy/nginx.conf. */
export interface LocalNginx {
  /** Where it listens: http://127.0.0.1:<port>. */
  url: string;
  port: number;
  /** Its error log so far (start-up notices, upstream failures). */
  errorLog(): string;
  /** Its access log so far, one line per request. */
  accessLog(): string;
  /** Stops it (fast shutdown: open connections are cut) and removes its files. */
  stop(): Promise<void>;
}
/** The path of the repository's nginx configuration (deploy/nginx.conf). */
export const NGINX_CONFIG: string;
/** Where nginx is installed, or undefined when it is not. */
export function findNginx(): string | undefined;
/** deploy/nginx.conf with its upstream `server` lines and `listen` line replaced. */
export function renderNginxConfig(text: string, options: { upstreams: string[]; listen: string }): string;
/** Starts nginx in front of `upstreams` (`host:port` each) on a free loopback port. */
export function startLocalNginx(nginx: string, options: { upstreams: string[]; config?: string }): Promise<LocalNginx>;
