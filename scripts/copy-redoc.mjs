// ReDoc's bundle is a build-time dependency: `npm run build` copies it into dist/, so a built tree
// serves /redoc with `npm ci --omit=dev` (ReDoc and its dependencies are about 77 MB).
import { copyFileSync } from 'node:fs';
import { createRequire } from 'node:module';

copyFileSync(
  createRequire(import.meta.url).resolve('redoc/bundles/redoc.standalone.js'),
  new URL('../dist/redoc.standalone.js', import.meta.url),
);
