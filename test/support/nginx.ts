import { findNginx, startLocalNginx, type LocalNginx } from '../../scripts/local-nginx.mjs';

export { NGINX_CONFIG, renderNginxConfig, type LocalNginx } from '../../scripts/local-nginx.mjs';

/**
 * Whether nginx is installed; without it (a developer's machine without the package) its tests skip,
 * saying so once. CHATWAIT_REQUIRE_NGINX=1 (CI) makes a missing nginx an error instead.
 */
export function hasNginx(): boolean {
  if (findNginx() !== undefined) return true;
  if (process.env.CHATWAIT_REQUIRE_NGINX === '1') {
    throw new Error('CHATWAIT_REQUIRE_NGINX=1 but nginx is not installed (apt-get install nginx)');
  }
  if (!warned) {
    warned = true;
    console.warn("SKIPPED: tests through nginx (install Debian's nginx package); CI runs them.");
  }
  return false;
}
let warned = false;

/** Starts nginx with the repository's deploy/nginx.conf in front of `upstreams` (`host:port` each), on a free loopback port. */
export function startNginx(upstreams: string[]): Promise<LocalNginx> {
  const nginx = findNginx();
  if (nginx === undefined) throw new Error('nginx is not installed (check hasNginx() first)');
  return startLocalNginx(nginx, { upstreams });
}
