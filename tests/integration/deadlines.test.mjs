// Deadlines, refusals and lingering closes of the socket layer (issue 11,
// findings 2, 5 and 6), with raw node:net sockets where the SDK cannot
// produce the input, and the ably SDK where it can:
//  - a socket that is not yet useful (no request, a head sent a line at a
//    time, a body that stops, an idle keep-alive connection) is closed at
//    its deadline, a request under way with 408 and the Ably error; an
//    authenticated idle WebSocket is kept (idle connections are the product);
//  - every refusal of the socket layer (400, 411, 413, 431, 408) carries the
//    Ably error body and X-Ably-ErrorCode/X-Ably-ErrorMessage; a duplicate
//    Sec-WebSocket-Key (RFC 6455 §11.3.1) or Host is a 400;
//  - a 1.2 MB POST reads the 413, never ECONNRESET (lingering close);
//  - RTN15h3: a stalled subscriber that reads again after 7 s still gets
//    DISCONNECTED (42916) and a close frame (1013) with the reason.
// Deadlines are 1 s here (--config); bounds on when things happen are
// generous, for a loaded machine.
import net from 'node:net';
import {
  useServer,
  http,
  sleep,
  withTimeout,
  uniqueChannel,
  clients,
  connected,
  collector,
  WebSocket,
  assert,
  test,
} from './lib/server.mjs';
import { writeConfig } from './lib/auth.mjs';

const HEAD = 1000;
const BODY = 1000;
const IDLE = 1000;
const SLACK = 6000; // how late a deadline may fire on a loaded machine
const cfg = writeConfig({
  limits: { httpHeadTimeout: HEAD, httpBodyTimeout: BODY, httpIdleTimeout: IDLE },
});
const env = useServer({ label: 'deadlines', extraArgs: ['--config', cfg.file] });
process.on('exit', () => cfg.cleanup());
const key = () => env.app.keys[0].keyStr;
const WS_KEY = 'dGhlIHNhbXBsZSBub25jZQ==';

/**
 * A raw TCP connection to the server. `closed` resolves with
 * {ms (since connect), error (code or null)} when the socket closes;
 * `text()` is everything received so far (latin1).
 */
function raw(server, { localAddress } = {}) {
  const sock = net.connect({ host: server.host, port: server.port, localAddress });
  const chunks = [];
  let t0 = Date.now();
  let error = null;
  sock.on('data', (d) => chunks.push(d));
  sock.on('error', (e) => {
    error = e.code || String(e);
  });
  const connectedP = new Promise((resolve, reject) => {
    sock.once('connect', () => {
      t0 = Date.now();
      resolve();
    });
    sock.once('error', reject);
  });
  const closed = new Promise((resolve) => sock.on('close', () => resolve({ ms: Date.now() - t0, error })));
  return {
    sock,
    connected: withTimeout(connectedP, 5000, 'TCP connect'),
    closed,
    text: () => Buffer.concat(chunks).toString('latin1'),
    write(s) {
      if (!sock.destroyed && sock.writable) sock.write(s);
    },
    destroy: () => sock.destroy(),
  };
}

/** Parses the first HTTP response in text: {status, headers (lowercase), body, rest}. */
function parseResponse(text) {
  const end = text.indexOf('\r\n\r\n');
  assert.ok(end > 0, `no complete HTTP response in ${JSON.stringify(text.slice(0, 300))}`);
  const lines = text.slice(0, end).split('\r\n');
  const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(lines[0])?.[1]);
  const headers = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  const len = Number(headers['content-length'] || 0);
  const body = text.slice(end + 4, end + 4 + len);
  return { status, headers, body, rest: text.slice(end + 4 + len) };
}

/** Asserts an Ably error response: status, X-Ably-* headers and the JSON error body. */
function assertAblyError(res, status, code, what) {
  assert.equal(res.status, status, `${what}: status`);
  assert.match(res.headers['content-type'] || '', /application\/json/, `${what}: content-type`);
  assert.equal(res.headers['x-ably-errorcode'], String(code), `${what}: X-Ably-ErrorCode`);
  assert.ok((res.headers['x-ably-errormessage'] || '').length > 0, `${what}: X-Ably-ErrorMessage`);
  let body;
  assert.doesNotThrow(() => (body = JSON.parse(res.body)), `${what}: body is JSON: ${res.body}`);
  assert.equal(body.error?.code, code, `${what}: error.code in ${res.body}`);
  assert.equal(body.error?.statusCode, status, `${what}: error.statusCode in ${res.body}`);
  assert.ok(typeof body.error?.message === 'string' && body.error.message.length > 0, `${what}: error.message`);
  assert.equal(body.error?.href, `https://help.ably.io/error/${code}`, `${what}: error.href`);
  return body.error;
}

/** Sends `request` on a new raw socket; resolves with the parsed response once the server closes. */
async function refusal(request) {
  const c = raw(env.server);
  await c.connected;
  c.write(request);
  const end = await withTimeout(c.closed, 5000, 'the server to answer and close');
  return { ...parseResponse(c.text()), end };
}

const upgradeHead = (extra = '', query = '') =>
  `GET /?format=json${query} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
  `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${WS_KEY}\r\n${extra}\r\n`;

// ---------------------------------------------------------------------------
// Finding 2: connections that never finish
// ---------------------------------------------------------------------------

test('a TCP connection that sends nothing is closed at httpHeadTimeout, without a response', async () => {
  const c = raw(env.server);
  await c.connected;
  const end = await withTimeout(c.closed, HEAD + SLACK, 'the server to close a silent connection');
  assert.ok(end.ms >= HEAD - 250, `closed after ${end.ms} ms, before the ${HEAD} ms deadline`);
  assert.equal(c.text(), '', 'nothing is sent to a connection that sent nothing');
});

test('slow-loris: a head sent one line at a time is answered 408 with the Ably error at httpHeadTimeout', async () => {
  const c = raw(env.server);
  await c.connected;
  c.write('GET /time HTTP/1.1\r\nHost: x\r\n');
  let i = 0;
  const drip = setInterval(() => c.write(`X-Drip-${i++}: ${'v'.repeat(20)}\r\n`), 100);
  try {
    const end = await withTimeout(c.closed, HEAD + SLACK, 'the server to give up on a dripping head');
    assert.ok(end.ms >= HEAD - 250, `closed after ${end.ms} ms, before the ${HEAD} ms deadline`);
  } finally {
    clearInterval(drip);
  }
  const err = assertAblyError(parseResponse(c.text()), 408, 40000, 'head deadline');
  assert.match(err.message, /httpHeadTimeout/);
});

test('a request body that stops arriving is answered 408 at httpBodyTimeout', async () => {
  const c = raw(env.server);
  await c.connected;
  c.write(
    `POST /channels/${uniqueChannel('body')}/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n` +
      'Content-Length: 100\r\n\r\n{"name":',
  );
  await withTimeout(c.closed, BODY + SLACK, 'the server to give up on the body');
  const err = assertAblyError(parseResponse(c.text()), 408, 40000, 'body deadline');
  assert.match(err.message, /httpBodyTimeout/);
});

test('an idle keep-alive connection is closed at httpIdleTimeout, without a word; a busy one is kept', async () => {
  const c = raw(env.server);
  await c.connected;
  // Busy: a request every IDLE/3 for 3 idle periods, all on this socket.
  let answered = 0;
  for (let i = 0; i < 9; i++) {
    c.write('GET /time HTTP/1.1\r\nHost: x\r\n\r\n');
    await sleep(IDLE / 3);
    answered = (c.text().match(/HTTP\/1\.1 200 /g) || []).length;
  }
  await waitAnswers(c, 9);
  const before = c.text().length;
  const end = await withTimeout(c.closed, IDLE + SLACK, 'the server to close the idle connection');
  assert.ok(end.ms >= 9 * (IDLE / 3), `closed after ${end.ms} ms while busy (answered ${answered})`);
  assert.equal(c.text().length, before, 'no bytes (no 408) on an idle keep-alive connection');
  assert.equal(end.error, null, 'a clean close (FIN), not a reset');
});

async function waitAnswers(c, n) {
  const t0 = Date.now();
  while ((c.text().match(/HTTP\/1\.1 200 /g) || []).length < n) {
    if (Date.now() - t0 > 5000) assert.fail(`only ${(c.text().match(/HTTP\/1\.1 200 /g) || []).length} of ${n} answers`);
    await sleep(20);
  }
}

test('RSC ably REST client keeps working across idle keep-alive closes', async (t) => {
  const rest = new (await import('ably')).default.Rest({
    key: key(),
    endpoint: env.server.host,
    port: env.server.port,
    tls: false,
    useBinaryProtocol: false,
  });
  const ch = rest.channels.get(uniqueChannel('rest-idle'));
  for (let i = 0; i < 3; i++) {
    await withTimeout(ch.publish('n', String(i)), 5000, `publish ${i}`);
    await sleep(IDLE + 700); // the server closes the idle socket meanwhile
  }
  const page = await withTimeout(ch.history(), 5000, 'history');
  assert.equal(page.items.length, 3);
});

test('RFC 9112 §9.3.2: pipelined requests are answered in order, a publish that waits for storage before the GET behind it', async () => {
  const c = raw(env.server);
  await c.connected;
  const ch = uniqueChannel('pipelined');
  const auth = `Basic ${Buffer.from(key()).toString('base64')}`;
  const host = `Host: ${env.server.host}:${env.server.port}\r\nAuthorization: ${auth}\r\n`;
  const body = JSON.stringify({ name: 'p1', data: 'x' });
  // One write: a publish (answered once committed), /time (answered at once), a history read (storage again), /time.
  c.write(
    `POST /channels/${ch}/messages HTTP/1.1\r\n${host}Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}` +
      `GET /time HTTP/1.1\r\n${host}\r\n` +
      `GET /channels/${ch}/messages HTTP/1.1\r\n${host}\r\n` +
      `GET /time HTTP/1.1\r\n${host}Connection: close\r\n\r\n`,
  );
  await withTimeout(c.closed, 15000, 'the server to answer all four and close');
  const got = [];
  let text = c.text();
  while (text.length) {
    const r = parseResponse(text);
    got.push(r);
    text = r.rest;
  }
  assert.deepEqual(got.map((r) => r.status), [201, 200, 200, 200], got.map((r) => r.body).join('\n'));
  assert.ok(JSON.parse(got[0].body).serials, `first: the publish's answer (${got[0].body})`);
  assert.ok(Array.isArray(JSON.parse(got[1].body)) && typeof JSON.parse(got[1].body)[0] === 'number', `second: /time (${got[1].body})`);
  assert.deepEqual(JSON.parse(got[2].body).map((m) => m.name), ['p1'], 'third: the history, with the publish before it');
  assert.equal(typeof JSON.parse(got[3].body)[0], 'number', 'fourth: /time');
});

test('an upgraded WebSocket that is not bound to an Ably connection is refused and closed', async () => {
  const c = raw(env.server);
  await c.connected;
  c.write(upgradeHead()); // no credentials; then silence
  const end = await withTimeout(c.closed, SLACK, 'the server to close an unbound WebSocket');
  const t = c.text();
  assert.match(t, /^HTTP\/1\.1 101 /);
  assert.match(t, /"code":40101/, 'the ERROR says why');
  assert.equal(end.error, null, 'a clean close, not a reset');
});

test('an authenticated idle WebSocket is kept beyond every deadline (idle connections are the product)', async () => {
  const c = raw(env.server);
  await c.connected;
  c.write(upgradeHead('', `&key=${encodeURIComponent(key())}`));
  await sleep(Math.max(HEAD, BODY, IDLE) * 3);
  assert.match(c.text(), /^HTTP\/1\.1 101 /);
  assert.match(c.text(), /"action":4/, 'CONNECTED');
  assert.equal(c.sock.destroyed, false, 'still open');
  c.destroy();
});

// ---------------------------------------------------------------------------
// Finding 6: strictness and error bodies
// ---------------------------------------------------------------------------

test('RFC 6455 §11.3.1: two Sec-WebSocket-Key headers are a 400 with the Ably error', async () => {
  const res = await refusal(upgradeHead(`Sec-WebSocket-Key: ${WS_KEY}\r\n`, `&key=${encodeURIComponent(key())}`));
  const err = assertAblyError(res, 400, 40000, 'duplicate key');
  assert.match(err.message, /Sec-WebSocket-Key/);
  assert.ok(!/101 Switching/.test(res.rest), 'no upgrade');
});

test('RFC 6455 §11.3.5: two Sec-WebSocket-Version headers are a 400; repeated Connection/Upgrade lines are one list', async () => {
  const res = await refusal(upgradeHead('Sec-WebSocket-Version: 13\r\n', `&key=${encodeURIComponent(key())}`));
  const err = assertAblyError(res, 400, 40000, 'duplicate version');
  assert.match(err.message, /Sec-WebSocket-Version/);
  // RFC 9110 §5.3: a list split over lines is the same list.
  const c = raw(env.server);
  await c.connected;
  c.write(
    `GET /?format=json&key=${encodeURIComponent(key())} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n` +
      `Connection: keep-alive\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${WS_KEY}\r\n\r\n`,
  );
  await sleep(300);
  assert.match(c.text(), /^HTTP\/1\.1 101 /);
  c.destroy();
});

test('RFC 9112 §3.2: two Host headers are a 400 with the Ably error', async () => {
  const res = await refusal('GET /time HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n');
  assertAblyError(res, 400, 40000, 'duplicate Host');
});

test('a head over 16 KiB is a 431 with the Ably error and X-Ably-* headers', async () => {
  const res = await refusal(`GET /time HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20000)}\r\n\r\n`);
  assertAblyError(res, 431, 40004, '431');
  assert.equal(res.headers['access-control-allow-origin'], '*');
  assert.ok(res.headers['x-ably-serverid'], 'X-Ably-ServerId');
});

test('RSL1i a Content-Length over maxHttpBody is a 413 (40009) with the Ably error, before the body', async () => {
  const res = await refusal(`POST /channels/x/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n`);
  assertAblyError(res, 413, 40009, '413');
});

test('a chunked request body is a 411 and a malformed request a 400, both with the Ably error', async () => {
  assertAblyError(
    await refusal('POST /channels/x/messages HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n'),
    411,
    40000,
    '411',
  );
  assertAblyError(await refusal('NOT HTTP AT ALL\r\n\r\n'), 400, 40000, '400');
});

test('RSL1i a 1.2 MB POST reads the 413 with the Ably error, never ECONNRESET (lingering close), 10 times', async () => {
  const body = JSON.stringify({ name: 'big', data: 'x'.repeat(1_200_000) });
  const name = uniqueChannel('big');
  for (let i = 0; i < 10; i++) {
    let res;
    try {
      res = await http(env.server, 'POST', `/channels/${name}/messages`, { key: key(), body, timeoutMs: 10_000 });
    } catch (e) {
      assert.fail(`attempt ${i}: ${e.code || e.message} instead of the 413`);
    }
    assert.equal(res.status, 413, `attempt ${i}: ${res.text.slice(0, 200)}`);
    assert.equal(res.headers.get('x-ably-errorcode'), '40009');
    assert.equal(res.body?.error?.code, 40009, `attempt ${i}: ${res.text.slice(0, 200)}`);
    assert.equal(res.body?.error?.statusCode, 413);
  }
});

test('a client that sends its 1.2 MB body after the 413 arrived still reads the 413 (the server lingers)', async () => {
  for (let i = 0; i < 3; i++) {
    const c = raw(env.server);
    await c.connected;
    c.sock.pause(); // the 413 waits in the kernel, unread, like a busy client's
    c.write(
      `POST /channels/x/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n` +
        `Authorization: Basic ${Buffer.from(key()).toString('base64')}\r\nContent-Length: 1200000\r\n\r\n`,
    );
    await sleep(300); // the server has answered (and used to close at once)
    const wrote = new Promise((resolve) => c.sock.write(Buffer.alloc(1_200_000, 0x61), (err) => resolve(err)));
    const werr = await withTimeout(wrote, 5000, 'the body written');
    c.sock.resume();
    const end = await withTimeout(c.closed, 10_000, 'the close');
    assert.equal(werr ?? null, null, `attempt ${i}: writing the body failed (${werr?.code}): the server reset the connection`);
    assert.equal(end.error, null, `attempt ${i}: ${end.error}`);
    assertAblyError(parseResponse(c.text()), 413, 40009, `attempt ${i}`);
  }
});

// ---------------------------------------------------------------------------
// Finding 5: slow consumer
// ---------------------------------------------------------------------------

test('RTN15h3 slow consumer: a stalled client that reads again after 7 s gets DISCONNECTED (42916) and a close frame', { timeout: 90_000 }, async (t) => {
  const name = uniqueChannel('stall');
  const ws = new WebSocket(`ws://${env.server.host}:${env.server.port}/?format=json&key=${encodeURIComponent(key())}`);
  const frames = [];
  ws.on('message', (d) => frames.push(JSON.parse(d.toString())));
  const closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  ws.on('error', () => {});
  await withTimeout(new Promise((r) => ws.on('open', r)), 5000, 'open');
  ws.send(JSON.stringify({ action: 10, channel: name })); // ATTACH
  const t0 = Date.now();
  while (!frames.some((f) => f.action === 11)) {
    if (Date.now() - t0 > 5000) assert.fail('no ATTACHED');
    await sleep(20);
  }
  ws.pause(); // stop reading: the kernel buffers fill, then the server's queue

  // ~15 MB: beyond the 4 MiB bound plus the kernel's socket buffers.
  const c = clients(t);
  const pub = await connected(c, env.server, { key: key(), binary: true, echoMessages: false });
  const pch = pub.channels.get(name);
  const pad = 'x'.repeat(60_000);
  const pubs = [];
  for (let i = 0; i < 250; i++) {
    pubs.push(pch.publish('big', { i, pad }));
    if (i % 50 === 49) await sleep(1);
  }
  const results = await withTimeout(Promise.allSettled(pubs), 30_000, 'publisher ACKs');
  assert.equal(results.filter((r) => r.status === 'rejected').length, 0, 'the publisher is unaffected');

  await sleep(7000); // the server used to drop its last words after 5 s
  ws.resume();
  const end = await withTimeout(closed, 10_000, 'the close frame');
  const last = frames[frames.length - 1];
  assert.equal(last?.action, 6, `the last ProtocolMessage is DISCONNECTED (got ${JSON.stringify(last).slice(0, 200)})`);
  assert.equal(last.error?.code, 42916);
  assert.equal(end.code, 1013, `a close frame (code ${end.code}; 1006 means none came)`);
  assert.match(end.reason, /42916/);
  const got = frames.filter((f) => f.action === 15).length;
  assert.ok(got > 0 && got < 250, `the messages the kernel already held arrived first (${got})`);
});
