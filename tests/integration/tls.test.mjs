// TLS on the listener (issue 14 item 3): `--tls-cert/--tls-key` with a
// throwaway CA (tests/lib/tls-certs.mjs, the openssl command).
//  - the real ably SDK with `tls: true` (wss:// and https://), JSON and
//    msgpack, in a child process that trusts the CA (lib/tls-client.mjs);
//  - RSA1: Basic auth is allowed over TLS even with basicOverHttp "deny";
//  - a plain HTTP request to the TLS port is answered with the Ably error;
//  - TLS 1.2+ with modern suites, no renegotiation, session tickets resume;
//  - SIGHUP reloads the certificate under load (JSON and msgpack clients)
//    without dropping a connection; new connections get the new
//    certificate; a file that does not load keeps the old one;
//  - the handshake is a pre-auth phase: tlsHandshakeTimeout, and it counts
//    against maxPendingPerIp;
//  - RTN15h3 over TLS: a stalled subscriber still gets DISCONNECTED (42916)
//    and a close frame (1013) when it reads again.
// Bounds on when things happen are generous, for a loaded machine.
import { spawn } from 'node:child_process';
import { copyFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { after, before } from 'node:test';
import {
  startServer,
  appSetup,
  sleep,
  withTimeout,
  waitUntil,
  uniqueChannel,
  basicAuth,
  WebSocket,
  assert,
  test,
} from './lib/server.mjs';
import { writeConfig } from './lib/auth.mjs';
import { makePki } from '../lib/tls-certs.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const HANDSHAKE = 1000;
const SLACK = 6000; // how late a deadline may fire on a loaded machine

const pki = makePki();
const certA = pki.issue('a');
const certB = pki.issue('b');
// The files the server reads; the reload test swaps what they hold.
const live = { cert: path.join(pki.dir, 'live.pem'), key: path.join(pki.dir, 'live.key') };
const install = (c) => {
  copyFileSync(c.cert, live.cert);
  copyFileSync(c.key, live.key);
};
install(certA);
const cfg = writeConfig({ auth: { basicOverHttp: 'deny' }, limits: { tlsHandshakeTimeout: HANDSHAKE } });
const env = { server: null, app: null };

before(async () => {
  env.server = await startServer({ label: 'tls', extraArgs: ['--tls-cert', live.cert, '--tls-key', live.key, '--config', cfg.file] });
  assert.equal(env.server.scheme, 'https', 'the server says it listens on https://');
  // The first-run snippet: ably-js takes a TLS port as tlsPort.
  assert.match(env.server.stdout, new RegExp(`endpoint: '127\\.0\\.0\\.1', tlsPort: ${env.server.port}, tls: true`));
  const res = await request('POST', '/apps', { body: appSetup() });
  assert.equal(res.status, 201, res.text);
  env.app = res.body;
});

after(async () => {
  try {
    if (env.server) await env.server.stop();
  } finally {
    cfg.cleanup();
    pki.cleanup();
  }
});

const key = () => env.app.keys[0].keyStr;

/** HTTPS to the server, trusting the test CA: {status, headers, text, body}. */
function request(method, urlPath, { body, headers = {}, server = env.server } = {}) {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  const h = { ...headers, ...(payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}) };
  return withTimeout(
    new Promise((resolve, reject) => {
      const req = https.request(
        { host: server.host, port: server.port, method, path: urlPath, headers: h, ca: pki.caPem, agent: false },
        (res) => {
          const chunks = [];
          res.on('data', (d) => chunks.push(d));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let json;
            try {
              json = JSON.parse(text);
            } catch {
              json = undefined;
            }
            resolve({ status: res.statusCode, headers: res.headers, text, body: json });
          });
        },
      );
      req.on('error', reject);
      if (payload) req.write(payload);
      req.end();
    }),
    10_000,
    `HTTPS ${method} ${urlPath}`,
  );
}

/** The serial number of the certificate a new TLS connection gets. */
function servedSerial() {
  return withTimeout(
    new Promise((resolve, reject) => {
      const s = tls.connect({ host: env.server.host, port: env.server.port, ca: pki.caPem }, () => {
        const serial = s.getPeerCertificate().serialNumber;
        s.destroy();
        resolve(serial);
      });
      s.on('error', reject);
    }),
    5000,
    'a TLS handshake',
  );
}

/** The ably SDK in a child process trusting the test CA (lib/tls-client.mjs). */
function sdkChild(params) {
  const proc = spawn(process.execPath, [path.join(here, 'lib', 'tls-client.mjs'), JSON.stringify(params)], {
    env: { ...process.env, NODE_EXTRA_CA_CERTS: pki.caFile },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const events = [];
  let stderr = '';
  let buf = '';
  const waiters = [];
  proc.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
  proc.stdout.setEncoding('utf8').on('data', (d) => {
    buf += d;
    for (let i; (i = buf.indexOf('\n')) >= 0; ) {
      events.push(JSON.parse(buf.slice(0, i)));
      buf = buf.slice(i + 1);
      for (const w of waiters) w();
    }
  });
  const exited = new Promise((resolve) => proc.on('exit', (code) => resolve(code)));
  exited.then(() => waiters.forEach((w) => w()));
  const detail = () => `child events: ${JSON.stringify(events).slice(0, 2000)}\nchild stderr: ${stderr.slice(-2000)}`;
  return {
    proc,
    detail,
    async event(name, ms) {
      const find = () => events.find((e) => e.event === name || e.event === 'error');
      await withTimeout(
        new Promise((resolve) => {
          const check = () => (find() || proc.exitCode !== null) && resolve();
          waiters.push(check);
          check();
        }),
        ms,
        `"${name}" from the SDK child\n${detail()}`,
      );
      const e = find();
      assert.ok(e && e.event === name, `the SDK child: ${detail()}`);
      return e;
    },
    send: (line) => proc.stdin.write(`${line}\n`),
    kill: () => proc.exitCode === null && proc.kill('SIGKILL'),
    exited,
  };
}

for (const binary of [false, true]) {
  const fmt = binary ? 'msgpack' : 'JSON';
  test(`TLS: ably-js with tls: true over wss:// and https:// (${fmt}): realtime publish/subscribe, large and binary messages, REST history, time and publish; Basic auth over TLS although basicOverHttp is "deny" (RSA1)`, { timeout: 60_000 }, async () => {
    const channel = uniqueChannel(`tls-${fmt}`);
    const child = sdkChild({ mode: 'pubsub', port: env.server.port, key: key(), binary, channel });
    try {
      const r = await child.event('result', 40_000);
      assert.deepEqual(r.received.map((m) => m.name), ['small', 'big', 'binary']);
      assert.deepEqual(r.received.map((m) => m.length), [5, 60_000, 4]);
      assert.ok(r.received[1].bigOk, 'the 60 KB message arrived intact');
      assert.equal(r.received[2].binary, true, 'binary data stays binary');
      assert.deepEqual(r.history, ['small', 'big', 'binary', 'rest']);
      assert.ok(Math.abs(r.time - Date.now()) < 60_000, `time ${r.time}`);
      assert.equal(await withTimeout(child.exited, 10_000, 'child exit'), 0, child.detail());
    } finally {
      child.kill();
    }
  });
}

test('RSA1: Basic auth over TLS is allowed where plain HTTP is refused (basicOverHttp "deny"); a plain HTTP request to the TLS port gets 400 with the Ably error', async () => {
  const ok = await request('GET', '/channels/x/messages', { headers: { authorization: basicAuth(key()) } });
  assert.equal(ok.status, 200, `REST with Basic over TLS: ${ok.text}`);
  // Plain HTTP on the TLS port: OpenSSL recognises the request, and the server
  // answers in plain HTTP rather than with an alert the client cannot read.
  const sock = net.connect({ host: env.server.host, port: env.server.port });
  const chunks = [];
  sock.on('data', (d) => chunks.push(d));
  sock.on('error', () => {});
  sock.write(`GET /channels/x/messages HTTP/1.1\r\nHost: x\r\nAuthorization: ${basicAuth(key())}\r\n\r\n`);
  await withTimeout(new Promise((r) => sock.on('close', r)), 5000, 'the server to answer and close');
  const text = Buffer.concat(chunks).toString('latin1');
  assert.match(text, /^HTTP\/1\.1 400 /, text);
  assert.match(text, /\r\nX-Ably-ErrorCode: 40000\r\n/i, text);
  const body = JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4));
  assert.equal(body.error.code, 40000);
  assert.equal(body.error.statusCode, 400);
  assert.match(body.error.message, /TLS/);
});

/** A TLS handshake with node's options: {ok, protocol, cipher, reused, code}. */
function handshake(opts) {
  return withTimeout(
    new Promise((resolve) => {
      const s = tls.connect({ host: env.server.host, port: env.server.port, ca: pki.caPem, ...opts });
      s.on('secureConnect', () =>
        resolve({ ok: true, s, protocol: s.getProtocol(), cipher: s.getCipher().name, reused: s.isSessionReused() }),
      );
      s.on('error', (e) => resolve({ ok: false, code: e.code }));
    }),
    5000,
    'a TLS handshake',
  );
}

test('TLS 1.2 and 1.3 only, forward-secret AEAD suites, no renegotiation; TLS 1.3 session tickets resume', async () => {
  const v11 = await handshake({ minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' });
  assert.equal(v11.ok, false);
  assert.equal(v11.code, 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION', 'the server refuses TLS 1.1 with an alert');
  const cbc = await handshake({ maxVersion: 'TLSv1.2', ciphers: 'AES128-SHA' });
  assert.equal(cbc.ok, false, 'RSA key exchange with CBC is refused');
  const v12 = await handshake({ maxVersion: 'TLSv1.2' });
  assert.equal(v12.protocol, 'TLSv1.2');
  assert.match(v12.cipher, /^ECDHE-.*(GCM|CHACHA20)/);
  const reneg = await withTimeout(
    new Promise((resolve) => {
      v12.s.on('error', (e) => resolve(e));
      v12.s.renegotiate({}, (e) => resolve(e));
    }),
    5000,
    'renegotiation',
  );
  v12.s.destroy();
  assert.equal(reneg?.code, 'ERR_SSL_NO_RENEGOTIATION');
  // TLS 1.3: a ticket from one connection resumes the next.
  let session;
  const first = await handshake({});
  assert.equal(first.protocol, 'TLSv1.3');
  first.s.on('session', (s) => (session = s));
  first.s.write('GET /time HTTP/1.1\r\nHost: x\r\n\r\n');
  await waitUntil(() => session, 5000, 'a session ticket');
  first.s.destroy();
  const second = await handshake({ session });
  assert.equal(second.reused, true, 'the session was resumed');
  second.s.destroy();
});

test('the TLS handshake is a pre-auth phase: a silent socket and a half ClientHello are closed without a word after tlsHandshakeTimeout', { timeout: 30_000 }, async () => {
  const probe = async (bytes) => {
    const sock = net.connect({ host: env.server.host, port: env.server.port });
    const chunks = [];
    sock.on('data', (d) => chunks.push(d));
    sock.on('error', () => {});
    await withTimeout(new Promise((r) => sock.on('connect', r)), 5000, 'connect');
    const t0 = Date.now();
    if (bytes) sock.write(bytes);
    await withTimeout(new Promise((r) => sock.on('close', r)), HANDSHAKE + SLACK, 'the server to close');
    return { ms: Date.now() - t0, got: Buffer.concat(chunks).length };
  };
  const [silent, half] = await Promise.all([probe(null), probe(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]))]);
  for (const [what, r] of [['silent', silent], ['half ClientHello', half]]) {
    assert.ok(r.ms >= HANDSHAKE - 300, `${what}: closed after ${r.ms} ms, not before the deadline`);
    assert.equal(r.got, 0, `${what}: nothing is said before the handshake`);
  }
});

test('pending budget: sockets in the TLS handshake count against maxPendingPerIp', { timeout: 30_000 }, async () => {
  const small = writeConfig({ limits: { maxPendingPerIp: 2, tlsHandshakeTimeout: 30_000 } });
  const server = await startServer({ label: 'tls-budget', extraArgs: ['--tls-cert', live.cert, '--tls-key', live.key, '--config', small.file] });
  const socks = [];
  try {
    const open = async () => {
      const sock = net.connect({ host: server.host, port: server.port });
      sock.on('error', () => {});
      const closed = new Promise((r) => sock.on('close', r));
      await withTimeout(new Promise((r) => sock.on('connect', r)), 5000, 'connect');
      socks.push(sock);
      return { closed }; // (an async function returning the promise itself would wait for it)
    };
    const held = [(await open()).closed, (await open()).closed];
    const third = (await open()).closed;
    await withTimeout(third, 5000, 'the third silent socket from the same address to be closed at accept');
    const still = await Promise.race([Promise.race(held).then(() => 'closed'), sleep(500).then(() => 'open')]);
    assert.equal(still, 'open', 'the first two wait in their handshake (30 s deadline)');
  } finally {
    for (const s of socks) s.destroy();
    await server.stop();
    small.cleanup();
  }
});

test('SIGHUP reloads the certificate under load: no connection dropped (JSON and msgpack), new connections get the new one; a key that does not load or match keeps the old one', { timeout: 120_000 }, async () => {
  assert.equal(await servedSerial(), certA.serial);
  const channel = uniqueChannel('tls-reload');
  const kids = [false, true].map((binary) =>
    sdkChild({ mode: 'load', port: env.server.port, key: key(), binary, channel: `${channel}-${binary}`, clients: 8 }),
  );
  try {
    await Promise.all(kids.map((k) => k.event('ready', 40_000)));
    const reloads = () => (env.server.stderr.match(/TLS certificate .* reloaded/g) || []).length;
    const hup = async (cert, want) => {
      const before = reloads();
      install(cert);
      env.server.proc.kill('SIGHUP');
      await waitUntil(() => reloads() > before, 5000, 'the reload in the server log', () => env.server.tail(1500));
      assert.equal(await servedSerial(), want.serial, 'a new connection gets the new certificate');
      await sleep(700); // traffic keeps flowing meanwhile
    };
    await hup(certB, certB);
    await hup(certA, certA);
    await hup(certB, certB);
    // A key that does not load, then one that does not match: the old context stays.
    const failures = () => (env.server.stderr.match(/previous certificate stays in use/g) || []).length;
    for (const [what, mess] of [
      ['a broken key', () => writeFileSync(live.key, 'not a key\n')],
      ['a key of another certificate', () => copyFileSync(certA.key, live.key)],
    ]) {
      const before = failures();
      mess();
      env.server.proc.kill('SIGHUP');
      await waitUntil(() => failures() > before, 5000, `the failed reload (${what}) in the log`, () => env.server.tail(1500));
      assert.equal(await servedSerial(), certB.serial, `${what}: the previous certificate is still served`);
    }
    assert.match(env.server.stderr, /key values mismatch/);
    install(certB);
    for (const k of kids) k.send('stop');
    for (const [i, k] of kids.entries()) {
      const r = await k.event('result', 40_000);
      const fmt = i ? 'msgpack' : 'JSON';
      assert.ok(r.published > 100, `${fmt}: ${r.published} messages published during the reloads`);
      assert.equal(r.acked, r.published, `${fmt}: every publish acknowledged (nacks ${JSON.stringify(r.nacks)})`);
      for (const [j, s] of r.subscribers.entries()) {
        const who = `${fmt} subscriber ${j}`;
        assert.deepEqual(s.states, [], `${who}: no connection state change during the reloads`);
        assert.equal(s.sameConnection, true, `${who}: the same connection throughout`);
        assert.equal(s.missing + s.dup + s.disorder, 0, `${who}: ${JSON.stringify(s)}`);
      }
    }
  } finally {
    install(certA);
    for (const k of kids) k.kill();
  }
});

test('RTN15h3 over TLS: a stalled subscriber that reads again gets DISCONNECTED (42916) and a close frame (1013)', { timeout: 90_000 }, async () => {
  const name = uniqueChannel('tls-stall');
  const ws = new WebSocket(`wss://${env.server.host}:${env.server.port}/?format=json&key=${encodeURIComponent(key())}`, { ca: pki.caPem });
  const frames = [];
  ws.on('message', (d) => frames.push(JSON.parse(d.toString())));
  const closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  ws.on('error', () => {});
  await withTimeout(new Promise((r) => ws.on('open', r)), 5000, 'open');
  ws.send(JSON.stringify({ action: 10, channel: name })); // ATTACH
  await waitUntil(() => frames.some((f) => f.action === 11), 5000, 'ATTACHED');
  ws.pause(); // stop reading: the kernel buffers fill, then the server's queue

  // ~15 MB over REST (Basic over TLS), in batches under maxHttpBody.
  const pad = 'x'.repeat(60_000);
  for (let b = 0; b < 16; b++) {
    const pubs = Array.from({ length: 15 }, (_, i) =>
      request('POST', `/channels/${name}/messages`, { body: { name: 'big', data: JSON.stringify({ i: b * 15 + i, pad }) }, headers: { authorization: basicAuth(key()) } }),
    );
    for (const res of await Promise.all(pubs)) assert.equal(res.status, 201, res.text);
  }
  await sleep(3000);
  ws.resume();
  const end = await withTimeout(closed, 15_000, 'the close frame');
  const last = frames[frames.length - 1];
  assert.equal(last?.action, 6, `the last ProtocolMessage is DISCONNECTED (got ${JSON.stringify(last).slice(0, 200)})`);
  assert.equal(last.error?.code, 42916);
  assert.equal(end.code, 1013, `a close frame (code ${end.code}; 1006 means none came)`);
  assert.match(end.reason, /42916/);
  const got = frames.filter((f) => f.action === 15).length;
  assert.ok(got > 0 && got < 240, `some messages, not all, before the last words (${got})`);
});

test('start-up: a certificate that does not load, or a certificate without its key, is refused with the reason', async () => {
  const refused = (args) =>
    startServer({ label: 'tls-refused', extraArgs: args }).then(
      (s) => s.stop().then(() => null),
      (err) => err,
    );
  const missing = await refused(['--tls-cert', path.join(pki.dir, 'nope.pem'), '--tls-key', live.key]);
  assert.ok(missing, 'the server did not start');
  assert.match(missing.message, /cannot load the TLS certificate chain .*nope\.pem/);
  const mismatch = await refused(['--tls-cert', certA.cert, '--tls-key', certB.key]);
  assert.match(mismatch?.message ?? '', /TLS private key .*mismatch/);
  const half = await refused(['--tls-cert', certA.cert]);
  assert.match(half?.message ?? '', /TLS needs both a certificate .* and a key/);
});

// ably-js's suite against a local sandbox (conformance/ably-js) routes its
// clients at the answer's endpoint/port/tls; over TLS that must say tls: true.
test('sandbox admin over TLS: POST /apps answers tls: true with the port the request came to', () => {
  assert.equal(env.app.tls, true, `tls: ${JSON.stringify(env.app.tls)}`);
  assert.equal(env.app.port, env.server.port);
  assert.equal(env.app.endpoint, '127.0.0.1');
});
