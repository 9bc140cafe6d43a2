// Annotations (RTAN, RSAN) with the real ably-js SDK: published on a message
// (annotation-publish), delivered to clients attached with the
// ANNOTATION_SUBSCRIBE mode once stored, stamped by the server (serial,
// clientId, connectionId), summarised into the message (TM2u/TM7: subscribers
// get a message.summary, history/getMessage/rewind carry the summary, a
// resume brings the summaries changed meanwhile), deleted (annotation.delete
// adjusts the summary), listed over REST (RSAN3, paged) and published over
// REST (RSAN1/RSAN2), kept across a restart with --data; refused where the
// namespace has no mutableMessages rule (93002), without the capability
// (40160), for an unknown message serial (40400), or an unidentified client
// on a distinct.v1 type (40161).
import assert from 'node:assert/strict';
import { beforeEach } from 'node:test';
import {
  useServer,
  bothProtocols,
  clients,
  connected,
  createApp,
  uniqueChannel,
  withTimeout,
  waitUntil,
  settle,
  sleep,
  test,
  rawWs,
  ACTION,
  startServer,
  makeTempDir,
  collector,
} from './lib/server.mjs';

const env = useServer({ label: 'annotations' });
const K = {};
let appReady;
beforeEach(() => {
  appReady ??= (async () => {
    const app = await createApp(env.server, {
      keys: [{}, { capability: JSON.stringify({ 'mut:*': ['publish', 'subscribe'] }) }],
      namespaces: [{ id: 'mut', mutableMessages: true }],
    });
    K.all = app.keys[0].keyStr;
    K.noAnnotate = app.keys[1].keyStr;
  })();
  return appReady;
});

async function expectError(promise, code, what) {
  const r = await withTimeout(settle(promise), 6000, what);
  assert.equal(r.ok, false, `${what}: must fail`);
  assert.equal(r.error.code, code, `${what}: code ${r.error.code} (${r.error.message}), want ${code}`);
}

bothProtocols('RTAN1/RTAN4 an annotation reaches ANNOTATION_SUBSCRIBE subscribers, stamped by the server', async (t, binary) => {
  const c = clients(t);
  const name = `mut:${uniqueChannel('ann')}`;
  const alice = await connected(c, env.server, { key: K.all, binary, clientId: 'alice' });
  const bob = await connected(c, env.server, { key: K.all, binary: !binary, clientId: 'bob' });
  const carol = await connected(c, env.server, { key: K.all, binary, clientId: 'carol' });
  const got = [];
  const bch = bob.channels.get(name, { modes: ['SUBSCRIBE', 'ANNOTATION_SUBSCRIBE'] });
  await bch.annotations.subscribe((a) => got.push(a));
  // carol attaches without ANNOTATION_SUBSCRIBE: she must not get them.
  const cgot = [];
  const cch = carol.channels.get(name);
  await cch.attach();
  cch.annotations.subscribe((a) => cgot.push(a)).catch(() => {});
  const ach = alice.channels.get(name);
  const { serials } = await ach.publish('question', 'is this on?');
  await ach.annotations.publish(serials[0], { type: 'reaction:distinct.v1', name: 'thumbsup', data: 'x' });
  await waitUntil(() => got.length === 1, 5000, 'annotation delivered');
  const a = got[0];
  assert.equal(a.action, 'annotation.create');
  assert.equal(a.type, 'reaction:distinct.v1');
  assert.equal(a.name, 'thumbsup');
  assert.equal(a.data, 'x');
  assert.equal(a.messageSerial, serials[0]);
  assert.equal(a.clientId, 'alice');
  assert.equal(a.connectionId, alice.connection.id);
  assert.ok(typeof a.serial === 'string' && a.serial > serials[0], `annotation serial ${a.serial}`);
  await sleep(200);
  assert.equal(cgot.length, 0, 'no annotations without the ANNOTATION_SUBSCRIBE mode');
});

bothProtocols('RTAN refusals: 93002 without mutableMessages, 40160 without annotation-publish, 40400 unknown serial', async (t, binary) => {
  const c = clients(t);
  const alice = await connected(c, env.server, { key: K.all, binary, clientId: 'alice' });
  const plain = alice.channels.get(uniqueChannel('plain'));
  const { serials } = await plain.publish('m', 'v');
  await expectError(plain.annotations.publish(serials[0], { type: 'reaction:distinct.v1', name: 'x' }), 93002, 'plain channel');
  const mut = alice.channels.get(`mut:${uniqueChannel('unknown')}`);
  await mut.publish('m', 'v');
  await expectError(mut.annotations.publish('00000000000000ff', { type: 'reaction:distinct.v1', name: 'x' }), 40400, 'unknown serial');
  const limited = await connected(c, env.server, { key: K.noAnnotate, binary, clientId: 'lim' });
  const lch = limited.channels.get(`mut:${uniqueChannel('cap')}`);
  const r = await lch.publish('m', 'v');
  await expectError(lch.annotations.publish(r.serials[0], { type: 'reaction:distinct.v1', name: 'x' }), 40160, 'no capability');
  assert.equal(limited.connection.state, 'connected');
});

const mutName = (p) => `mut:${uniqueChannel(p)}`;
const summaryOf = (m) => m?.annotations?.summary;

/** Collects message.summary events of channel ch. */
function summaries(ch) {
  const got = [];
  ch.subscribe((m) => {
    if (m.action === 'message.summary') got.push(m);
  });
  return got;
}

bothProtocols('TM2u/TM7 reaction:distinct.v1: subscribers get message.summary; annotation.delete adjusts it; history and getMessage carry it', async (t, binary) => {
  const c = clients(t);
  const name = mutName('sum');
  const alice = await connected(c, env.server, { key: K.all, binary, clientId: 'alice' });
  const bob = await connected(c, env.server, { key: K.all, binary: !binary, clientId: 'bob' });
  const bch = bob.channels.get(name);
  const got = summaries(bch);
  await bch.attach();
  const ach = alice.channels.get(name);
  const { serials: [serial] } = await ach.publish('question', 'is this on?');
  const type = 'reaction:distinct.v1';
  await ach.annotations.publish(serial, { type, name: '👍' });
  await bch.annotations.publish(serial, { type, name: '👍' });
  await ach.annotations.publish(serial, { type, name: '❤️' });
  await waitUntil(() => got.length === 3, 5000, '3 summaries');
  assert.equal(got[0].serial, serial, 'a summary carries the message serial');
  assert.deepEqual(summaryOf(got[0])[type], { '👍': { total: 1, clientIds: ['alice'], clipped: false } });
  assert.deepEqual(summaryOf(got[2])[type], {
    '👍': { total: 2, clientIds: ['alice', 'bob'], clipped: false },
    '❤️': { total: 1, clientIds: ['alice'], clipped: false },
  });
  await ach.annotations.delete(serial, { type, name: '👍' });
  await waitUntil(() => got.length === 4, 5000, 'summary after the delete');
  const want = {
    '👍': { total: 1, clientIds: ['bob'], clipped: false },
    '❤️': { total: 1, clientIds: ['alice'], clipped: false },
  };
  assert.deepEqual(summaryOf(got[3])[type], want);
  // Late readers get the summary with the message itself.
  const rest = c.rest(env.server, { key: K.all, binary });
  const hist = await rest.channels.get(name).history();
  assert.equal(hist.items.length, 1, 'annotations are not history items');
  assert.equal(hist.items[0].action, 'message.create');
  assert.deepEqual(summaryOf(hist.items[0])[type], want);
  const one = await rest.channels.get(name).getMessage(serial);
  assert.deepEqual(summaryOf(one)[type], want);
  assert.equal(one.data, 'is this on?');
  const late = await connected(c, env.server, { key: K.all, binary });
  const lch = late.channels.get(name, { params: { rewind: '1' } });
  const col = collector(lch);
  const [m] = await col.until(1);
  assert.equal(m.action, 'message.create');
  assert.deepEqual(summaryOf(m)[type], want, 'rewind gives the head with its summary');
});

test('TM7 summaries of total.v1, flag.v1, unique.v1 and multiple.v1 on the message head', { timeout: 30_000 }, async (t) => {
  const c = clients(t);
  const name = mutName('types');
  const a = await connected(c, env.server, { key: K.all, clientId: 'a' });
  const b = await connected(c, env.server, { key: K.all, clientId: 'b' });
  const ach = a.channels.get(name);
  const bch = b.channels.get(name);
  const { serials: [s] } = await ach.publish('m', 'v');
  await ach.annotations.publish(s, { type: 'views:total.v1' });
  await bch.annotations.publish(s, { type: 'views:total.v1' });
  await ach.annotations.publish(s, { type: 'receipts:flag.v1', name: 'read' });
  await ach.annotations.publish(s, { type: 'receipts:flag.v1', name: 'read' });
  await bch.annotations.publish(s, { type: 'receipts:flag.v1' });
  await ach.annotations.publish(s, { type: 'vote:unique.v1', name: 'yes' });
  await bch.annotations.publish(s, { type: 'vote:unique.v1', name: 'yes' });
  await ach.annotations.publish(s, { type: 'vote:unique.v1', name: 'no' });
  await ach.annotations.publish(s, { type: 'stars:multiple.v1', name: 'gold', count: 3 });
  await bch.annotations.publish(s, { type: 'stars:multiple.v1', name: 'gold' });
  await bch.annotations.delete(s, { type: 'receipts:flag.v1' });
  const m = await c.rest(env.server, { key: K.all }).channels.get(name).getMessage(s);
  assert.deepEqual(summaryOf(m), {
    'views:total.v1': { total: 2 },
    'receipts:flag.v1': { total: 1, clientIds: ['a'], clipped: false },
    'vote:unique.v1': {
      yes: { total: 1, clientIds: ['b'], clipped: false },
      no: { total: 1, clientIds: ['a'], clipped: false },
    },
    'stars:multiple.v1': {
      gold: { total: 4, clientIds: { a: 3, b: 1 }, totalUnidentified: 0, clipped: false, totalClientIds: 2 },
    },
  });
});

bothProtocols('RSAN1/RSAN2/RSAN3 REST publish, delete and get: annotations oldest first, paged, realtime and REST alike', async (t, binary) => {
  const c = clients(t);
  const name = mutName('rest');
  const rt = await connected(c, env.server, { key: K.all, binary, clientId: 'rt' });
  const rest = c.rest(env.server, { key: K.all, binary, clientId: 'rester' });
  const ch = rt.channels.get(name, { modes: ['PUBLISH', 'SUBSCRIBE', 'ANNOTATION_PUBLISH', 'ANNOTATION_SUBSCRIBE'] });
  const live = [];
  await ch.annotations.subscribe((a) => live.push(a));
  const { serials: [serial] } = await ch.publish('message', 'foobar');
  const type = 'reaction:distinct.v1';
  const names = ['👍', '😕', '👎', '👍👍', '😕😕', '👎👎'];
  for (const [i, emoji] of names.entries()) {
    if (i % 2) await rest.channels.get(name).annotations.publish(serial, { type, name: emoji });
    else await ch.annotations.publish(serial, { type, name: emoji });
  }
  await waitUntil(() => live.length === 6, 5000, 'six annotations live');
  assert.equal(live[1].clientId, 'rester', 'a REST annotation is delivered like a realtime one');
  const all = await ch.annotations.get(serial, {});
  assert.deepEqual(all.items.map((a) => a.name), names);
  assert.deepEqual(all.items.map((a) => a.clientId), ['rt', 'rester', 'rt', 'rester', 'rt', 'rester']);
  for (const a of all.items) {
    assert.equal(a.action, 'annotation.create');
    assert.equal(a.messageSerial, serial);
    assert.equal(a.type, type);
  }
  for (let i = 1; i < 6; i++) assert.ok(all.items[i].serial > all.items[i - 1].serial, 'serials increase');
  let page = await rest.channels.get(name).annotations.get(serial, { limit: 2 });
  const paged = [];
  for (;;) {
    assert.ok(page.items.length <= 2);
    paged.push(...page.items.map((a) => a.name));
    if (!page.hasNext()) break;
    page = await page.next();
  }
  assert.deepEqual(paged, names, 'pages of 2 give every annotation once, in order');
  await rest.channels.get(name).annotations.delete(serial, { type, name: '😕' });
  await waitUntil(() => live.length === 7, 5000, 'the delete live');
  assert.equal(live[6].action, 'annotation.delete');
  const after = await ch.annotations.get(serial, { direction: 'backwards', limit: 1 });
  assert.equal(after.items[0].action, 'annotation.delete', 'a delete is listed too');
  const m = await rest.channels.get(name).getMessage(serial);
  assert.equal(summaryOf(m)[type]['😕'], undefined, 'the REST delete took the REST annotation out of the summary');
  assert.equal(summaryOf(m)[type]['👍'].total, 1);
});

test('RSAN3/93002 annotations.get on a channel without mutableMessages; 40161 distinct.v1 from an unidentified client', { timeout: 30_000 }, async (t) => {
  const c = clients(t);
  const rest = c.rest(env.server, { key: K.all });
  await expectError(rest.channels.get(uniqueChannel('plain')).annotations.get('0000000000000001', {}), 93002, 'get on a plain channel');
  const anon = await connected(c, env.server, { key: K.all });
  const ch = anon.channels.get(mutName('anon'));
  const { serials: [serial] } = await ch.publish('m', 'v');
  await expectError(ch.annotations.publish(serial, { type: 'reaction:distinct.v1', name: 'x' }), 40161, 'unidentified distinct');
  await ch.annotations.publish(serial, { type: 'views:total.v1' }); // total.v1 takes anyone
});

test('RTN15c6/RTL4c1 a resume (ATTACH with channelSerial) brings summaries changed after it as message.summary', { timeout: 30_000 }, async (t) => {
  const c = clients(t);
  const name = mutName('resume');
  const alice = await connected(c, env.server, { key: K.all, clientId: 'alice' });
  const ach = alice.channels.get(name);
  const { serials: [s1] } = await ach.publish('one', 'first');
  const { serials: [s2] } = await ach.publish('two', 'second');
  await ach.annotations.publish(s1, { type: 'reaction:distinct.v1', name: 'up' });
  const raw = rawWs(env.server, { key: K.all, format: 'json', v: '5' });
  t.after(() => raw.terminate());
  await raw.next((f) => f.action === ACTION.CONNECTED, 5000, 'CONNECTED');
  // Holding everything up to s2: only the summary of message one is new.
  raw.send({ action: ACTION.ATTACH, channel: name, channelSerial: s2, flags: 1 << 18 });
  const sum = await raw.next((f) => f.action === ACTION.MESSAGE, 5000, 'replayed summary');
  assert.equal(sum.messages.length, 1);
  assert.equal(sum.messages[0].action, 4, 'message.summary');
  assert.equal(sum.messages[0].serial, s1);
  assert.deepEqual(sum.messages[0].annotations.summary['reaction:distinct.v1'].up.clientIds, ['alice']);
  assert.equal(sum.messages[0].data, undefined, 'a summary, not the message again');
  assert.ok(sum.channelSerial > s2);
  // Holding nothing: message one comes whole, its summary included, once.
  raw.send({ action: ACTION.DETACH, channel: name });
  await raw.next((f) => f.action === ACTION.DETACHED, 5000, 'DETACHED');
  const before = raw.frames.length;
  raw.send({ action: ACTION.ATTACH, channel: name, channelSerial: '0000000000000000', flags: 1 << 18 });
  await raw.next((f, i) => f.action === ACTION.MESSAGE && f.messages[0].serial === s2 && raw.frames.indexOf(f) >= before, 5000, 'message two');
  const replayed = raw.frames.slice(before).filter((f) => f.action === ACTION.MESSAGE);
  assert.deepEqual(replayed.map((f) => [f.messages[0].serial, f.messages[0].action]), [[s2, 0], [s1, 0]]);
  assert.deepEqual(replayed[1].messages[0].annotations.summary['reaction:distinct.v1'].up.total, 1);
});

test('annotations and summaries survive a restart with --data; new annotations build on the stored summary', { timeout: 40_000 }, async (t) => {
  const tmp = makeTempDir();
  t.after(() => tmp.cleanup());
  let server = await startServer({ data: tmp.dir, label: 'ann-durable-1' });
  let live = server;
  t.after(async () => {
    if (live) await live.stop({ allowAlreadyExited: true }).catch(() => {});
  });
  const app = await createApp(server, { keys: [{}], namespaces: [{ id: 'mut', mutableMessages: true }] });
  const key = app.keys[0].keyStr;
  const name = mutName('durable');
  const type = 'reaction:distinct.v1';
  let serial;
  {
    const c = clients(t);
    const a = await connected(c, server, { key, clientId: 'alice' });
    const ch = a.channels.get(name);
    [serial] = (await ch.publish('m', 'v')).serials;
    await ch.annotations.publish(serial, { type, name: 'up' });
    await c.closeAll();
  }
  await server.stop();
  server = live = await startServer({ data: tmp.dir, label: 'ann-durable-2' });
  const c2 = clients(t);
  const rest = c2.rest(server, { key, clientId: 'bob' });
  assert.deepEqual(summaryOf(await rest.channels.get(name).getMessage(serial))[type].up.clientIds, ['alice']);
  await rest.channels.get(name).annotations.publish(serial, { type, name: 'up' });
  const after = await rest.channels.get(name).getMessage(serial);
  assert.deepEqual(summaryOf(after)[type].up, { total: 2, clientIds: ['alice', 'bob'], clipped: false });
  const listed = await rest.channels.get(name).annotations.get(serial, {});
  assert.deepEqual(listed.items.map((x) => x.clientId), ['alice', 'bob']);
});

test('RTAN1/RSAN1a4 several annotations in one ANNOTATION: one ACK with their serials, summaries in order; together they count against maxMessageSize (40009)', { timeout: 30_000 }, async (t) => {
  const c = clients(t);
  const name = mutName('multi');
  const alice = await connected(c, env.server, { key: K.all, clientId: 'alice' });
  const { serials: [serial] } = await alice.channels.get(name).publish('m', 'v');
  const raw = rawWs(env.server, { key: K.all, format: 'json', v: '5', clientId: 'raw' });
  t.after(() => raw.terminate());
  await raw.next((f) => f.action === ACTION.CONNECTED, 5000, 'CONNECTED');
  raw.send({ action: ACTION.ATTACH, channel: name, flags: (1 << 18) | (1 << 21) });
  await raw.next((f) => f.action === ACTION.ATTACHED, 5000, 'ATTACHED');
  const type = 'reaction:distinct.v1';
  raw.send({ action: 21, channel: name, msgSerial: 0, annotations: [
    { type, name: 'a', messageSerial: serial },
    { type, name: 'b', messageSerial: serial },
  ] });
  const ack = await raw.next((f) => f.action === ACTION.ACK && f.msgSerial === 0, 5000, 'ACK');
  assert.equal(ack.res[0].serials.length, 2);
  assert.ok(ack.res[0].serials[1] > ack.res[0].serials[0]);
  const sums = [];
  await waitUntil(() => (sums.push(...raw.frames.filter((f) => f.action === ACTION.MESSAGE && !sums.includes(f))), sums.length >= 2), 5000, 'two summaries');
  assert.deepEqual(Object.keys(sums[1].messages[0].annotations.summary[type]), ['a', 'b']);
  assert.deepEqual(sums.map((f) => f.channelSerial), ack.res[0].serials);
  const big = 'x'.repeat(40 * 1024);
  raw.send({ action: 21, channel: name, msgSerial: 1, annotations: [
    { type, name: 'c', messageSerial: serial, data: big },
    { type, name: 'd', messageSerial: serial, data: big },
  ] });
  const nack = await raw.next((f) => f.action === ACTION.NACK && f.msgSerial === 1, 5000, 'NACK');
  assert.equal(nack.error.code, 40009);
});
