// The local sandbox for ably-js's node test suite: starts a fresh switchboard
// (in memory, admin API open as Ably's sandbox is) on a free port. ably-js,
// given ABLY_LOCAL_SANDBOX_URL=<url>, creates each test app with POST <url>/apps
// (the post_apps body of ably-common's test-app-setup.json) and routes its
// clients at the `endpoint`, `port` and `tls` fields of the answer, which
// switchboard's admin API gives itself (the Host the request came to), so
// nothing sits between the suite and the server.
//
// As a module: `startSandbox({ serverBin })` resolves to
// `{ url, host, port, stop() }`. From the shell, for running one ably-js test
// by hand:
//
//   node conformance/ably-js/provision.mjs --server-bin build/switchboard [--port N]
//
// prints `ABLY_LOCAL_SANDBOX_URL=http://127.0.0.1:PORT` and serves until
// interrupted.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const DEFAULT_SERVER_BIN = path.resolve(here, '..', '..', 'build', 'switchboard');

/**
 * Starts `switchboard serve --sandbox --memory --listen 127.0.0.1:<port>`.
 * `log` (a path) receives the server's stdout and stderr. Rejects if the server
 * does not print its address within `startTimeoutMs`.
 */
export function startSandbox({ serverBin = DEFAULT_SERVER_BIN, port = 0, log = null, startTimeoutMs = 10_000 } = {}) {
  return new Promise((resolve, reject) => {
    const args = ['serve', '--sandbox', '--memory', '--listen', `127.0.0.1:${port}`];
    const child = spawn(serverBin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const sink = log ? fs.createWriteStream(log) : null;
    let seen = '';
    let settled = false;
    const timer = setTimeout(() => fail(new Error(`switchboard did not start within ${startTimeoutMs} ms: ${seen}`)), startTimeoutMs);
    const exited = new Promise((r) => child.once('exit', (code, signal) => r({ code, signal })));

    function fail(err) {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(err);
    }

    async function stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const killer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(killer);
      }
      if (sink) await new Promise((r) => sink.end(r));
    }

    child.on('error', fail);
    child.once('exit', (code, signal) => fail(new Error(`switchboard exited (${code ?? signal}) before listening: ${seen}`)));
    for (const stream of [child.stdout, child.stderr]) {
      stream.on('data', (chunk) => {
        if (sink) sink.write(chunk);
        if (settled) return;
        seen = (seen + chunk.toString()).slice(-4096);
        const m = /listening on (https?):\/\/([^\s:]+):(\d+)/.exec(seen);
        if (m) {
          settled = true;
          clearTimeout(timer);
          const url = `${m[1]}://${m[2]}:${m[3]}`;
          resolve({ url, host: m[2], port: Number(m[3]), pid: child.pid, stop, exited });
        }
      });
    }
  });
}

function parseArgs(argv) {
  const opts = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--server-bin') opts.serverBin = path.resolve(argv[++i]);
    else if (a === '--port') opts.port = Number(argv[++i]);
    else if (a === '--help' || a === '-h') {
      console.log('usage: node provision.mjs [--server-bin PATH] [--port N]');
      process.exit(0);
    } else {
      console.error(`unknown argument ${a}`);
      process.exit(2);
    }
  }
  return opts;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const sandbox = await startSandbox(parseArgs(process.argv.slice(2)));
  console.log(`ABLY_LOCAL_SANDBOX_URL=${sandbox.url}`);
  let stopping = false;
  const shutdown = async () => {
    stopping = true;
    await sandbox.stop();
    process.exit(0);
  };
  process.on('SIGINT', shutdown);
  process.on('SIGTERM', shutdown);
  sandbox.exited.then(({ code, signal }) => {
    if (stopping) return;
    console.error(`switchboard exited (${code ?? signal})`);
    process.exit(1);
  });
}
