// Socket output (src/core/sock.c): frames are queued and each socket is
// flushed once per loop turn with one writev of its whole queue; only what the
// kernel does not take waits for POLLOUT. These tests drive the paths a fast
// reader never reaches: a queue longer than one writev, and a reader that
// stops long enough for the kernel buffers to fill (partial writes in the
// middle of a frame, then the rest when it reads again).
import assert from 'node:assert/strict';
import { before, after } from 'node:test';
import {
  startServer,
  createApp,
  clients,
  connected,
  collector,
  uniqueChannel,
  withTimeout,
  sleep,
  test,
  bothProtocols,
  ACTION,
} from './lib/server.mjs';
import { wsConnected, wsAttach, writeConfig } from './lib/auth.mjs';

// The outbound bound is raised so that a paused reader is a backlog, not a
// slow consumer: the test is about what is written, not about the bound
// (resume.test.mjs covers 42916).
const cfg = writeConfig({ limits: { maxOutboundBytes: 64 << 20 } });
let server;
let app;
before(async () => {
  server = await startServer({ label: 'output', extraArgs: ['--config', cfg.file] });
  app = await createApp(server);
});
after(async () => {
  if (server) await server.stop();
  cfg.cleanup();
});
const key = () => app.keys[0].keyStr;

bothProtocols('a reader that pauses while 12 MB queue up gets every message once, in order and intact, on the same connection', { timeout: 60_000 }, async (t, binary) => {
  // Loopback kernel buffers hold ~4 MB here (send buffer autotuned up to
  // tcp_wmem's 4 MiB, plus the paused reader's receive buffer): most of the
  // 12 MB waits in the server's queue and is written in pieces that end in
  // the middle of frames.
  const N = 200;
  const SIZE = 60_000;
  const c = clients(t);
  const name = uniqueChannel('backlog');
  const [pub, sub] = await Promise.all([
    connected(c, server, { key: key(), binary, echoMessages: false }),
    connected(c, server, { key: key(), binary }),
  ]);
  const sch = sub.channels.get(name);
  const col = collector(sch);
  await withTimeout(col.subscribed, 5000, 'attach');
  const id0 = sub.connection.id;
  const states = [];
  sub.connection.on((sc) => states.push(sc.current));
  const ws = sub.connection.connectionManager.activeProtocol.getTransport().wsConnection;
  assert.equal(typeof ws?.pause, 'function', 'ably-js node transport exposes the ws socket');
  ws.pause();

  const pad = 'y'.repeat(SIZE);
  const pch = pub.channels.get(name);
  const pubs = [];
  for (let i = 0; i < N; i++) {
    pubs.push(pch.publish('big', { i, pad }));
    if (i % 50 === 49) await sleep(1);
  }
  const results = await withTimeout(Promise.allSettled(pubs), 30_000, 'publisher ACKs');
  assert.deepEqual(results.filter((r) => r.status === 'rejected'), [], 'every publish acknowledged');
  await sleep(300); // the server has queued what the kernel would not take
  ws.resume();

  await col.until(N, 30_000);
  await sleep(200);
  assert.deepEqual(states.filter((s) => s !== 'update'), [], 'the connection never left CONNECTED');
  assert.equal(sub.connection.id, id0);
  const seq = col.messages.map((m) => m.data.i);
  assert.equal(seq.length, N, `exactly ${N} messages (duplicates: ${seq.length - new Set(seq).size})`);
  for (let i = 0; i < N; i++) if (seq[i] !== i) assert.fail(`out of order / gap at ${i}: got ${seq[i]}`);
  assert.ok(col.messages.every((m) => m.data.pad === pad), 'payloads intact');
});

test('raw: 300 publishes sent in one burst get 300 ACKs and 300 echoes, in order (queues longer than one writev)', { timeout: 30_000 }, async () => {
  const N = 300;
  const { sock } = await wsConnected(assert, server, { key: key() });
  try {
    const name = uniqueChannel('burst');
    const att = await wsAttach(sock, name);
    assert.equal(att.action, ACTION.ATTACHED);
    // One send() per ProtocolMessage, all before any answer can arrive: the
    // server reads them together and its answers to this one socket pile up
    // in the same turns (ACKs and echoed MESSAGEs: more than 64 frames).
    for (let i = 0; i < N; i++) {
      sock.send({ action: ACTION.MESSAGE, channel: name, msgSerial: i, messages: [{ name: 'n', data: `m${i}` }] });
    }
    const acked = () => sock.frames.filter((f) => f.action === ACTION.ACK).reduce((n, f) => n + (f.count ?? 1), 0);
    const echoes = () => sock.frames.filter((f) => f.action === ACTION.MESSAGE && f.channel === name);
    const deadline = Date.now() + 20_000;
    while ((acked() < N || echoes().length < N) && Date.now() < deadline) await sleep(20);
    assert.equal(acked(), N, 'every publish acknowledged');
    const acks = sock.frames.filter((f) => f.action === ACTION.ACK);
    let next = 0;
    for (const a of acks) {
      assert.equal(a.msgSerial, next, 'ACKs in msgSerial order, none repeated');
      next += a.count ?? 1;
    }
    const data = echoes().flatMap((f) => f.messages.map((m) => m.data));
    assert.deepEqual(data, Array.from({ length: N }, (_, i) => `m${i}`), 'echoes in publish order, each once');
    assert.ok(!sock.frames.some((f) => f.action === ACTION.ERROR || f.action === ACTION.DISCONNECTED), 'no error');
  } finally {
    sock.close();
  }
});
