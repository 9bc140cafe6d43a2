// Mutable messages on a cluster (issue 12 step 8, docs/cluster.md "Message
// versions"): updates, deletes and appends made through one node are stored
// in Redis by the version script and reach every node's subscribers in
// order; history, getMessage and rewind serve the aggregated heads. Same
// set-up as cluster.test.mjs: its own redis-server on loopback (appendonly,
// appendfsync always) and three nodes on 127.0.0.2, .3 and .4 with the same
// port. The real ably SDK publishes, changes and subscribes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { ChatClient, ChatMessageEventType } from '@ably/chat';
import {
  sleep,
  uniqueChannel,
  waitUntil,
  withTimeout,
} from './lib/server.mjs';
import { appConfig, Cluster } from './lib/cluster.mjs';

const APP = 'cmut';
const KEY = `${APP}.root:cmut-secret-6c1e0f3a9b2d4e57`;

const cluster = new Cluster({
  label: 'cmut',
  key: KEY,
  config: appConfig(KEY),
});
const { hosts: HOSTS, nodes } = cluster;
const realtime = (i, extra) => cluster.realtime(i, extra);
const rest = (i, extra) => cluster.rest(i, extra);
const readyz = (i) => cluster.readyz(i);

before(() => cluster.start());
after(() => cluster.stop());

const mutName = (p) => `conversations:${uniqueChannel(p)}`;
const brief = (m) => ({ action: m.action, serial: m.serial, data: m.data, version: m.version?.serial });

/** Subscribes and keeps every message whole. */
async function watcher(client, name, attachOpts) {
  const ch = client.channels.get(name, attachOpts);
  const got = [];
  await withTimeout(ch.subscribe((m) => got.push(m)), 15000, `attach ${name}`);
  return { ch, got };
}

/** What a client holds after folding the events it got (TM5 semantics). */
function fold(msgs) {
  const heads = new Map();
  for (const m of msgs) {
    if (m.action === 'message.append' && heads.has(m.serial)) {
      const h = heads.get(m.serial);
      heads.set(m.serial, { ...h, data: h.data + m.data });
    } else {
      heads.set(m.serial, { action: m.action, data: m.data, name: m.name });
    }
  }
  return heads;
}

test('RTL32/RSL15: update, delete and append through node A are seen live on B and C in order with increasing version serials', async () => {
  const name = mutName('live');
  const [b, c] = [await watcher(realtime(1), name), await watcher(realtime(2), name)];
  const ch = realtime(0, { clientId: 'writer' }).channels.get(name);
  const { serials } = await withTimeout(ch.publish('answer', 'Hello'), 10000, 'publish');
  const serial = serials[0];
  const versions = [];
  for (const frag of [',', ' wor', 'ld']) {
    versions.push((await withTimeout(ch.appendMessage({ serial, data: frag }), 10000, `append ${frag}`)).versionSerial);
  }
  versions.push((await withTimeout(ch.updateMessage({ serial, data: 'Hello, everyone', name: 'v2' }, { description: 'rewrite' }), 10000, 'update')).versionSerial);
  versions.push((await withTimeout(ch.deleteMessage({ serial }, { description: 'gone' }), 10000, 'delete')).versionSerial);
  for (let i = 0; i < versions.length; i++) {
    assert.equal(typeof versions[i], 'string');
    assert.ok(versions[i] > (i ? versions[i - 1] : serial), `versionSerials increase: ${versions}`);
  }
  await waitUntil(() => b.got.length >= 6 && c.got.length >= 6, 15000, '6 events on B and C');
  await sleep(200);
  for (const w of [b, c]) {
    assert.equal(w.got.length, 6, JSON.stringify(w.got.map(brief)));
    assert.deepEqual(w.got.map((m) => m.action),
      ['message.create', 'message.append', 'message.append', 'message.append', 'message.update', 'message.delete']);
    assert.ok(w.got.every((m) => m.serial === serial));
    assert.deepEqual(w.got.slice(1, 4).map((m) => m.data), [',', ' wor', 'ld']);
    assert.deepEqual(w.got.slice(1).map((m) => m.version.serial), versions);
    assert.equal(w.got[4].data, 'Hello, everyone');
    assert.equal(w.got[4].version.description, 'rewrite');
    assert.equal(w.got[4].version.clientId, 'writer');
    assert.equal(w.got[5].action, 'message.delete');
  }
  // A change of a deleted message is refused from any node (as on one node).
  await assert.rejects(rest(2).channels.get(name).updateMessage({ serial, data: 'again' }), (e) => e.code === 40000);
  // An unknown serial: 40400 from any node.
  await assert.rejects(rest(1).channels.get(name).updateMessage({ serial: '00000000000fffff', data: 'x' }),
    (e) => e.code === 40400);
});

test('RSL15: updates of one message through two nodes at once all land, each once, the head the last of them', async () => {
  const name = mutName('race');
  const w = await watcher(realtime(2), name);
  await rest(0).channels.get(name).publish('m', 'start');
  const serial = (await rest(0).channels.get(name).history()).items[0].serial;
  const a = realtime(0).channels.get(name);
  const b = realtime(1).channels.get(name);
  const ops = [];
  for (let i = 0; i < 20; i++) ops.push((i % 2 ? b : a).appendMessage({ serial, data: String.fromCharCode(97 + i) }));
  const res = await withTimeout(Promise.all(ops), 20000, 'the 20 appends');
  assert.equal(new Set(res.map((r) => r.versionSerial)).size, 20, 'each append its own version');
  const head = await rest(1).channels.get(name).getMessage(serial);
  assert.equal(head.data.length, 'start'.length + 20);
  assert.deepEqual([...head.data.slice(5)].sort().join(''), 'abcdefghijklmnopqrst', 'every append once');
  await waitUntil(() => w.got.length >= 21, 15000, 'the 21 events on C');
  assert.equal(fold(w.got).get(serial).data, head.data, 'the watcher on C folds to the stored head');
});

for (const window of [0, undefined]) {
  const label = window === undefined ? 'default' : String(window);
  test(`AI sessions across nodes (appendRollupWindow ${label}): an agent on A streams appends, a watcher on B has the agent's text; a late joiner on C gets the aggregated head by rewind, history and getMessage`, async () => {
    const name = mutName(`ai${label}`);
    const watch = await watcher(realtime(1), name);
    const agent = realtime(0, window === undefined ? {} : { transportParams: { appendRollupWindow: window } });
    const ch = agent.channels.get(name);
    const { serials } = await withTimeout(ch.publish({ name: 'response', data: '' }), 10000, 'publish');
    const serial = serials[0];
    let text = '';
    const acks = [];
    for (let i = 0; i < 200; i++) {
      const frag = `tok${i} `;
      text += frag;
      acks.push(ch.appendMessage({ serial, data: frag })); // streamed: not awaited one by one
    }
    await withTimeout(Promise.all(acks), 30000, '200 appends acknowledged');
    await waitUntil(() => fold(watch.got).get(serial)?.data === text, 20000, 'the watcher on B has the whole text',
      () => `got ${JSON.stringify(fold(watch.got).get(serial)?.data?.slice(-40))}`);
    // The late joiner on C: rewind gives the head, not fragments.
    const late = await watcher(realtime(2), name, { params: { rewind: '10' } });
    await waitUntil(() => late.got.length >= 1, 15000, 'the rewound head on C');
    await sleep(200);
    assert.equal(late.got.length, 1, JSON.stringify(late.got.map(brief)));
    assert.equal(late.got[0].serial, serial);
    assert.equal(late.got[0].data, text);
    const hist = await rest(2).channels.get(name).history();
    assert.equal(hist.items.length, 1);
    assert.equal(hist.items[0].data, text);
    assert.equal(hist.items[0].action, 'message.update');
    const got = await rest(2).channels.get(name).getMessage(serial);
    assert.equal(got.data, text);
    // Later appends reach the late joiner as fragments of the message it holds.
    await withTimeout(ch.appendMessage({ serial, data: 'end.' }), 10000, 'one more append');
    await waitUntil(() => fold(late.got).get(serial)?.data === text + 'end.', 15000, 'the late joiner follows');
  });
}

test('kill -9 of the agent\'s node A mid-stream: every acknowledged append is in the head read from B and C', async () => {
  const name = mutName('kill');
  const watch = await watcher(realtime(2), name);
  const agentClient = realtime(0, { transportParams: { appendRollupWindow: 0 } });
  const ch = agentClient.channels.get(name);
  const { serials } = await withTimeout(ch.publish({ name: 'response', data: '' }), 10000, 'publish');
  const serial = serials[0];
  const acked = [];
  let stop = false;
  const stream = (async () => {
    for (let i = 0; !stop && i < 5000; i++) {
      const frag = `k${i} `;
      try {
        await withTimeout(ch.appendMessage({ serial, data: frag }), 10000, 'append');
        acked.push(frag);
      } catch {
        break;
      }
    }
  })();
  await waitUntil(() => acked.length >= 50, 20000, '50 appends acknowledged');
  await cluster.killNode(0);
  stop = true;
  await withTimeout(stream, 30000, 'the stream ends');
  agentClient.close(); // an append not acknowledged is not resent later
  const ackedText = acked.join('');
  const head = await rest(1).channels.get(name).getMessage(serial);
  assert.ok(head.data.startsWith(ackedText), `the head holds every acknowledged append (${acked.length})`);
  // What the head holds beyond them were appends stored but not acknowledged before the kill: at most one in flight.
  assert.ok(head.data.length - ackedText.length <= 20, `at most the append in flight beyond: ${head.data.slice(ackedText.length)}`);
  await waitUntil(() => fold(watch.got).get(serial)?.data === head.data, 15000, 'the watcher on C has the stored head');
  await cluster.startNode(0);
  await waitUntil(async () => (await readyz(0)).status === 200, 20000, 'node A back');
});

test('RSL14: getMessageVersions from any node lists the create and every version, newest first, paged both ways', async () => {
  const name = mutName('vers');
  const ch = realtime(0).channels.get(name);
  const s1 = (await withTimeout(ch.publish('m1', 'one'), 10000, 'publish')).serials[0];
  const v = [];
  for (const f of ['-a', '-b', '-c']) v.push((await withTimeout(ch.appendMessage({ serial: s1, data: f }), 10000, 'append')).versionSerial);
  v.push((await withTimeout(rest(1).channels.get(name).updateMessage({ serial: s1, data: 'ONE' }), 10000, 'update on B')).versionSerial);
  for (let i = 0; i < HOSTS.length; i++) {
    const rch = rest(i).channels.get(name);
    const vers = await rch.getMessageVersions(s1);
    assert.deepEqual(vers.items.map((m) => [m.action, m.data, m.version?.serial, m.serial]), [
      ['message.update', 'ONE', v[3], s1],
      ['message.append', '-c', v[2], s1],
      ['message.append', '-b', v[1], s1],
      ['message.append', '-a', v[0], s1],
      ['message.create', 'one', s1, s1],
    ], `node ${i}`);
    const vf = await rch.getMessageVersions(s1, { direction: 'forwards', limit: 2 });
    assert.deepEqual(vf.items.map((m) => m.version?.serial), [s1, v[0]]);
    assert.ok(vf.hasNext());
    assert.deepEqual((await vf.next()).items.map((m) => m.version?.serial), [v[1], v[2]]);
  }
  // An unknown serial: an empty list, as on one node.
  assert.deepEqual((await rest(2).channels.get(name).getMessageVersions('00000000000fffff')).items, []);
});

test('Chat REST API across nodes: send on A, received on B; history, get, update, delete and versions from either node', async () => {
  const name = uniqueChannel('room');
  const alice = new ChatClient(realtime(0, { clientId: 'alice' }), { logLevel: 'silent' });
  const bob = new ChatClient(realtime(1, { clientId: 'bob' }), { logLevel: 'silent' });
  const aroom = await alice.rooms.get(name);
  const broom = await bob.rooms.get(name);
  const got = [];
  broom.messages.subscribe((e) => got.push(e));
  await withTimeout(aroom.attach(), 15000, 'alice attach');
  await withTimeout(broom.attach(), 15000, 'bob attach');
  const sent = await withTimeout(aroom.messages.send({ text: 'hello', metadata: { n: 1 } }), 10000, 'send on A');
  assert.equal(sent.text, 'hello');
  assert.equal(sent.clientId, 'alice');
  assert.ok(sent.serial);
  await waitUntil(() => got.length >= 1, 10000, 'bob receives on B');
  assert.equal(got[0].type, ChatMessageEventType.Created);
  assert.equal(got[0].message.serial, sent.serial);
  const second = await withTimeout(broom.messages.send({ text: 'second' }), 10000, 'send on B');
  const hist = await broom.messages.history({ limit: 10 });
  assert.deepEqual(hist.items.map((m) => m.text), ['second', 'hello']);
  assert.equal((await broom.messages.get(sent.serial)).text, 'hello');
  await assert.rejects(broom.messages.get('00000000000fffff'), (e) => e.code === 40400);
  const upd = await withTimeout(aroom.messages.update(sent.serial, { text: 'hello, edited' }, { description: 'typo' }), 10000, 'update on A');
  assert.equal(upd.text, 'hello, edited');
  assert.equal(upd.version.description, 'typo');
  await waitUntil(() => got.some((e) => e.type === ChatMessageEventType.Updated), 10000, 'bob sees the update');
  const del = await withTimeout(broom.messages.delete(second.serial, { description: 'gone' }), 10000, 'delete on B');
  assert.equal(del.action, 'message.delete');
  const vers = await broom.messages.getVersions(sent.serial);
  assert.deepEqual(vers.items.map((m) => m.text), ['hello, edited', 'hello']);
  const after = await aroom.messages.history({ limit: 10 });
  assert.deepEqual(after.items.map((m) => [m.text, m.action]), [['second', 'message.delete'], ['hello, edited', 'message.update']]);
  // Message reactions (annotations) through A and B, read from either node.
  const sums = [];
  broom.messages.reactions.subscribe((e) => sums.push(e));
  await withTimeout(aroom.messages.reactions.send(sent.serial, { name: '👍' }), 10000, 'react on A');
  await withTimeout(broom.messages.reactions.send(sent.serial, { name: '👍' }), 10000, 'react on B');
  await waitUntil(() => sums.some((e) => e.reactions?.distinct?.['👍']?.total === 2), 10000, 'the summary on B');
  const hers = await broom.messages.reactions.clientReactions(sent.serial, 'alice');
  assert.deepEqual(hers.distinct['👍'].clientIds, ['alice']);
  const h2 = await aroom.messages.history({ limit: 10 });
  assert.equal(h2.items.find((m) => m.serial === sent.serial).reactions.distinct['👍'].total, 2);
});

const summaryOf = (m) => m.annotations?.summary ?? {};

test('RTAN/RSAN/TM7: annotations published through A and B reach annotation subscribers and summaries on C; REST list, history, getMessage and rewind from any node carry them', async () => {
  const name = mutName('ann');
  const type = 'reaction:distinct.v1';
  const carol = realtime(2).channels.get(name, { modes: ['SUBSCRIBE', 'ANNOTATION_SUBSCRIBE'] });
  const anns = [];
  const sums = [];
  await withTimeout(carol.annotations.subscribe((a) => anns.push(a)), 15000, 'annotation subscribe on C');
  await withTimeout(carol.subscribe((m) => { if (m.action === 'message.summary') sums.push(m); }), 15000, 'subscribe on C');
  const ach = realtime(0, { clientId: 'alice' }).channels.get(name);
  const bch = realtime(1, { clientId: 'bob' }).channels.get(name);
  const { serials: [serial] } = await withTimeout(ach.publish('question', 'is this on?'), 10000, 'publish');
  await withTimeout(ach.annotations.publish(serial, { type, name: '👍' }), 10000, 'annotate on A');
  await withTimeout(bch.annotations.publish(serial, { type, name: '👍' }), 10000, 'annotate on B');
  await withTimeout(ach.annotations.publish(serial, { type, name: '❤️' }), 10000, 'annotate on A again');
  await waitUntil(() => sums.length >= 3 && anns.length >= 3, 15000, '3 summaries and 3 annotations on C');
  assert.ok(sums.every((m) => m.serial === serial));
  assert.deepEqual(summaryOf(sums[2])[type], {
    '👍': { total: 2, clientIds: ['alice', 'bob'], clipped: false },
    '❤️': { total: 1, clientIds: ['alice'], clipped: false },
  });
  assert.deepEqual(anns.map((a) => [a.name, a.clientId, a.messageSerial]), [['👍', 'alice', serial], ['👍', 'bob', serial], ['❤️', 'alice', serial]]);
  const aserials = anns.map((a) => a.serial);
  assert.deepEqual([...aserials].sort(), aserials, 'annotation serials increase');
  await withTimeout(ach.annotations.delete(serial, { type, name: '👍' }), 10000, 'delete on A');
  const want = {
    '👍': { total: 1, clientIds: ['bob'], clipped: false },
    '❤️': { total: 1, clientIds: ['alice'], clipped: false },
  };
  await waitUntil(() => sums.length >= 4, 15000, 'the summary after the delete on C');
  assert.deepEqual(summaryOf(sums[3])[type], want);
  const r = rest(2).channels.get(name);
  const list = await r.annotations.get(serial);
  assert.equal(list.items.length, 4);
  assert.deepEqual(list.items.map((a) => a.name), ['👍', '👍', '❤️', '👍']);
  const hist = await r.history();
  assert.equal(hist.items.length, 1, 'annotations are not history items');
  assert.deepEqual(summaryOf(hist.items[0])[type], want);
  assert.deepEqual(summaryOf(await rest(1).channels.get(name).getMessage(serial))[type], want);
  const late = await watcher(realtime(1), name, { params: { rewind: '1' } });
  await waitUntil(() => late.got.length >= 1, 15000, 'rewound head');
  assert.deepEqual(summaryOf(late.got[0])[type], want, 'rewind gives the head with its summary');
});
