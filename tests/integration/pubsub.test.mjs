// Realtime publish/subscribe with the real ably-js SDK:
// RTL4/RTL5 attach/detach, RTL6/RTL7 publish/subscribe, TM2 message fields,
// RSL4/RSL6 encoding round-trips across msgpack and JSON, RTN7/RSL1n ACK
// serials, ordering under load, RTC1a echoMessages, RSL1k idempotency.
import assert from 'node:assert/strict';
import {
  useServer,
  bothProtocols,
  clients,
  connected,
  collector,
  uniqueChannel,
  sleep,
  withTimeout,
  test,
} from './lib/server.mjs';

const env = useServer({ label: 'pubsub' });
const key = () => env.app.keys[0].keyStr;

const PAYLOADS = [
  { name: 'str', data: 'hello \u2713 unicode \u{1F600}' },
  { name: 'obj', data: { a: 1, nested: { b: [1, 2, 'x'] }, t: true, n: null, f: 1.5 } },
  { name: 'arr', data: [1, 'two', { three: 3 }] },
  { name: 'bin', data: Buffer.from([0, 1, 2, 127, 128, 254, 255]) },
  { name: 'extras', data: 'with extras', extras: { headers: { a: 'b' } } },
  { data: 'no name' },
  { name: 'empty-bin', data: Buffer.alloc(0) },
];

function assertPayload(got, want, label) {
  assert.equal(got.name ?? null, want.name ?? null, `${label}: name`);
  if (Buffer.isBuffer(want.data)) {
    assert.ok(Buffer.isBuffer(got.data), `${label}: binary data must arrive as a Buffer, got ${typeof got.data} ${JSON.stringify(got.data)}`);
    assert.deepEqual(Buffer.from(got.data), want.data, `${label}: binary bytes`);
  } else {
    assert.deepEqual(got.data, want.data, `${label}: data`);
  }
  assert.equal(got.encoding ?? null, null, `${label}: encoding must be fully consumed, got ${got.encoding}`);
  if (want.extras) assert.deepEqual(got.extras, want.extras, `${label}: extras unchanged`);
  else assert.equal(got.extras ?? null, null, `${label}: no extras`);
}

function assertServerFields(msg, publisher, label, { clientId } = {}) {
  assert.equal(typeof msg.id, 'string', `${label}: id`);
  assert.ok(msg.id.length > 0, `${label}: id non-empty`);
  assert.equal(msg.connectionId, publisher.connection.id, `${label}: connectionId is the publisher's`);
  if (clientId) assert.equal(msg.clientId, clientId, `${label}: clientId`);
  else assert.equal(msg.clientId ?? null, null, `${label}: no clientId`);
  assert.equal(typeof msg.timestamp, 'number', `${label}: timestamp is a number`);
  assert.ok(Math.abs(msg.timestamp - Date.now()) < 10_000, `${label}: timestamp ${msg.timestamp} near now`);
  assert.equal(typeof msg.serial, 'string', `${label}: serial is a string (got ${msg.serial})`);
  assert.ok(msg.serial.length > 0, `${label}: serial non-empty`);
}

async function roundTrip(t, pubBinary, subBinary) {
  const c = clients(t);
  const name = uniqueChannel('rtl6');
  const [pub, sub] = await Promise.all([
    connected(c, env.server, { key: key(), binary: pubBinary, clientId: 'alice' }),
    connected(c, env.server, { key: key(), binary: subBinary }),
  ]);
  const subCh = sub.channels.get(name);
  const col = collector(subCh);
  await withTimeout(col.subscribed, 5000, 'attach');
  assert.equal(subCh.state, 'attached');
  const pubCh = pub.channels.get(name);
  for (const p of PAYLOADS) {
    await withTimeout(pubCh.publish(p), 5000, `publish ${p.name}`);
  }
  const got = await col.until(PAYLOADS.length);
  await sleep(200);
  assert.equal(col.messages.length, PAYLOADS.length, 'no extra messages');
  PAYLOADS.forEach((want, i) => {
    const label = `message ${i} (${want.name ?? 'unnamed'})`;
    assertPayload(got[i], want, label);
    assertServerFields(got[i], pub, label, { clientId: 'alice' });
  });
  const ids = new Set(got.map((m) => m.id));
  assert.equal(ids.size, got.length, 'message ids are unique');
}

bothProtocols('RTL6/RTL7/TM2 publish string, JSON, binary, extras; subscriber gets exact types and server fields', async (t, binary) => {
  await roundTrip(t, binary, binary);
});

test('RSL4/RSL6 cross-format: JSON publisher -> msgpack subscriber (binary stays binary)', { timeout: 30_000 }, async (t) => {
  await roundTrip(t, false, true);
});

test('RSL4/RSL6 cross-format: msgpack publisher -> JSON subscriber (binary stays binary)', { timeout: 30_000 }, async (t) => {
  await roundTrip(t, true, false);
});

bothProtocols('RTL6 publish without clientId: received message has no clientId', async (t, binary) => {
  const c = clients(t);
  const name = uniqueChannel('noclient');
  const [pub, sub] = await Promise.all([
    connected(c, env.server, { key: key(), binary }),
    connected(c, env.server, { key: key(), binary }),
  ]);
  const col = collector(sub.channels.get(name));
  await withTimeout(col.subscribed, 5000, 'attach');
  await pub.channels.get(name).publish('n', 'd');
  const [m] = await col.until(1);
  assertServerFields(m, pub, 'anonymous', {});
});

bothProtocols('RTN7/RTL6j publish resolves with ACK serials: non-empty, strictly increasing, equal to delivered serials', async (t, binary) => {
  const c = clients(t);
  const name = uniqueChannel('ack');
  const [pub, sub] = await Promise.all([
    connected(c, env.server, { key: key(), binary }),
    connected(c, env.server, { key: key(), binary }),
  ]);
  const col = collector(sub.channels.get(name));
  await withTimeout(col.subscribed, 5000, 'attach');
  const ch = pub.channels.get(name);
  const serials = [];
  for (let i = 0; i < 5; i++) {
    const res = await withTimeout(ch.publish('seq', `m${i}`), 5000, `publish ${i}`);
    assert.ok(res && Array.isArray(res.serials), `publish must resolve to {serials:[...]} (ACK res), got ${JSON.stringify(res)}`);
    assert.equal(res.serials.length, 1, 'one serial per message');
    assert.equal(typeof res.serials[0], 'string');
    assert.ok(res.serials[0].length > 0);
    serials.push(res.serials[0]);
  }
  const batch = await withTimeout(
    ch.publish([
      { name: 'seq', data: 'b0' },
      { name: 'seq', data: 'b1' },
      { name: 'seq', data: 'b2' },
    ]),
    5000,
    'batch publish',
  );
  assert.ok(batch && Array.isArray(batch.serials), `batch publish resolves to {serials}, got ${JSON.stringify(batch)}`);
  assert.equal(batch.serials.length, 3, 'one serial per message in the batch (1:1)');
  serials.push(...batch.serials);
  for (let i = 1; i < serials.length; i++) {
    assert.ok(serials[i - 1] < serials[i], `serials strictly increasing (lexicographic): ${serials[i - 1]} !< ${serials[i]}`);
  }
  const got = await col.until(8);
  assert.deepEqual(
    got.map((m) => m.serial),
    serials,
    'serial delivered to subscribers equals the serial in the ACK',
  );
  assert.deepEqual(
    got.map((m) => m.data),
    ['m0', 'm1', 'm2', 'm3', 'm4', 'b0', 'b1', 'b2'],
  );
});

bothProtocols('RTL6/RTL7 ordering under load: 500 unawaited publishes arrive once each, in order', { timeout: 40_000 }, async (t, binary) => {
  const N = 500;
  const c = clients(t);
  const name = uniqueChannel('load');
  const [pub, sub] = await Promise.all([
    connected(c, env.server, { key: key(), binary }),
    connected(c, env.server, { key: key(), binary }),
  ]);
  const col = collector(sub.channels.get(name));
  await withTimeout(col.subscribed, 5000, 'attach');
  const ch = pub.channels.get(name);
  const pubs = [];
  for (let i = 0; i < N; i++) pubs.push(ch.publish('load', { i }));
  const results = await withTimeout(Promise.allSettled(pubs), 15_000, `${N} ACKs`);
  const rejected = results.filter((r) => r.status === 'rejected');
  assert.equal(rejected.length, 0, `all publishes ACKed; first rejection: ${rejected[0]?.reason?.message}`);
  await col.until(N, 15_000);
  await sleep(300);
  assert.equal(col.messages.length, N, 'no duplicates / extras');
  const seq = col.messages.map((m) => m.data.i);
  for (let i = 0; i < N; i++) {
    if (seq[i] !== i) assert.fail(`out of order at position ${i}: got ${seq[i]} (neighbourhood ${JSON.stringify(seq.slice(Math.max(0, i - 3), i + 4))})`);
  }
  const serials = col.messages.map((m) => m.serial);
  for (let i = 1; i < N; i++) {
    assert.ok(serials[i - 1] < serials[i], `delivered serials increase: ${serials[i - 1]} !< ${serials[i]} at ${i}`);
  }
});

bothProtocols('RTC1a/RTN2b echoMessages:false: own messages not echoed, others still delivered', async (t, binary) => {
  const c = clients(t);
  const name = uniqueChannel('echo');
  const [quiet, other] = await Promise.all([
    connected(c, env.server, { key: key(), binary, echoMessages: false }),
    connected(c, env.server, { key: key(), binary }),
  ]);
  const quietCol = collector(quiet.channels.get(name));
  const otherCol = collector(other.channels.get(name));
  await withTimeout(Promise.all([quietCol.subscribed, otherCol.subscribed]), 5000, 'attach');
  for (let i = 0; i < 3; i++) await quiet.channels.get(name).publish('from-quiet', `q${i}`);
  await otherCol.until(3);
  await other.channels.get(name).publish('from-other', 'x');
  await quietCol.until(1);
  await otherCol.until(4); // default echo: other sees its own message
  await sleep(300);
  assert.deepEqual(
    quietCol.messages.map((m) => m.name),
    ['from-other'],
    'echoMessages:false client receives only messages from other connections',
  );
  assert.deepEqual(
    otherCol.messages.map((m) => m.name),
    ['from-quiet', 'from-quiet', 'from-quiet', 'from-other'],
  );
});

bothProtocols('RTL5 detach stops delivery; re-attach resumes it', async (t, binary) => {
  const c = clients(t);
  const name = uniqueChannel('detach');
  const [pub, sub] = await Promise.all([
    connected(c, env.server, { key: key(), binary }),
    connected(c, env.server, { key: key(), binary }),
  ]);
  const ch = sub.channels.get(name);
  const col = collector(ch);
  await withTimeout(col.subscribed, 5000, 'attach');
  await pub.channels.get(name).publish('one', '1');
  await col.until(1);
  await withTimeout(ch.detach(), 5000, 'detach');
  assert.equal(ch.state, 'detached');
  await pub.channels.get(name).publish('while-detached', '2');
  await sleep(400);
  assert.deepEqual(col.messages.map((m) => m.name), ['one'], 'nothing delivered while detached');
  await withTimeout(ch.attach(), 5000, 're-attach');
  await pub.channels.get(name).publish('three', '3');
  await col.until(2);
  await sleep(200);
  assert.deepEqual(col.messages.map((m) => m.name), ['one', 'three']);
});

bothProtocols('RSL1k (realtime) publishing the same explicit message id twice delivers it once', async (t, binary) => {
  const c = clients(t);
  const name = uniqueChannel('idem-rt');
  const [pub, sub] = await Promise.all([
    connected(c, env.server, { key: key(), binary }),
    connected(c, env.server, { key: key(), binary }),
  ]);
  const col = collector(sub.channels.get(name));
  await withTimeout(col.subscribed, 5000, 'attach');
  const ch = pub.channels.get(name);
  const id = `idem-${name}:0`;
  await withTimeout(ch.publish({ id, name: 'idem', data: 'once' }), 5000, 'first publish');
  await withTimeout(ch.publish({ id, name: 'idem', data: 'once' }), 5000, 'duplicate publish must still be ACKed');
  await ch.publish('sentinel', 'end');
  await col.until(2);
  await sleep(300);
  assert.deepEqual(
    col.messages.map((m) => m.name),
    ['idem', 'sentinel'],
    'duplicate id delivered exactly once',
  );
  assert.equal(col.messages[0].id, id, 'explicit id preserved');
  const page = await sub.channels.get(name).history({ direction: 'forwards' });
  assert.deepEqual(page.items.map((m) => m.name), ['idem', 'sentinel'], 'history holds the id once');
});
