// Connection continuity with the real ably-js SDK: RTN15 resume after a
// dropped TCP connection (subscriber side and publisher side, RTN19a), RTL2f
// RESUMED flag, RTN16 recover from a recovery key.
import assert from 'node:assert/strict';
import {
  useServer,
  bothProtocols,
  clients,
  connected,
  collector,
  dropConnection,
  uniqueChannel,
  sleep,
  withTimeout,
  waitForConnectionState,
  waitUntil,
} from './lib/server.mjs';

const env = useServer({ label: 'resume' });
const key = () => env.app.keys[0].keyStr;

/** Records connection and channel state changes. */
function recorder(client, channel) {
  const conn = [];
  const chan = [];
  client.connection.on((sc) => conn.push(sc));
  if (channel) channel.on((sc) => chan.push(sc));
  return { conn, chan };
}

/** Publishes `n` messages paced in bursts, without awaiting each ACK. */
function pacedPublish(channel, n, onResolved) {
  const pubs = [];
  return (async () => {
    for (let i = 0; i < n; i++) {
      const p = channel.publish('seq', { i });
      p.then(() => onResolved?.(i)).catch(() => {});
      pubs.push(p);
      if (i % 10 === 9) await sleep(5);
    }
    return pubs;
  })();
}

bothProtocols('RTN15a/RTN15c6 subscriber socket dropped mid-stream: resumes same connection, every message exactly once in order', { timeout: 40_000 }, async (t, binary) => {
  const N = 200;
  const c = clients(t);
  const name = uniqueChannel('resume-sub');
  const [pub, sub] = await Promise.all([
    connected(c, env.server, { key: key(), binary }),
    connected(c, env.server, { key: key(), binary }),
  ]);
  const sch = sub.channels.get(name);
  const col = collector(sch);
  await withTimeout(col.subscribed, 5000, 'attach');
  const id0 = sub.connection.id;
  const rec = recorder(sub, sch);
  let dropped = null;
  sch.subscribe(() => {
    if (dropped === null && col.messages.length >= 40) dropped = dropConnection(sub);
  });
  const pubs = await pacedPublish(pub.channels.get(name), N);
  const results = await withTimeout(Promise.allSettled(pubs), 15_000, 'publisher ACKs');
  assert.equal(results.filter((r) => r.status === 'rejected').length, 0, 'publisher (not cut) gets all ACKs');
  assert.ok(dropped, 'the subscriber connection was dropped mid-stream');
  await waitForConnectionState(sub, 'connected', { timeoutMs: 8000 });
  await col.until(N, 10_000);
  await sleep(300);

  const states = rec.conn.map((s) => s.current);
  assert.ok(states.includes('disconnected'), `went through DISCONNECTED: ${states}`);
  const reconnect = rec.conn.filter((s) => s.current === 'connected').at(-1);
  assert.ok(reconnect, `reconnected: ${states}`);
  assert.equal(reconnect.reason ?? null, null, `RTN15c6 successful resume carries no error, got ${JSON.stringify(reconnect.reason)}`);
  assert.equal(sub.connection.id, id0, 'RTN15c6 connection.id unchanged after resume');
  const lost = rec.chan.filter((s) => s.current === 'attached' || s.event === 'update');
  assert.ok(lost.length > 0, 'channel re-attached after resume (RTL3d)');
  for (const s of lost) {
    assert.equal(s.resumed, true, `RTL2f channel re-attach after resume must carry RESUMED (got ${JSON.stringify({ event: s.event, current: s.current, resumed: s.resumed, reason: s.reason })})`);
  }

  const seq = col.messages.map((m) => m.data.i);
  assert.equal(seq.length, N, `exactly ${N} messages (got ${seq.length}; duplicates: ${seq.length - new Set(seq).size})`);
  for (let i = 0; i < N; i++) {
    if (seq[i] !== i) assert.fail(`out of order / gap at ${i}: got ${seq[i]} (around ${JSON.stringify(seq.slice(Math.max(0, i - 3), i + 4))})`);
  }
});

bothProtocols('RTN19a/RTN15 publisher socket dropped mid-stream: every resolved publish is in history exactly once', { timeout: 40_000 }, async (t, binary) => {
  const N = 200;
  const c = clients(t);
  const name = uniqueChannel('resume-pub');
  const pub = await connected(c, env.server, { key: key(), binary });
  const id0 = pub.connection.id;
  const rec = recorder(pub);
  let resolvedCount = 0;
  let dropped = null;
  const pubs = await pacedPublish(pub.channels.get(name), N, () => {
    resolvedCount += 1;
    if (resolvedCount === 50 && dropped === null) dropped = dropConnection(pub);
  });
  const results = await withTimeout(Promise.allSettled(pubs), 20_000, 'all publishes to settle');
  assert.ok(dropped, 'publisher connection was dropped mid-stream');
  const resolved = results.map((r, i) => (r.status === 'fulfilled' ? i : -1)).filter((i) => i >= 0);
  const rejected = results.filter((r) => r.status === 'rejected');

  const rest = c.rest(env.server, { key: key(), binary });
  const items = (await rest.channels.get(name).history({ direction: 'forwards', limit: 1000 })).items;
  const counts = new Map();
  for (const m of items) counts.set(m.data.i, (counts.get(m.data.i) || 0) + 1);
  for (const i of resolved) {
    assert.equal(counts.get(i) ?? 0, 1, `resolved publish ${i} appears ${counts.get(i) ?? 0} times in history`);
  }
  const dupes = [...counts.entries()].filter(([, n]) => n > 1);
  assert.deepEqual(dupes, [], 'no message duplicated in history (msgSerial-based dedup of resent messages)');
  assert.equal(rejected.length, 0, `after a successful resume no publish should fail; first: ${rejected[0]?.reason?.code} ${rejected[0]?.reason?.message}`);
  assert.deepEqual(items.map((m) => m.data.i), Array.from({ length: N }, (_, i) => i), 'history holds all publishes in publish order');
  assert.equal(pub.connection.id, id0, 'publisher resumed the same connection');
  assert.ok(rec.conn.some((s) => s.current === 'disconnected'), 'publisher went through DISCONNECTED');
});

bothProtocols('RTN16/RTN16d recover: a new client with recover: createRecoveryKey() gets the messages published meanwhile, with the same connection id and a new connectionKey', { timeout: 30_000 }, async (t, binary) => {
  const c = clients(t);
  const name = uniqueChannel('recover');
  const pub = await connected(c, env.server, { key: key(), binary });
  const a = await connected(c, env.server, { key: key(), binary, suspendedRetryTimeout: 60_000 });
  const ach = a.channels.get(name);
  const acol = collector(ach);
  await withTimeout(acol.subscribed, 5000, 'attach A');
  const pch = pub.channels.get(name);
  for (let i = 0; i < 3; i++) await pch.publish('m', `m${i}`);
  await acol.until(3);
  const idA = a.connection.id;
  const recoveryKey = a.connection.createRecoveryKey();
  assert.equal(typeof recoveryKey, 'string', 'RTN16g createRecoveryKey returns a string while connected');

  // Take A away without a CLOSE (it stays SUSPENDED, never reconnecting during the test).
  const cm = a.connection.connectionManager;
  a.connection.once('disconnected', () => cm.notifyState({ state: 'suspended' }));
  dropConnection(a);
  await waitForConnectionState(a, 'suspended', { timeoutMs: 5000, failOn: ['failed'] });

  for (let i = 3; i < 8; i++) await pch.publish('m', `m${i}`);

  const b = c.realtime(env.server, { key: key(), binary, recover: recoveryKey });
  const bconn = new Promise((resolve) => b.connection.once('connected', resolve));
  const bch = b.channels.get(name);
  const bchanStates = [];
  bch.on((sc) => bchanStates.push(sc));
  const bcol = collector(bch);
  const sc = await withTimeout(bconn, 8000, 'recovered client CONNECTED');
  await withTimeout(bcol.subscribed, 5000, 'attach B');
  assert.equal(sc.reason ?? null, null, `RTN16 successful recovery carries no error, got ${JSON.stringify(sc.reason)}`);
  assert.equal(b.connection.id, idA, 'RTN16d recovered connection keeps the connection id');
  assert.notEqual(b.connection.key, JSON.parse(recoveryKey).connectionKey, 'RTN16d the recovered connection has a new key');
  // The old key no longer resumes it: a recovery key is used once.
  const again = c.realtime(env.server, { key: key(), binary, recover: recoveryKey });
  const sc2 = await withTimeout(new Promise((resolve) => again.connection.once('connected', resolve)), 8000, 'second recover');
  assert.notEqual(again.connection.id, idA, 'a second recover with the same key gets a new connection');
  assert.equal(sc2.reason?.code, 80008);
  again.close();
  await bcol.until(5, 8000);
  await pch.publish('m', 'live');
  await bcol.until(6);
  await sleep(300);
  assert.deepEqual(
    bcol.messages.map((m) => m.data),
    ['m3', 'm4', 'm5', 'm6', 'm7', 'live'],
    'recovered client receives exactly the messages missed since the recovery key, then live ones',
  );
  const attached = bchanStates.find((s) => s.current === 'attached');
  assert.equal(attached?.resumed, true, 'RTL2f channel attached on recovery carries RESUMED');
});

bothProtocols('RTN16l/RTN15c7 recover with an unknown connection key: CONNECTED with a new id and an error reason', async (t, binary) => {
  const c = clients(t);
  const other = await connected(c, env.server, { key: key(), binary });
  const bogus = JSON.stringify({
    connectionKey: 'nonexistent-connection-key!deadbeef',
    msgSerial: 7,
    channelSerials: {},
  });
  const b = c.realtime(env.server, { key: key(), binary, recover: bogus });
  const sc = await withTimeout(
    new Promise((resolve, reject) => {
      b.connection.on((s) => {
        if (s.current === 'connected') resolve(s);
        if (s.current === 'failed') reject(new Error(`recover with bad key must not FAIL the connection: ${JSON.stringify(s.reason)}`));
      });
    }),
    8000,
    'CONNECTED after failed recover',
  );
  assert.ok(sc.reason, 'RTN15c7 failed recovery reports the error in the CONNECTED state change');
  assert.ok(sc.reason.code >= 80000 && sc.reason.code < 81000, `error code is a connection error (80xxx), got ${sc.reason.code}`);
  assert.equal(typeof b.connection.id, 'string');
  assert.notEqual(b.connection.id, other.connection.id);
  // The fresh connection works.
  const name = uniqueChannel('after-bad-recover');
  const col = collector(b.channels.get(name));
  await withTimeout(col.subscribed, 5000, 'attach');
  await other.channels.get(name).publish('x', 'y');
  await col.until(1);
  await waitUntil(() => b.connection.state === 'connected', 1000, 'still connected');
});

bothProtocols('RTN16l/RTN15c7 recover with a key not in the connectionKey format gets 80018 (invalid connection key), a well-formed unknown one 80008; msgSerial restarts at 0 (ably-js unrecoverableConnection)', async (t, binary) => {
  const c = clients(t);
  const cases = [
    ['_____!ablyjs_test_fake-key____', 80018],
    ['not-a-key', 80018],
    ['AAAAAAAAAAAA!BBBBBBBBBBBBBBBB', 80008],
  ];
  for (const [connectionKey, code] of cases) {
    const b = c.realtime(env.server, { key: key(), binary, recover: JSON.stringify({ connectionKey, msgSerial: 3, channelSerials: {} }) });
    const sc = await withTimeout(new Promise((resolve) => b.connection.once('connected', resolve)), 8000, `${connectionKey}: CONNECTED`);
    assert.equal(sc.reason?.code, code, `${connectionKey}: ${JSON.stringify(sc.reason)}`);
    assert.equal(b.connection.errorReason?.code, code);
    assert.equal(b.connection.connectionManager.msgSerial, 0, 'a new connection: msgSerial 0');
    assert.equal(b.connection.key.includes('ablyjs_test_fake'), false, 'a new connectionKey');
    b.close();
  }
});

bothProtocols('RTN15h3 slow consumer: a subscriber that stops reading is DISCONNECTED (42916), then resumes and catches up exactly once in order', { timeout: 60_000 }, async (t, binary) => {
  const N = 250; // 250 x 60 KB = 15 MB: beyond the 4 MiB outbound bound plus ~4 MB of kernel socket buffers
  const SIZE = 60_000;
  const c = clients(t);
  const name = uniqueChannel('slow');
  const [pub, sub] = await Promise.all([
    connected(c, env.server, { key: key(), binary, echoMessages: false }),
    connected(c, env.server, { key: key(), binary }),
  ]);
  const sch = sub.channels.get(name);
  const col = collector(sch);
  await withTimeout(col.subscribed, 5000, 'attach');
  const id0 = sub.connection.id;
  const rec = recorder(sub, sch);
  const ws = sub.connection.connectionManager.activeProtocol.getTransport().wsConnection;
  assert.equal(typeof ws?.pause, 'function', 'ably-js node transport exposes the ws socket');
  ws.pause(); // stop reading: the server's outbound queue for this socket grows

  const pad = 'x'.repeat(SIZE);
  const pch = pub.channels.get(name);
  const pubs = [];
  for (let i = 0; i < N; i++) {
    pubs.push(pch.publish('big', { i, pad }));
    if (i % 50 === 49) await sleep(1);
  }
  const results = await withTimeout(Promise.allSettled(pubs), 30_000, 'publisher ACKs');
  const rejected = results.filter((r) => r.status === 'rejected');
  assert.equal(rejected.length, 0, `publisher is unaffected by the slow subscriber; first rejection: ${rejected[0]?.reason?.message}`);
  await sleep(200);
  ws.resume();

  await col.until(N, 30_000);
  await sleep(300);
  const disc = rec.conn.find((s) => s.current === 'disconnected');
  assert.ok(disc, `slow consumer must be DISCONNECTED by the server (states: ${rec.conn.map((s) => s.current)})`);
  assert.equal(disc.reason?.code, 42916, `DISCONNECTED reason: ${JSON.stringify(disc.reason)}`);
  assert.ok(!rec.conn.some((s) => s.current === 'failed'), 'never FAILED');
  assert.equal(sub.connection.id, id0, 'slow consumer resumes the same connection');
  const seq = col.messages.map((m) => m.data.i);
  assert.equal(seq.length, N, `exactly ${N} messages (duplicates: ${seq.length - new Set(seq).size})`);
  for (let i = 0; i < N; i++) {
    if (seq[i] !== i) assert.fail(`out of order / gap at ${i}: got ${seq[i]}`);
  }
  assert.ok(col.messages.every((m) => m.data.pad.length === SIZE), 'payloads intact');
});
