// Start-up and shutdown (issue 11, finding 8):
//  - every start-up failure (listen, storage, apps) exits 1 with a message
//    on stderr, never with a libuv assertion (exit 134);
//  - one server per data directory: a second one on the same --data exits 1
//    with a message naming the directory (an flock'd lock file);
//  - SIGTERM with a client that stopped reading: the 5 s flush deadline is
//    enforced, so the process exits instead of waiting for that client.
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  startServer,
  makeTempDir,
  createApp,
  http,
  uniqueChannel,
  withTimeout,
  sleep,
  SERVER_BIN,
  ACTION,
  assert,
  test,
} from './lib/server.mjs';
import { openWs, wsAttach, writeConfig } from './lib/auth.mjs';

const T = { timeout: 60_000 };

/** Runs `switchboard serve ...args` to its exit (SIGKILL after ms). */
function runServe(args, ms = 15_000) {
  return new Promise((resolve) => {
    const child = spawn(SERVER_BIN, ['serve', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), ms);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** A failed start: exit code 1, the expected message, no abort. */
function expectStartFailure(r, pattern, what) {
  const label = `${what}: code=${r.code} signal=${r.signal}\nstderr: ${r.stderr}`;
  assert.doesNotMatch(r.stderr, /Assertion/, `no libuv assertion ${label}`);
  assert.equal(r.signal, null, `not killed by a signal ${label}`);
  assert.equal(r.code, 1, `exit code 1 ${label}`);
  assert.match(r.stderr, pattern, `message ${label}`);
  assert.doesNotMatch(r.stdout, /listening on/, `never listened ${label}`);
}

test('start-up: listen failure (port in use) -> exit 1 with "address already in use", no libuv assertion', T, async () => {
  const first = await startServer({ label: 'startup-port' });
  try {
    for (const withData of [false, true]) {
      const tmp = withData ? makeTempDir('switchboard-startup-') : null;
      const args = tmp ? ['--data', tmp.dir] : ['--memory'];
      try {
        const r = await runServe(['--listen', `127.0.0.1:${first.port}`, ...args]);
        expectStartFailure(r, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${first.port}: address already in use`), args.join(' '));
      } finally {
        tmp?.cleanup();
      }
    }
    // The first server is unaffected.
    assert.equal((await http(first, 'GET', '/time')).status, 200);
  } finally {
    await first.stop();
  }
});

test('start-up: apps that cannot be loaded (config) -> exit 1 with the reason, no libuv assertion', T, async () => {
  // Loaded after storage and the listener are open: both must be closed again.
  const cfg = writeConfig({ apps: [{ id: 'bad', keys: [{ name: 'has.dot' }] }] });
  const tmp = makeTempDir('switchboard-startup-');
  try {
    for (const storage of [['--memory'], ['--data', tmp.dir]]) {
      const r = await runServe(['--listen', '127.0.0.1:0', '--config', cfg.file, ...storage]);
      expectStartFailure(r, /config app 0: key id/, storage.join(' '));
    }
  } finally {
    cfg.cleanup();
    tmp.cleanup();
  }
});

test('start-up: storage that cannot be opened -> exit 1 with the path and the reason', T, async () => {
  const tmp = makeTempDir('switchboard-startup-');
  try {
    const file = path.join(tmp.dir, 'not-a-directory');
    writeFileSync(file, 'x');
    const r = await runServe(['--listen', '127.0.0.1:0', '--data', path.join(file, 'data')]);
    expectStartFailure(r, /cannot create .*not-a-directory\/data: Not a directory/, 'data under a file');
  } finally {
    tmp.cleanup();
  }
});

test('data directory lock: a second server on the same --data exits 1 naming the directory; the first keeps its data', T, async () => {
  const tmp = makeTempDir('switchboard-lock-');
  let first = await startServer({ data: tmp.dir, label: 'lock-first' });
  try {
    const app = await createApp(first);
    const key = app.keys[0].keyStr;
    const name = uniqueChannel('lock');
    const pub = await http(first, 'POST', `/channels/${name}/messages`, { key, body: { name: 'm', data: 'one' } });
    assert.equal(pub.status, 201, pub.text);

    const r = await runServe(['--listen', '127.0.0.1:0', '--data', tmp.dir]);
    expectStartFailure(r, new RegExp(`data directory ${tmp.dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is in use by another switchboard process`), 'second server');

    // The first one still publishes and reads its history.
    const pub2 = await http(first, 'POST', `/channels/${name}/messages`, { key, body: { name: 'm', data: 'two' } });
    assert.equal(pub2.status, 201, pub2.text);
    const hist = await http(first, 'GET', `/channels/${name}/messages?direction=forwards`, { key });
    assert.deepEqual(hist.body.map((m) => m.data), ['one', 'two']);

    // Once the first has stopped, the lock is free again.
    await first.stop();
    first = await startServer({ data: tmp.dir, label: 'lock-again' });
    const again = await http(first, 'GET', `/channels/${name}/messages?direction=forwards`, { key });
    assert.deepEqual(again.body.map((m) => m.data), ['one', 'two']);
  } finally {
    if (first.exit === null) await first.stop();
    tmp.cleanup();
  }
});

test('RTN15h3 shutdown deadline: SIGTERM with a client that stopped reading -> exit 0 within the 5 s flush deadline (+ margin)', T, async () => {
  // Large messages and a large outbound bound, so that the server holds far
  // more for the stalled socket than the kernel buffers take.
  const MSG = 400 * 1024;
  const cfg = writeConfig({ limits: { maxMessageSize: MSG + 1024, maxOutboundBytes: 256 * 1024 * 1024 } });
  const server = await startServer({ label: 'shutdown-stalled', extraArgs: ['--config', cfg.file] });
  let sock;
  try {
    const app = await createApp(server);
    const key = app.keys[0].keyStr;
    const name = uniqueChannel('stalled');
    sock = openWs(server, { key });
    await withTimeout(sock.opened, 5000, 'WebSocket open');
    assert.equal((await sock.first(5000)).action, ACTION.CONNECTED);
    assert.equal((await wsAttach(sock, name)).action, ACTION.ATTACHED);
    // The client stops reading: from now on its TCP window fills up.
    sock.ws._socket.pause();
    const data = 'x'.repeat(MSG);
    for (let i = 0; i < 60; i++) {
      const r = await http(server, 'POST', `/channels/${name}/messages`, { key, body: { name: 'big', data } });
      assert.equal(r.status, 201, r.text);
    }
    await sleep(200);

    const t0 = Date.now();
    server.proc.kill('SIGTERM');
    const exit = await withTimeout(server.exited, 20_000, 'exit after SIGTERM with a stalled client').catch((e) => {
      server.killHard();
      throw e;
    });
    const elapsed = Date.now() - t0;
    assert.equal(exit.code, 0, `exit code 0 (signal ${exit.signal}, after ${elapsed} ms)\n${server.tail()}`);
    // The deadline, not the client, ended it.
    assert.match(server.stderr, /shutdown: closed 1 connection\(s\) that did not take their last output/);
  } finally {
    sock?.close?.();
    if (server.exit === null) server.killHard();
    await withTimeout(server.exited, 5000, 'server exit').catch(() => {});
    cfg.cleanup();
  }
});
