// Bundles the browser client (src/app.mjs with ably and @ably/ai-transport)
// into public/app.js with esbuild. `node build.mjs` or `npm run build`;
// server.mjs runs it on start.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const here = path.dirname(fileURLToPath(import.meta.url));

export async function build() {
  await esbuild.build({
    entryPoints: [path.join(here, 'src', 'app.mjs')],
    outfile: path.join(here, 'public', 'app.js'),
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    sourcemap: true,
    minify: true,
    logLevel: 'warning',
  });
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await build();
  console.log('built public/app.js');
}
