// Delta compression (channel param delta=vcdiff) with the real ably-js SDK
// and Ably's own decoder plugin (@ably/vcdiff-decoder), against our encoder
// (src/proto/vcdiff.c) and delivery (src/core/delta.c):
//  - RTL4k1 ATTACHED echoes the delta param;
//  - RTL19/RTL20 each message after the first reaches a delta subscriber as
//    a vcdiff delta from its predecessor (extras.delta {from, format}),
//    smaller than the message, and decodes to exactly what was published:
//    strings, binary, JSON objects, a batch of several in one
//    ProtocolMessage; a subscriber without the param gets them whole;
//  - PC3 a client without the plugin fails the channel with 40019;
//  - RTL18 a client that loses its base re-attaches (40018) from its last
//    channelSerial; the server resends from there whole, then deltas resume;
//  - a rewind is replayed whole, deltas follow;
//  - a message update (RTL32) or a [meta]occupancy event in between: the
//    next message goes whole (the subscriber's base is that), no decode
//    failure;
//  - the [?delta=vcdiff] name qualifier.
import { createRequire } from 'node:module';
import {
  assert,
  bothProtocols,
  clients,
  collector,
  connected,
  createApp,
  uniqueChannel,
  test,
  useServer,
  waitForChannelState,
  waitUntil,
  withTimeout,
} from './lib/server.mjs';

const require = createRequire(import.meta.url);
const vcdiffDecoder = require('@ably/vcdiff-decoder');

const env = useServer({ label: 'delta' });
const key = () => env.app.keys[0].keyStr;
let mutKey;
/** A key of an app whose `mut` namespace has mutableMessages (created once). */
async function mutableKey() {
  mutKey ??= createApp(env.server, { keys: [{}], namespaces: [{ id: 'mut', mutableMessages: true }] }).then(
    (app) => app.keys[0].keyStr,
  );
  return mutKey;
}

/** Ably's decoder, counting its calls and the sizes it saw. */
function countingDecoder() {
  return {
    calls: [],
    decode(delta, base) {
      const out = vcdiffDecoder.decode(delta, base);
      this.calls.push({ delta: delta.length, target: out.length });
      return out;
    },
  };
}

/** Data that changes a little from one message to the next: n strings,
 * then n binary, then n JSON objects (a delta is only sent when it is
 * smaller than the message, so not from one kind to the next). */
function payloads(n) {
  const out = [];
  const bin = Buffer.alloc(600);
  for (let i = 0; i < bin.length; i++) bin[i] = (i * 31 + 7) & 0xff;
  for (let i = 0; i < n; i++) out.push(`status line ${'x'.repeat(200)} count=${i} ${'y'.repeat(200)} end`);
  for (let i = 0; i < n; i++) {
    const b = Buffer.from(bin);
    b[(i * 37) % b.length] ^= 0xff;
    out.push(b);
  }
  for (let i = 0; i < n; i++) out.push(json(i));
  return out;
}

function json(i) {
  return { foo: 'bar', count: i, status: i % 2 ? 'active' : 'inactive', list: Array.from({ length: 40 }, (_, k) => k) };
}

function sameData(got, want) {
  if (Buffer.isBuffer(want)) return Buffer.isBuffer(got) && Buffer.compare(got, want) === 0;
  return JSON.stringify(got) === JSON.stringify(want);
}

bothProtocols('RTL19/RTL20/RTL4k1 delta=vcdiff: ATTACHED echoes the param; every message after the first arrives as a vcdiff delta from its predecessor (extras.delta.from), smaller than the message, and decodes to the published string, binary and JSON data; a subscriber without the param gets them whole', { timeout: 60_000 }, async (t, binary) => {
  const set = clients(t);
  const name = uniqueChannel('delta');
  const dec = countingDecoder();
  const sub = await connected(set, env.server, { key: key(), binary, plugins: { vcdiff: dec } });
  const plainDec = countingDecoder();
  const plain = await connected(set, env.server, { key: key(), binary, plugins: { vcdiff: plainDec } });
  const pub = await connected(set, env.server, { key: key(), binary: !binary });

  const ch = sub.channels.get(name, { params: { delta: 'vcdiff' } });
  await withTimeout(ch.attach(), 8000, 'attach with delta');
  assert.deepEqual(ch.params, { delta: 'vcdiff' }, 'RTL4k1 ATTACHED echoes the delta param');
  let reattached = null;
  ch.on('attaching', (sc) => (reattached = sc.reason));
  const got = collector(ch);
  const plainCh = plain.channels.get(name);
  await withTimeout(plainCh.attach(), 8000, 'plain attach');
  const plainGot = collector(plainCh);

  const data = payloads(10);
  const pch = pub.channels.get(name);
  for (let i = 0; i < data.length; i++) await withTimeout(pch.publish(String(i), data[i]), 8000, `publish ${i}`);
  // A batch: several messages in one ProtocolMessage, each a delta from the one before.
  const batch = Array.from({ length: 6 }, (_, k) => ({ name: String(data.length + k), data: json(100 + k) }));
  await withTimeout(pch.publish(batch), 8000, 'batch publish');
  const total = data.length + batch.length;
  const all = [...data, ...batch.map((m) => m.data)];

  const msgs = await got.until(total, 20_000);
  const plainMsgs = await plainGot.until(total, 20_000);
  assert.equal(reattached, null, 'no decode failure, no re-attach');
  for (let i = 0; i < total; i++) {
    assert.equal(msgs[i].name, String(i), 'in order');
    assert.ok(sameData(msgs[i].data, all[i]), `message ${i} decodes to what was published`);
    assert.ok(sameData(plainMsgs[i].data, all[i]), `message ${i} reaches the plain subscriber whole`);
  }
  // Every message after the first is a delta from the one before it, but
  // for the first binary and the first JSON one (a delta from another kind
  // would not be smaller).
  let deltas = 0;
  for (let i = 1; i < total; i++) {
    const d = msgs[i].extras?.delta;
    if (i === 10 || i === 20) continue;
    assert.ok(d, `message ${i} came as a delta`);
    assert.equal(d.format, 'vcdiff');
    assert.equal(d.from, msgs[i - 1].id, 'RTL20 from: the previous message');
    deltas++;
  }
  assert.equal(msgs[0].extras?.delta, undefined, 'the first message after attaching is whole');
  assert.equal(dec.calls.length, deltas, 'the plugin decoded every delta');
  for (const c of dec.calls) assert.ok(c.delta < c.target, `a delta is smaller than its message (${c.delta} < ${c.target})`);
  assert.equal(plainDec.calls.length, 0, 'no deltas without the param');
  assert.ok(plainMsgs.every((m) => !m.extras?.delta), 'no extras.delta without the param');
});

bothProtocols('PC3 delta=vcdiff without the vcdiff plugin: the first delta fails the channel with 40019 (ably-js noPlugin)', async (t, binary) => {
  const set = clients(t);
  const name = uniqueChannel('delta-noplugin');
  const sub = await connected(set, env.server, { key: key(), binary });
  const ch = sub.channels.get(name, { params: { delta: 'vcdiff' } });
  await withTimeout(ch.attach(), 8000, 'attach');
  const failed = waitForChannelState(ch, 'failed', { timeoutMs: 15_000 });
  const pub = await connected(set, env.server, { key: key(), binary });
  const pch = pub.channels.get(name);
  const data = Array.from({ length: 3 }, (_, i) => `${'a'.repeat(100)} ${i} ${'b'.repeat(100)}`);
  for (let i = 0; i < data.length; i++) await withTimeout(pch.publish(String(i), data[i]), 8000, `publish ${i}`);
  const sc = await failed;
  assert.equal(sc.reason?.code, 40019, 'missing vcdiff decoder');
});

bothProtocols('RTL18 a subscriber that lost its base re-attaches with 40018 from its last channelSerial; the server resends from there whole, then deltas resume (ably-js lastMessageNotFoundRecovery)', { timeout: 60_000 }, async (t, binary) => {
  const set = clients(t);
  const name = uniqueChannel('delta-recover');
  const dec = countingDecoder();
  const sub = await connected(set, env.server, { key: key(), binary, plugins: { vcdiff: dec } });
  const ch = sub.channels.get(name, { params: { delta: 'vcdiff' } });
  await withTimeout(ch.attach(), 8000, 'attach');
  const reasons = [];
  ch.on('attaching', (sc) => reasons.push(sc.reason?.code));
  const msgs = [];
  const data = Array.from({ length: 8 }, (_, i) => ({ foo: 'bar', count: i, status: i % 2 ? 'active' : 'inactive' }));
  let resolveAll;
  const all = new Promise((r) => (resolveAll = r));
  ch.subscribe((m) => {
    msgs.push(m);
    // Simulate the loss of the base (what ably-js's test does).
    if (m.name === '1') ch._lastPayload.messageId = null;
    if (m.name === String(data.length - 1)) resolveAll();
  });
  const pch = sub.channels.get(name, { params: { delta: 'vcdiff' } });
  for (let i = 0; i < data.length; i++) await withTimeout(pch.publish(String(i), data[i]), 8000, `publish ${i}`);
  await withTimeout(all, 20_000, 'every message');
  assert.deepEqual(reasons, [40018], 'one re-attach, for the lost base');
  const names = msgs.map((m) => m.name);
  assert.deepEqual(names, data.map((_, i) => String(i)), 'every message once, in order: message 2 resent');
  for (const m of msgs) assert.ok(sameData(m.data, data[Number(m.name)]), `message ${m.name} decodes`);
  assert.equal(msgs[2].extras?.delta, undefined, 'the resent message is whole');
  assert.ok(dec.calls.length >= 2, `deltas resume after the re-attach (${dec.calls.length} decoded)`);
  assert.ok(msgs[data.length - 1].extras?.delta, 'the last message is a delta again');
});

bothProtocols('RTL19 a rewind with delta=vcdiff is replayed whole, and live messages after it are deltas', async (t, binary) => {
  const set = clients(t);
  const name = uniqueChannel('delta-rewind');
  const pub = await connected(set, env.server, { key: key(), binary });
  const pch = pub.channels.get(name);
  const data = Array.from({ length: 4 }, (_, i) => `message number ${i} ${'z'.repeat(100)}`);
  for (let i = 0; i < 3; i++) await withTimeout(pch.publish(String(i), data[i]), 8000, `publish ${i}`);
  const dec = countingDecoder();
  const sub = await connected(set, env.server, { key: key(), binary, plugins: { vcdiff: dec } });
  const ch = sub.channels.get(name, { params: { delta: 'vcdiff', rewind: '3' } });
  const got = collector(ch);
  await withTimeout(ch.attach(), 8000, 'attach');
  await got.until(3, 8000);
  await withTimeout(pch.publish('3', data[3]), 8000, 'publish 3');
  const msgs = await got.until(4, 8000);
  assert.deepEqual(msgs.map((m) => m.data), data);
  assert.ok(msgs.slice(0, 3).every((m) => !m.extras?.delta), 'the rewind is whole');
  assert.equal(msgs[3].extras?.delta?.from, msgs[2].id, 'the live message is a delta from the last replayed one');
  assert.equal(dec.calls.length, 1);
});

bothProtocols('RTL19/RTL32 an update between two messages reaches a delta subscriber whole, and the next message is whole too (its base is the update): no decode failure, deltas resume after', async (t, binary) => {
  const set = clients(t);
  const name = `mut:${uniqueChannel('delta-mut')}`;
  const k = await mutableKey();
  const dec = countingDecoder();
  const sub = await connected(set, env.server, { key: k, binary, plugins: { vcdiff: dec } });
  const ch = sub.channels.get(name, { params: { delta: 'vcdiff' } });
  await withTimeout(ch.attach(), 8000, 'attach');
  const reasons = [];
  ch.on('attaching', (sc) => reasons.push(sc.reason?.code));
  const got = collector(ch);
  const pub = await connected(set, env.server, { key: k, binary });
  const pch = pub.channels.get(name);
  const text = (i) => `${'q'.repeat(150)} step ${i} ${'r'.repeat(150)}`;
  await withTimeout(pch.publish('0', text(0)), 8000, 'publish 0');
  await withTimeout(pch.publish('1', text(1)), 8000, 'publish 1');
  const [m0] = await got.until(2, 8000);
  await withTimeout(pch.updateMessage({ serial: m0.serial, data: text(99), name: '0' }), 8000, 'update');
  await got.until(3, 8000);
  await withTimeout(pch.publish('2', text(2)), 8000, 'publish 2');
  await withTimeout(pch.publish('3', text(3)), 8000, 'publish 3');
  const msgs = await got.until(5, 8000);
  assert.deepEqual(reasons, [], 'no re-attach');
  assert.deepEqual(msgs.map((m) => m.data), [text(0), text(1), text(99), text(2), text(3)]);
  assert.equal(msgs[1].extras?.delta?.from, msgs[0].id, 'a delta before the update');
  assert.equal(msgs[3].extras?.delta, undefined, 'whole after the update');
  assert.equal(msgs[4].extras?.delta?.from, msgs[3].id, 'deltas resume');
  assert.equal(dec.calls.length, 2);
});

bothProtocols('RTL19 the [?delta=vcdiff] name qualifier asks for deltas too: messages arrive as deltas under the qualified name and decode', async (t, binary) => {
  const set = clients(t);
  const name = uniqueChannel('delta-qualifier');
  const dec = countingDecoder();
  const sub = await connected(set, env.server, { key: key(), binary, plugins: { vcdiff: dec } });
  const ch = sub.channels.get(`[?delta=vcdiff]${name}`);
  await withTimeout(ch.attach(), 8000, 'attach');
  const got = collector(ch);
  const pub = await connected(set, env.server, { key: key(), binary });
  const pch = pub.channels.get(name);
  const data = Array.from({ length: 4 }, (_, i) => ({ text: `${'w'.repeat(120)} ${i}`, n: i }));
  for (let i = 0; i < data.length; i++) await withTimeout(pch.publish(String(i), data[i]), 8000, `publish ${i}`);
  const msgs = await got.until(data.length, 8000);
  assert.deepEqual(msgs.map((m) => m.data), data);
  for (let i = 1; i < data.length; i++) assert.equal(msgs[i].extras?.delta?.from, msgs[i - 1].id, `message ${i} is a delta`);
  assert.equal(dec.calls.length, data.length - 1);
});

test('RTL19/RTL20 a [meta]occupancy event between two messages (params delta and occupancy): the next message is whole, no decode failure, deltas resume', { timeout: 30_000 }, async (t) => {
  const set = clients(t);
  const name = uniqueChannel('delta-occ');
  const dec = countingDecoder();
  const sub = await connected(set, env.server, { key: key(), plugins: { vcdiff: dec } });
  const ch = sub.channels.get(name, { params: { delta: 'vcdiff', occupancy: 'metrics' } });
  const all = [];
  await withTimeout(ch.subscribe((m) => all.push(m)), 8000, 'attach');
  const reasons = [];
  ch.on('attaching', (sc) => reasons.push(sc.reason?.code));
  const occ = () => all.filter((m) => m.name === '[meta]occupancy').length;
  await waitUntil(() => occ() >= 1, 8000, 'the first occupancy event');
  const pub = await connected(set, env.server, { key: key() });
  const pch = pub.channels.get(name);
  const text = (i) => `${'o'.repeat(150)} step ${i} ${'p'.repeat(150)}`;
  await withTimeout(pch.attach(), 8000, 'publisher attach'); // changes the occupancy: one more event
  await waitUntil(() => occ() >= 2, 8000, 'the occupancy event of the publisher');
  await withTimeout(pch.publish('0', text(0)), 8000, 'publish 0');
  await withTimeout(pch.publish('1', text(1)), 8000, 'publish 1');
  await waitUntil(() => all.filter((m) => m.name !== '[meta]occupancy').length >= 2, 8000, 'messages 0, 1');
  const before = occ();
  await withTimeout(pch.detach(), 8000, 'publisher detach'); // another occupancy event
  await waitUntil(() => occ() > before, 8000, 'the occupancy event of the detach');
  await withTimeout(pch.publish('2', text(2)), 8000, 'publish 2');
  await withTimeout(pch.publish('3', text(3)), 8000, 'publish 3');
  await waitUntil(() => all.filter((m) => m.name !== '[meta]occupancy').length >= 4, 8000, 'messages 2, 3');
  const msgs = all.filter((m) => m.name !== '[meta]occupancy');
  assert.deepEqual(reasons, [], 'no re-attach');
  assert.deepEqual(msgs.map((m) => m.data), [text(0), text(1), text(2), text(3)]);
  assert.equal(msgs[1].extras?.delta?.from, msgs[0].id, 'a delta');
  const i2 = all.indexOf(msgs[2]);
  assert.equal(all[i2 - 1].name, '[meta]occupancy', 'an occupancy event came between messages 1 and 2');
  assert.equal(msgs[2].extras?.delta, undefined, 'whole after an occupancy event');
  assert.equal(msgs[3].extras?.delta?.from, msgs[2].id, 'deltas resume');
});

bothProtocols('RTL19 extras.delta is the server\'s: a publisher\'s forged {from, format: "vcdiff"} (realtime and REST) is dropped, so subscribers, with or without the delta param, get the message whole and stay attached', async (t, binary) => {
  const set = clients(t);
  const name = uniqueChannel('delta-forged');
  const plain = await connected(set, env.server, { key: key(), binary });
  const colPlain = collector(plain.channels.get(name));
  const deltaSub = await connected(set, env.server, { key: key(), binary, plugins: { vcdiff: vcdiffDecoder } });
  const colDelta = collector(deltaSub.channels.get(name, { params: { delta: 'vcdiff' } }));
  await withTimeout(Promise.all([colPlain.subscribed, colDelta.subscribed]), 8000, 'attach');
  const forged = { delta: { from: 'bogus:0', format: 'vcdiff' }, headers: { keep: 'me' } };
  const pub = await connected(set, env.server, { key: key(), binary });
  await withTimeout(pub.channels.get(name).publish({ name: 'rt', data: 'realtime data', extras: forged }), 8000, 'publish');
  const rest = set.rest(env.server, { key: key(), binary });
  await withTimeout(rest.channels.get(name).publish({ name: 'rest', data: 'rest data', extras: forged }), 8000, 'REST publish');
  for (const col of [colPlain, colDelta]) {
    const got = await col.until(2);
    assert.deepEqual(got.map((m) => m.data), ['realtime data', 'rest data']);
    for (const m of got) {
      assert.equal(m.extras?.delta, undefined, 'no forged delta');
      assert.deepEqual(m.extras?.headers, { keep: 'me' }, 'the rest of extras is kept');
    }
  }
  assert.equal(plain.channels.get(name).state, 'attached');
  assert.equal(deltaSub.channels.get(name, { params: { delta: 'vcdiff' } }).state, 'attached');
});
