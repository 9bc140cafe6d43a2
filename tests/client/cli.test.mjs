// The CLI's client commands against the real server, checked with
// independent implementations:
//   - `switchboard token` JWTs verify with npm `jsonwebtoken` and are accepted
//     by the server (REST Bearer and the ably SDK's realtime connection);
//   - its TokenRequests are accepted by POST /keys/{keyName}/requestToken and
//     by the ably SDK as an authCallback result;
//   - bad input exits non-zero with a message;
//   - `switchboard pub` / `switchboard sub` round trip, also over TLS through
//     a Node TLS proxy (tls_proxy.mjs) with a throwaway CA.
//
// Run: node --test tests/client/   (SWITCHBOARD_BIN defaults to build/switchboard).
// Packages come from tests/integration/node_modules (npm ci there first).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const require = createRequire(path.join(root, 'tests', 'integration', 'package.json'));
const jwt = require('jsonwebtoken');
const Ably = require('ably');

const BIN = process.env.SWITCHBOARD_BIN || path.join(root, 'build', 'switchboard');

let server;
let port;
let key; // { keyName, keySecret, keyStr }

function run(args, { input, env } = {}) {
  return new Promise((resolve) => {
    const child = execFile(BIN, args, { env: { ...process.env, SWITCHBOARD_KEY: '', ...env }, timeout: 20000 },
      (err, stdout, stderr) => resolve({ code: err ? (err.code ?? 1) : 0, stdout, stderr }));
    if (input !== undefined) child.stdin.end(input);
  });
}

async function http(method, p, { body, headers = {} } = {}) {
  const res = await fetch(`http://127.0.0.1:${port}${p}`, {
    method,
    headers: { ...(body ? { 'Content-Type': 'application/json' } : {}), ...headers },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: res.status, json, text };
}

function withTimeout(promise, ms, what) {
  let t;
  return Promise.race([promise, new Promise((_, rej) => { t = setTimeout(() => rej(new Error(`timeout: ${what}`)), ms); })])
    .finally(() => clearTimeout(t));
}

before(async () => {
  server = spawn(BIN, ['serve', '--listen', '127.0.0.1:0', '--memory', '--sandbox'], { stdio: ['ignore', 'pipe', 'inherit'] });
  port = await withTimeout(new Promise((resolve, reject) => {
    let out = '';
    server.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on http:\/\/127\.0\.0\.1:(\d+)/);
      if (m) resolve(Number(m[1]));
    });
    server.on('exit', (code) => reject(new Error(`server exited ${code}`)));
  }), 10000, 'server start');
  const app = await http('POST', '/apps', { body: { keys: [{}] } });
  assert.equal(app.status, 201);
  key = app.json.keys[0];
});

after(async () => {
  if (!server) return;
  const exited = new Promise((resolve) => server.on('exit', (code) => resolve(code)));
  server.kill('SIGTERM');
  assert.equal(await withTimeout(exited, 10000, 'server exit'), 0);
});

function realtime(opts) {
  return new Ably.Realtime({ endpoint: '127.0.0.1', port, tls: false, useBinaryProtocol: false, logLevel: 0, ...opts });
}

async function connected(client) {
  await withTimeout(new Promise((resolve, reject) => {
    client.connection.once('connected', resolve);
    client.connection.once('failed', (s) => reject(new Error(`failed: ${s.reason?.code} ${s.reason?.message}`)));
  }), 10000, 'connected');
}

test('token: the JWT verifies with jsonwebtoken and carries the requested claims', async () => {
  const cap = { 'chat:*': ['publish', 'subscribe'] };
  const r = await run(['token', '--key', key.keyStr, '--client-id', 'alice', '--capability', JSON.stringify(cap),
    '--ttl', '600', '--revocation-key', 'group-7']);
  assert.equal(r.code, 0, r.stderr);
  const token = r.stdout.trim();
  assert.equal(r.stdout, `${token}\n`);
  const decoded = jwt.verify(token, key.keySecret, { algorithms: ['HS256'], complete: true });
  assert.equal(decoded.header.alg, 'HS256');
  assert.equal(decoded.header.kid, key.keyName);
  assert.equal(decoded.header.typ, 'JWT');
  const claims = decoded.payload;
  assert.equal(claims['x-ably-clientId'], 'alice');
  assert.deepEqual(JSON.parse(claims['x-ably-capability']), cap);
  assert.equal(claims['x-ably-revocation-key'], 'group-7');
  assert.equal(claims.exp - claims.iat, 600);
  assert.ok(Math.abs(claims.iat - Date.now() / 1000) < 60);
  // A wrong secret does not verify.
  assert.throws(() => jwt.verify(token, 'not-the-secret', { algorithms: ['HS256'] }));
});

test('token: the server accepts the JWT (REST Bearer and ably realtime)', async () => {
  const r = await run(['token', '--key', key.keyStr, '--client-id', 'bob']);
  assert.equal(r.code, 0, r.stderr);
  const token = r.stdout.trim();
  const ok = await http('GET', '/channels/jwt-rest/messages', { headers: { Authorization: `Bearer ${Buffer.from(token).toString('base64')}` } });
  assert.equal(ok.status, 200, ok.text);
  const client = realtime({ token });
  try {
    await connected(client);
    assert.equal(client.auth.clientId, 'bob');
    const ch = client.channels.get('jwt-rt');
    await ch.attach();
    const got = new Promise((resolve) => ch.subscribe((m) => resolve(m)));
    await ch.publish('n', 'via jwt');
    const m = await withTimeout(got, 5000, 'message');
    assert.equal(m.data, 'via jwt');
    assert.equal(m.clientId, 'bob');
  } finally {
    client.close();
  }
  // The key's capability is the ceiling: a JWT naming other channels is refused there.
  const narrow = (await run(['token', '--key', key.keyStr, '--capability', '{"only:*":["subscribe"]}'])).stdout.trim();
  const denied = await http('POST', '/channels/elsewhere/messages', {
    body: { data: 'x' }, headers: { Authorization: `Bearer ${Buffer.from(narrow).toString('base64')}` },
  });
  assert.equal(denied.status, 401);
  assert.equal(denied.json.error.code, 40160);
});

test('token: the TokenRequest is accepted by requestToken and by ably-js', async () => {
  const r = await run(['token', '--key', key.keyStr, '--format', 'token-request', '--client-id', 'carol', '--ttl', '120',
    '--capability', '{"tr:*":["*"]}']);
  assert.equal(r.code, 0, r.stderr);
  const tr = JSON.parse(r.stdout);
  assert.equal(tr.keyName, key.keyName);
  assert.equal(tr.ttl, 120000);
  assert.equal(tr.clientId, 'carol');
  assert.deepEqual(JSON.parse(tr.capability), { 'tr:*': ['*'] });
  assert.ok(tr.nonce.length >= 16);
  assert.ok(Math.abs(tr.timestamp - Date.now()) < 60000);
  assert.match(tr.mac, /^[A-Za-z0-9+/]+=*$/);

  const res = await http('POST', `/keys/${encodeURIComponent(key.keyName)}/requestToken`, { body: r.stdout });
  assert.equal(res.status, 200, res.text);
  assert.equal(res.json.clientId, 'carol');
  assert.ok(res.json.token);
  assert.ok(res.json.expires - res.json.issued === 120000);
  // The same TokenRequest cannot be used twice (nonce replay).
  const again = await http('POST', `/keys/${encodeURIComponent(key.keyName)}/requestToken`, { body: r.stdout });
  assert.equal(again.status, 401);
  assert.equal(again.json.error.code, 40105);

  // ably-js exchanges a fresh one from its authCallback.
  const client = realtime({
    authCallback: async (params, cb) => {
      const out = await run(['token', '--key', key.keyStr, '--format', 'token-request', '--client-id', 'carol']);
      cb(out.code ? new Error(out.stderr) : null, out.code ? null : JSON.parse(out.stdout));
    },
  });
  try {
    await connected(client);
    assert.equal(client.auth.clientId, 'carol');
  } finally {
    client.close();
  }
});

test('token: bad input exits non-zero with a clear message', async () => {
  const cases = [
    [[], /--key is required/],
    [['--key', 'nodelimiter'], /invalid key/],
    [['--key', key.keyStr, '--ttl', 'ten'], /--ttl must be/],
    [['--key', key.keyStr, '--ttl', '0'], /--ttl must be/],
    [['--key', key.keyStr, '--ttl', '86401'], /--ttl must be/],
    [['--key', key.keyStr, '--capability', '[1,2]'], /capability must be a JSON object/],
    [['--key', key.keyStr, '--capability', '{nope'], /capability must be a JSON object/],
    [['--key', key.keyStr, '--format', 'xml'], /--format must be jwt or token-request/],
    [['--key', key.keyStr, '--format', 'token-request', '--revocation-key', 'k'], /--revocation-key is a JWT claim/],
    [['--key', key.keyStr, '--client-id', ''], /clientId must not be empty/],
    [['--key', key.keyStr, '--bogus', 'x'], /unknown option --bogus/],
    [['--key'], /needs a value/],
  ];
  for (const [args, re] of cases) {
    const r = await run(['token', ...args]);
    assert.notEqual(r.code, 0, `exit code for ${args.join(' ')}`);
    assert.equal(r.stdout, '', `stdout for ${args.join(' ')}`);
    assert.match(r.stderr, re, `stderr for ${args.join(' ')}: ${r.stderr}`);
  }
  // The key may come from the environment instead.
  const env = await run(['token'], { env: { SWITCHBOARD_KEY: key.keyStr } });
  assert.equal(env.code, 0, env.stderr);
  jwt.verify(env.stdout.trim(), key.keySecret, { algorithms: ['HS256'] });
});

test('pub and sub: one JSON line per message, serials printed', async () => {
  const sub = spawn(BIN, ['sub', '--port', String(port), '--key', key.keyStr, '--format', 'json', 'cli-chat', '--count', '3'],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '', err = '';
  sub.stdout.on('data', (d) => { out += d; });
  sub.stderr.on('data', (d) => { err += d; });
  const subExit = new Promise((resolve) => sub.on('exit', (code) => resolve(code)));
  // Wait until the subscriber is attached: its channel shows a subscriber.
  const deadline = Date.now() + 10000;
  for (;;) {
    const st = await http('GET', '/channels/cli-chat', { headers: { Authorization: `Basic ${Buffer.from(key.keyStr).toString('base64')}` } });
    if (st.status === 200 && st.json.status?.occupancy?.metrics?.subscribers > 0) break;
    assert.ok(Date.now() < deadline, 'subscriber never attached');
    await new Promise((r) => setTimeout(r, 50));
  }
  const pub = await run(['pub', '--port', String(port), '--key', key.keyStr, '--name', 'greeting', 'cli-chat', 'hello', 'world']);
  assert.equal(pub.code, 0, pub.stderr);
  const serials = pub.stdout.trim().split('\n');
  assert.equal(serials.length, 2);
  const token = (await run(['token', '--key', key.keyStr, '--client-id', 'dave'])).stdout.trim();
  const pub2 = await run(['pub', '--port', String(port), '--token', token, 'cli-chat'], { input: 'from stdin\n' });
  assert.equal(pub2.code, 0, pub2.stderr);
  assert.equal(await withTimeout(subExit, 10000, 'sub exit'), 0, err);
  const lines = out.trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(lines.length, 3);
  assert.deepEqual(lines.map((m) => m.data), ['hello', 'world', 'from stdin']);
  assert.equal(lines[0].name, 'greeting');
  assert.deepEqual(lines.slice(0, 2).map((m) => m.serial), serials);
  assert.equal(lines[2].clientId, 'dave');
  for (const m of lines) {
    assert.ok(m.id && m.connectionId && m.timestamp && m.serial);
  }
  // Bad credentials: exit 1 with the Ably error.
  const bad = await run(['pub', '--port', String(port), '--key', `${key.keyName}:wrong`, 'cli-chat', 'x']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /40101/);
  const usage = await run(['sub', '--port', String(port), '--key', key.keyStr]);
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /CHANNEL is required/);
});

test('pub and sub against a closed port: exit 1 with "connection refused" (not "bad file descriptor")', async () => {
  // A port nothing listens on: bound by us, then closed again.
  const net = await import('node:net');
  const srv = net.createServer();
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const closed = srv.address().port;
  await new Promise((resolve) => srv.close(resolve));
  for (const args of [['pub', 'cli-closed', 'x'], ['sub', 'cli-closed']]) {
    const r = await run([args[0], '--port', String(closed), '--key', key.keyStr, ...args.slice(1)]);
    assert.equal(r.code, 1, `${args[0]}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`switchboard ${args[0]}: could not connect: .*127\\.0\\.0\\.1:${closed} failed: connection refused`),
      `${args[0]}: ${r.stderr}`);
    assert.doesNotMatch(r.stderr, /bad file descriptor/, `${args[0]}: ${r.stderr}`);
    // One line: the connection's failure, not also the attach it aborted.
    assert.equal(r.stderr.trim().split('\n').length, 1, `${args[0]}: ${r.stderr}`);
  }
});

// A TLS-terminating proxy (tls_proxy.mjs) in front of the server, with a
// throwaway CA it makes in a temporary directory.
async function tlsProxy() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sw-cli-tls-'));
  const proxy = spawn(process.execPath, [path.join(here, 'tls_proxy.mjs'), dir, String(port)],
    { stdio: ['pipe', 'pipe', 'inherit'] });
  const ports = await withTimeout(new Promise((resolve, reject) => {
    let out = '';
    proxy.stdout.on('data', (d) => {
      out += d;
      if (out.includes('\n')) resolve(JSON.parse(out));
    });
    proxy.on('exit', (code) => reject(new Error(`tls proxy exited ${code}`)));
  }), 20000, 'tls proxy start');
  const stop = () => {
    proxy.stdin.end();
    proxy.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  };
  return { dir, ports, stop };
}

test('pub and sub over TLS: --tls --ca-file, and a wrong CA is refused', async () => {
  const { dir, ports, stop } = await tlsProxy();
  try {
    const tlsArgs = ['--tls', '--ca-file', path.join(dir, 'ca.pem'), '--host', '127.0.0.1', '--port', String(ports.good)];
    const sub = spawn(BIN, ['sub', ...tlsArgs, '--key', key.keyStr, 'cli-tls', '--count', '2'],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    sub.stdout.on('data', (d) => { out += d; });
    sub.stderr.on('data', (d) => { err += d; });
    const subExit = new Promise((resolve) => sub.on('exit', (code) => resolve(code)));
    const deadline = Date.now() + 10000;
    for (;;) {
      const st = await http('GET', '/channels/cli-tls', { headers: { Authorization: `Basic ${Buffer.from(key.keyStr).toString('base64')}` } });
      if (st.status === 200 && st.json.status?.occupancy?.metrics?.subscribers > 0) break;
      assert.ok(Date.now() < deadline, `subscriber never attached: ${err}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const pub = await run(['pub', ...tlsArgs, '--key', key.keyStr, '--format', 'json', 'cli-tls', 'over', 'tls']);
    assert.equal(pub.code, 0, pub.stderr);
    assert.equal(await withTimeout(subExit, 10000, 'sub exit'), 0, err);
    assert.deepEqual(out.trim().split('\n').map((l) => JSON.parse(l).data), ['over', 'tls']);
    // Through the proxy: it recorded no SNI for an IP literal.
    assert.match(fs.readFileSync(path.join(dir, 'sni.log'), 'utf8'), /^-$/m);

    const wrongCa = await run(['pub', '--tls', '--ca-file', path.join(dir, 'ca2.pem'), '--host', '127.0.0.1',
      '--port', String(ports.good), '--key', key.keyStr, 'cli-tls', 'x']);
    assert.equal(wrongCa.code, 1);
    assert.match(wrongCa.stderr, /80000 .*TLS certificate verify failed: unable to get local issuer certificate/);
    const plain = await run(['pub', '--ca-file', path.join(dir, 'ca.pem'), '--port', String(port), '--key', key.keyStr, 'cli-tls', 'x']);
    assert.equal(plain.code, 2);
    assert.match(plain.stderr, /tls_ca_file is set but tls is not/);
  } finally {
    stop();
  }
});
