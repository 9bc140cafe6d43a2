// Behind a reverse proxy (issue 14 item 3): `trustedProxies` makes the server
// believe X-Forwarded-For and X-Forwarded-Proto from those peers only, so
// that the plain-HTTP Basic rule (RSA1: basicOverHttp) and per-client limits
// see the real client, not the proxy on loopback.
// The "proxy" is this process connecting from 127.0.0.1 (trusted); an
// untrusted peer connects from 127.0.0.2 (also loopback, so what changes is
// only whether the headers are believed).
import nodeHttp from 'node:http';
import net from 'node:net';
import { after, before } from 'node:test';
import { Ably, startServer, http, basicAuth, withTimeout, sleep, WebSocket, assert, test } from './lib/server.mjs';
import { writeConfig } from './lib/auth.mjs';

const PROXY = '127.0.0.1';
const OTHER = '127.0.0.2';
const ANON = { ttl: 600000, rateLimit: { perAddressPerMinute: 2, perMinute: 100 } };

// loopback: basicOverHttp "loopback" (the default), a trusted proxy, a small per-address pending cap.
// deny: basicOverHttp "deny", the same trusted proxy.
const cfgs = {
  loopback: writeConfig({ trustedProxies: [PROXY, '2001:db8::/32'], limits: { maxPendingPerIp: 2 } }),
  deny: writeConfig({ trustedProxies: ['127.0.0.0/31'], auth: { basicOverHttp: 'deny' } }),
};
const env = {};

before(async () => {
  for (const [name, cfg] of Object.entries(cfgs)) {
    const server = await startServer({ label: `proxy-${name}`, extraArgs: ['--config', cfg.file] });
    const res = await http(server, 'POST', '/apps', { body: { keys: [{}], anonymous: ANON } });
    assert.equal(res.status, 201, res.text);
    env[name] = { server, app: res.body, key: res.body.keys[0].keyStr };
  }
});

after(async () => {
  try {
    for (const e of Object.values(env)) await e.server.stop();
  } finally {
    for (const c of Object.values(cfgs)) c.cleanup();
  }
});

/** A request from localAddress: {status, code (the Ably error code, or 0)}. */
function from(localAddress, e, method, path, headers = {}) {
  return withTimeout(
    new Promise((resolve, reject) => {
      const req = nodeHttp.request(
        { host: e.server.host, port: e.server.port, method, path, headers, localAddress, agent: false },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (d) => (text += d));
          res.on('end', () => {
            let code = 0;
            try {
              code = JSON.parse(text)?.error?.code ?? 0;
            } catch {
              /* not JSON */
            }
            resolve({ status: res.statusCode, code, text });
          });
        },
      );
      req.on('error', reject);
      req.end();
    }),
    5000,
    `${method} ${path} from ${localAddress}`,
  );
}

/** REST with Basic auth: 200, or 401 with 40103 when Basic is refused. */
const basicGet = (localAddress, e, headers = {}) =>
  from(localAddress, e, 'GET', '/channels/proxied/messages', { authorization: basicAuth(e.key), ...headers });

/** A WebSocket upgrade with ?key= from localAddress: the first ProtocolMessage's action and error code. */
function wsFrom(localAddress, e, headers = {}) {
  const ws = new WebSocket(`ws://${e.server.host}:${e.server.port}/?format=json&key=${encodeURIComponent(e.key)}`, {
    headers,
    localAddress,
  });
  ws.on('error', () => {});
  return withTimeout(
    new Promise((resolve) => {
      ws.on('message', (d) => {
        const m = JSON.parse(d.toString());
        ws.terminate();
        resolve({ action: m.action, code: m.error?.code ?? 0 });
      });
    }),
    5000,
    `the first ProtocolMessage (from ${localAddress})`,
  ).finally(() => ws.terminate());
}

const CONNECTED = 4;
const ERROR = 9;

test('trustedProxies, basicOverHttp "loopback": a remote client behind the proxy on loopback is refused Basic over plain HTTP (40103), on REST and the WebSocket; over the proxy\'s TLS (X-Forwarded-Proto: https) it is allowed (RSA1)', async () => {
  const e = env.loopback;
  const remote = { 'x-forwarded-for': '203.0.113.5' };
  let r = await basicGet(PROXY, e, remote);
  assert.deepEqual([r.status, r.code], [401, 40103], r.text);
  assert.deepEqual(await wsFrom(PROXY, e, remote), { action: ERROR, code: 40103 });
  const secure = { ...remote, 'x-forwarded-proto': 'https' };
  r = await basicGet(PROXY, e, secure);
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(await wsFrom(PROXY, e, secure), { action: CONNECTED, code: 0 });
  // A client on the proxy's host (X-Forwarded-For: loopback), or the proxy's own request (none).
  assert.equal((await basicGet(PROXY, e, { 'x-forwarded-for': '127.0.0.1' })).status, 200);
  assert.equal((await basicGet(PROXY, e)).status, 200);
});

test('trustedProxies: X-Forwarded-For is read from the right, past trusted proxies; a loopback address a client wrote itself does not help it', async () => {
  const e = env.loopback;
  // The client sent "X-Forwarded-For: 127.0.0.1"; the proxy appended the real address.
  let r = await basicGet(PROXY, e, { 'x-forwarded-for': '127.0.0.1, 203.0.113.5' });
  assert.deepEqual([r.status, r.code], [401, 40103], 'the spoofed loopback address is not the client');
  // Two proxies (an outer one at 2001:db8::7, trusted), the client before them.
  r = await basicGet(PROXY, e, { 'x-forwarded-for': '203.0.113.5, 2001:db8::7' });
  assert.deepEqual([r.status, r.code], [401, 40103], 'the walk goes past trusted proxies to the client');
  // An address with a port, as some proxies write it.
  r = await basicGet(PROXY, e, { 'x-forwarded-for': '203.0.113.5:41234' });
  assert.deepEqual([r.status, r.code], [401, 40103], 'a.b.c.d:port is the client a.b.c.d');
});

test('trustedProxies: the same headers from a peer that is not trusted are ignored', async () => {
  // 127.0.0.2 is loopback (Basic allowed there by default) but not trusted:
  // its X-Forwarded-For does not make it remote...
  const r = await basicGet(OTHER, env.loopback, { 'x-forwarded-for': '203.0.113.5' });
  assert.equal(r.status, 200, r.text);
  // ...and with basicOverHttp "deny", its X-Forwarded-Proto does not make it secure.
  const d = await basicGet(OTHER, env.deny, { 'x-forwarded-proto': 'https' });
  assert.deepEqual([d.status, d.code], [401, 40103], d.text);
  // From the trusted proxy (127.0.0.0/31 holds 127.0.0.1), it does; without it, refused.
  assert.equal((await basicGet(PROXY, env.deny, { 'x-forwarded-proto': 'https' })).status, 200);
  const plain = await basicGet(PROXY, env.deny, { 'x-forwarded-proto': 'http' });
  assert.deepEqual([plain.status, plain.code], [401, 40103]);
  // A client's own X-Forwarded-Proto, before the one the proxy wrote, is not believed.
  const appended = await basicGet(PROXY, env.deny, { 'x-forwarded-proto': 'https, http' });
  assert.deepEqual([appended.status, appended.code], [401, 40103]);
});

test('trustedProxies: the forwarded client is per request, on one keep-alive connection from the proxy', async () => {
  const e = env.deny;
  const sock = net.connect({ host: e.server.host, port: e.server.port, localAddress: PROXY });
  const chunks = [];
  sock.on('data', (d) => chunks.push(d));
  sock.on('error', () => {});
  const req = (proto) =>
    `GET /channels/proxied/messages HTTP/1.1\r\nHost: x\r\nAuthorization: ${basicAuth(e.key)}\r\n` +
    `X-Forwarded-For: 203.0.113.5\r\n${proto ? `X-Forwarded-Proto: ${proto}\r\n` : ''}\r\n`;
  const statuses = () => [...Buffer.concat(chunks).toString('latin1').matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));
  for (const [i, proto] of ['https', null, 'https'].entries()) {
    sock.write(req(proto)); // one at a time, each after the previous answer
    const t0 = Date.now();
    while (statuses().length <= i && Date.now() - t0 < 5000) await sleep(20);
  }
  sock.destroy();
  assert.deepEqual(statuses(), [200, 401, 200]);
});

test('trustedProxies: the anonymous sign-up rate limit counts the forwarded client, not the proxy', async () => {
  const e = env.loopback;
  const signUp = (addr, xff) =>
    from(addr, e, 'POST', `/cloud/${e.app.appId}/v1/auth/tokens/anonymous`, xff ? { 'x-forwarded-for': xff } : {});
  for (let i = 0; i < 2; i++) assert.equal((await signUp(PROXY, '198.51.100.1')).status, 200);
  const over = await signUp(PROXY, '198.51.100.1');
  assert.deepEqual([over.status, over.code], [429, 42910], over.text);
  assert.equal((await signUp(PROXY, '198.51.100.2')).status, 200, 'another client behind the same proxy has its own budget');
  // Not trusted: the header is ignored, every sign-up counts against 127.0.0.2.
  for (let i = 0; i < 2; i++) assert.equal((await signUp(OTHER, `198.51.100.${10 + i}`)).status, 200);
  const other = await signUp(OTHER, '198.51.100.12');
  assert.deepEqual([other.status, other.code], [429, 42910], other.text);
});

test('trustedProxies: the proxy\'s sockets are not held to maxPendingPerIp (it carries many clients); an untrusted peer is', async () => {
  const e = env.loopback; // maxPendingPerIp 2
  const open = async (localAddress) => {
    const sock = net.connect({ host: e.server.host, port: e.server.port, localAddress });
    sock.on('error', () => {});
    let closed = false;
    sock.on('close', () => (closed = true));
    await withTimeout(new Promise((r) => sock.on('connect', r)), 5000, 'connect');
    return { sock, isClosed: () => closed };
  };
  const socks = [];
  try {
    for (let i = 0; i < 5; i++) socks.push(await open(PROXY));
    // An untrusted address no other test of this file uses: sockets of the
    // earlier tests from OTHER may still be closing (pending) on a slow
    // (sanitizer) build, and would count against its budget.
    for (let i = 0; i < 3; i++) socks.push(await open('127.0.0.3'));
    await sleep(1000);
    assert.deepEqual(socks.map((s) => s.isClosed()), [false, false, false, false, false, false, false, true]);
  } finally {
    for (const s of socks) s.sock.destroy();
  }
});

test('trustedProxies: a bad entry is refused at start-up with the reason', async () => {
  const bad = writeConfig({ trustedProxies: ['10.0.0.1/8'] });
  try {
    const r = await startServer({ label: 'proxy-bad', extraArgs: ['--config', bad.file] }).then(
      (s) => s.stop().then(() => null),
      (err) => err,
    );
    assert.ok(r, 'the server did not start');
    assert.match(r.message, /trustedProxies\[0\]: not an IP address or CIDR block/);
  } finally {
    bad.cleanup();
  }
});

/** A raw WebSocket from the proxy with ?key=: the reply to ATTACH channel (action, error code). */
function attachFrom(e, key, channel, headers = {}) {
  const ws = new WebSocket(`ws://${e.server.host}:${e.server.port}/?format=json&key=${encodeURIComponent(key)}`, {
    headers,
    localAddress: PROXY,
  });
  ws.on('error', () => {});
  return withTimeout(
    new Promise((resolve) => {
      ws.on('message', (d) => {
        const m = JSON.parse(d.toString());
        if (m.action === CONNECTED) ws.send(JSON.stringify({ action: 10, channel }));
        else if (m.channel === channel) resolve({ action: m.action, code: m.error?.code ?? 0 });
      });
    }),
    5000,
    `the reply to ATTACH ${channel}`,
  ).finally(() => ws.terminate());
}

test('a tlsOnly namespace: used over plain HTTP or ws, every channel operation is refused 40311 (403) on REST (history, publish, presence) and realtime ATTACH; over TLS (the trusted proxy\'s X-Forwarded-Proto: https) it works; other channels are unaffected', async () => {
  const e = env.loopback;
  const res = await http(e.server, 'POST', '/apps', { body: { keys: [{}], namespaces: [{ id: 'secure', tlsOnly: true }] } });
  assert.equal(res.status, 201, res.text);
  const key = res.body.keys[0].keyStr;
  const auth = { authorization: basicAuth(key) };
  const https = { ...auth, 'x-forwarded-proto': 'https' };
  for (const path of ['/channels/secure:a/messages', '/channels/secure:a/presence', '/channels/secure:a/presence/history']) {
    const r = await from(PROXY, e, 'GET', path, auth);
    assert.deepEqual([r.status, r.code], [403, 40311], `${path}: ${r.text}`);
    assert.equal((await from(PROXY, e, 'GET', path, https)).status, 200, path);
  }
  assert.equal((await from(PROXY, e, 'GET', '/channels/plain:a/messages', auth)).status, 200);
  // Batch presence (RSC24): the tlsOnly channel's result is the error, the other channel's is served.
  const batch = await from(PROXY, e, 'GET', '/presence?channels=secure:a,plain:a', auth);
  const results = JSON.parse(batch.text);
  const items = Array.isArray(results) ? results : results.results ?? results.batchResponse;
  const byName = Object.fromEntries(items.map((x) => [x.channel, x]));
  assert.equal(byName['secure:a'].error?.code, 40311, batch.text);
  assert.ok(!byName['plain:a'].error, batch.text);
  // REST publish, with the Ably SDK over plain HTTP: refused, nothing stored.
  const rest = new Ably.Rest({ key, endpoint: e.server.host, port: e.server.port, tls: false, useBinaryProtocol: false });
  await assert.rejects(rest.channels.get('secure:a').publish('m', 'x'), (err) => err.code === 40311 && err.statusCode === 403);
  await rest.channels.get('plain:a').publish('m', 'x');
  // Realtime: ATTACH refused over plain ws, accepted behind the proxy's TLS.
  assert.deepEqual(await attachFrom({ server: e.server }, key, 'secure:b'), { action: ERROR, code: 40311 });
  assert.deepEqual(await attachFrom({ server: e.server }, key, 'secure:b', { 'x-forwarded-proto': 'https' }), { action: 11, code: 0 });
  assert.deepEqual(await attachFrom({ server: e.server }, key, 'plain:b'), { action: 11, code: 0 });
});
