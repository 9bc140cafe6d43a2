// Server lifecycle: graceful shutdown on SIGTERM (clients see DISCONNECTED,
// not FAILED -- RTN15h3 / RTN15a; exit status 0 within 5 s) and durability
// with --data (acked messages survive a restart on the same data dir).
import assert from 'node:assert/strict';
import {
  startServer,
  createApp,
  makeTempDir,
  clients,
  connected,
  collector,
  uniqueChannel,
  withTimeout,
  sleep,
  test,
} from './lib/server.mjs';

test('RTN15h3 graceful shutdown: SIGTERM -> every client DISCONNECTED (never FAILED), exit 0 within 5 s', { timeout: 30_000 }, async (t) => {
  const server = await startServer({ label: 'shutdown' });
  let stopped = false;
  t.after(async () => {
    if (!stopped) await server.stop({ allowAlreadyExited: true }).catch(() => {});
  });
  const app = await createApp(server);
  const c = clients(t);
  const list = [];
  for (const binary of [true, false, true]) {
    const client = await connected(c, server, { key: app.keys[0].keyStr, binary, disconnectedRetryTimeout: 500 });
    const name = uniqueChannel('shutdown');
    const col = collector(client.channels.get(name));
    await withTimeout(col.subscribed, 5000, 'attach');
    const states = [];
    client.connection.on((sc) => states.push(sc));
    const chStates = [];
    client.channels.get(name).on((sc) => chStates.push(sc));
    list.push({ client, states, chStates });
  }
  const res = await server.stop(); // throws unless exit code 0 within 5 s and no sanitizer output
  stopped = true;
  assert.equal(res.code, 0);
  assert.ok(res.elapsedMs < 5000, `exit took ${res.elapsedMs} ms`);
  for (const [i, { client, states, chStates }] of list.entries()) {
    await withTimeout(
      new Promise((resolve) => {
        if (states.some((s) => s.current === 'disconnected')) return resolve();
        client.connection.on('disconnected', resolve);
      }),
      3000,
      `client ${i} DISCONNECTED (states: ${states.map((s) => s.current)})`,
    );
    await sleep(100);
    const seen = states.map((s) => s.current);
    assert.ok(!seen.includes('failed'), `client ${i} must not go FAILED: ${seen} reason ${JSON.stringify(states.find((s) => s.current === 'failed')?.reason)}`);
    assert.equal(seen[0], 'disconnected', `client ${i} first change after SIGTERM is DISCONNECTED: ${seen}`);
    assert.ok(!chStates.some((s) => s.current === 'failed'), `client ${i} channel not FAILED`);
  }
});

test('RTL10d durability: with --data, messages acked before SIGTERM are in history after restart', { timeout: 40_000 }, async (t) => {
  const tmp = makeTempDir();
  t.after(() => tmp.cleanup());
  let server = await startServer({ data: tmp.dir, label: 'durable-1' });
  let live = server;
  t.after(async () => {
    if (live) await live.stop({ allowAlreadyExited: true }).catch(() => {});
  });
  const app = await createApp(server);
  const keyStr = app.keys[0].keyStr;
  const plain = uniqueChannel('durable');
  const persisted = `durable:${uniqueChannel('durable')}`; // the fixture's persisted namespace
  const before = {};
  {
    const c = clients(t);
    const rt = await connected(c, server, { key: keyStr, binary: true });
    for (const name of [plain, persisted]) {
      const ch = rt.channels.get(name);
      for (let i = 0; i < 5; i++) await withTimeout(ch.publish('rt', `rt${i}`), 5000, 'realtime publish ACK');
      const rest = c.rest(server, { key: keyStr, binary: false });
      await rest.channels.get(name).publish([
        { name: 'rest', data: 'rest0' },
        { name: 'rest', data: { json: true } },
        { name: 'rest', data: Buffer.from([1, 2, 3]) },
      ]);
      before[name] = (await rest.channels.get(name).history({ direction: 'forwards' })).items;
      assert.equal(before[name].length, 8);
    }
    // Last-moment publish: ACKed, then SIGTERM right away.
    await withTimeout(rt.channels.get(plain).publish('last', 'final'), 5000, 'final ACK');
    await c.closeAll();
  }
  await server.stop();
  live = null;

  server = await startServer({ data: tmp.dir, label: 'durable-2' });
  live = server;
  const c2 = clients(t);
  for (const binary of [true, false]) {
    const rest = c2.rest(server, { key: keyStr, binary });
    for (const name of [plain, persisted]) {
      const after = (await withTimeout(rest.channels.get(name).history({ direction: 'forwards' }), 5000, 'history after restart')).items;
      const expected = before[name].map((m) => m.data);
      if (name === plain) expected.push('final');
      assert.deepEqual(
        after.map((m) => (Buffer.isBuffer(m.data) ? [...m.data] : m.data)),
        expected.map((d) => (Buffer.isBuffer(d) ? [...d] : d)),
        `${name}: history after restart (${binary ? 'msgpack' : 'json'})`,
      );
      assert.deepEqual(
        after.slice(0, 8).map((m) => [m.id, m.serial, m.timestamp, m.connectionId ?? null]),
        before[name].map((m) => [m.id, m.serial, m.timestamp, m.connectionId ?? null]),
        `${name}: ids/serials/timestamps preserved`,
      );
    }
  }
  // The restarted server keeps accepting publishes on the same channel,
  // with serials after the old ones.
  const rt2 = await connected(c2, server, { key: keyStr, binary: true });
  const res = await rt2.channels.get(plain).publish('post-restart', 'x');
  const hist = (await c2.rest(server, { key: keyStr }).channels.get(plain).history({ limit: 2 })).items;
  assert.equal(hist[0].data, 'x');
  assert.equal(hist[1].data, 'final');
  assert.ok(hist[1].serial < hist[0].serial, `serials keep increasing across a restart: ${hist[1].serial} !< ${hist[0].serial}`);
  if (res?.serials) assert.equal(res.serials[0], hist[0].serial);
  await c2.closeAll();
  await server.stop();
  live = null;
});

test('RTN7a durability: SIGTERM while publishes are in flight: every ACKed publish survives a restart, none duplicated', { timeout: 40_000 }, async (t) => {
  const tmp = makeTempDir();
  t.after(() => tmp.cleanup());
  let server = await startServer({ data: tmp.dir, label: 'inflight-1' });
  let live = server;
  t.after(async () => {
    if (live) await live.stop({ allowAlreadyExited: true }).catch(() => {});
  });
  const app = await createApp(server);
  const keyStr = app.keys[0].keyStr;
  const name = uniqueChannel('inflight');
  const N = 400;
  const acked = new Set();
  const c = clients(t);
  const pub = await connected(c, server, { key: keyStr, binary: true });
  const ch = pub.channels.get(name);
  let stopping = null;
  const pubs = [];
  for (let i = 0; i < N && !live?.exit; i++) {
    const p = ch.publish('seq', { i });
    p.then(() => {
      acked.add(i);
      if (acked.size === 100 && !stopping) stopping = server.stop();
    }).catch(() => {});
    pubs.push(p);
    if (i % 20 === 19) await sleep(2);
  }
  await withTimeout(
    new Promise((resolve) => {
      const iv = setInterval(() => {
        if (stopping) {
          clearInterval(iv);
          resolve();
        }
      }, 10);
    }),
    10_000,
    '100 ACKs before SIGTERM',
  );
  const res = await stopping; // exit 0 within 5 s, no sanitizer report
  live = null;
  assert.equal(res.code, 0);
  await c.closeAll(); // unacknowledged publishes now fail
  await withTimeout(Promise.allSettled(pubs), 5000, 'publishes to settle');
  assert.ok(acked.size >= 100 && acked.size <= pubs.length, `acked ${acked.size} of ${pubs.length}`);

  server = await startServer({ data: tmp.dir, label: 'inflight-2' });
  live = server;
  const rest = c.rest(server, { key: keyStr });
  const items = [];
  let page = await rest.channels.get(name).history({ direction: 'forwards', limit: 1000 });
  for (;;) {
    items.push(...page.items);
    if (!page.hasNext()) break;
    page = await page.next();
  }
  const seen = new Map();
  for (const m of items) seen.set(m.data.i, (seen.get(m.data.i) || 0) + 1);
  const missing = [...acked].filter((i) => !seen.has(i)).sort((a, b) => a - b);
  assert.deepEqual(missing, [], `ACKed publishes missing after restart: ${missing.slice(0, 20)}`);
  const dupes = [...seen].filter(([, n]) => n > 1);
  assert.deepEqual(dupes, [], 'no duplicates');
  const order = items.map((m) => m.data.i);
  assert.deepEqual(order, [...order].sort((a, b) => a - b), 'history in publish order');
  await server.stop();
  live = null;
});
