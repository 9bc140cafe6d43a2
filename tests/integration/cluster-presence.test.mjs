// Presence, ephemeral messages and occupancy across the nodes of a cluster
// (issue 12 step 9, docs/cluster.md "Presence"): its own redis-server on
// loopback and three nodes on 127.0.0.2, .3 and .4 with the same port, as
// cluster.test.mjs starts them; the real ably SDK enters, subscribes and
// reads presence through different nodes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  closeClient,
  sleep,
  uniqueChannel,
  waitUntil,
  withTimeout,
} from './lib/server.mjs';
import { appConfig, Cluster } from './lib/cluster.mjs';

const APP = 'cpres';
const KEY = `${APP}.root:cpres-secret-7c1d9e2b4a6f8035`;

const cluster = new Cluster({
  label: 'cpres',
  key: KEY,
  config: appConfig(KEY),
});
const { hosts: HOSTS, nodes, opened } = cluster;
const realtime = (i, extra) => cluster.realtime(i, extra);
const rest = (i, extra) => cluster.rest(i, extra);

before(() => cluster.start());
after(() => cluster.stop());

/** One raw RESP command to the cluster's Redis; resolves with the reply's text. */
const redisCommand = (...args) => cluster.redis.command(...args);

/** Collects presence events [action, clientId, data] on a channel of client. */
async function presenceWatcher(client, name) {
  const ch = client.channels.get(name);
  const got = [];
  await withTimeout(ch.presence.subscribe((p) => got.push({ action: p.action, clientId: p.clientId, data: p.data })),
    15000, `presence subscribe ${name}`);
  return { ch, got };
}

const has = (got, action, clientId, data) =>
  got.some((e) => e.action === action && e.clientId === clientId && (data === undefined || e.data === data));

async function members(ch) {
  return (await withTimeout(ch.presence.get(), 15000, 'presence.get')).map((p) => [p.clientId, p.data]).sort();
}

test('RTP2/RTP6/RTP11: entered on node A: the live ENTER, UPDATE and LEAVE and presence.get on B and C', async () => {
  const name = uniqueChannel('pres');
  const onB = await presenceWatcher(realtime(1), name);
  const onC = await presenceWatcher(realtime(2), name);
  const alice = realtime(0, { clientId: 'alice' }).channels.get(name);
  await withTimeout(alice.presence.enter('hello'), 15000, 'enter on A');
  for (const w of [onB, onC]) await waitUntil(() => has(w.got, 'enter', 'alice', 'hello'), 15000, 'ENTER seen');
  assert.deepEqual(await members(onB.ch), [['alice', 'hello']]);
  assert.deepEqual(await members(onC.ch), [['alice', 'hello']]);
  await withTimeout(alice.presence.update('busy'), 15000, 'update on A');
  for (const w of [onB, onC]) await waitUntil(() => has(w.got, 'update', 'alice', 'busy'), 15000, 'UPDATE seen');
  assert.deepEqual(await members(onC.ch), [['alice', 'busy']]);
  await withTimeout(alice.presence.leave(), 15000, 'leave on A');
  for (const w of [onB, onC]) await waitUntil(() => has(w.got, 'leave', 'alice'), 15000, 'LEAVE seen');
  assert.deepEqual(await members(onB.ch), []);
  assert.deepEqual(await members(onC.ch), []);
});

test('RTP18/RTP19: a client attaching on node C later gets the members of A and B in its SYNC', async () => {
  const name = uniqueChannel('sync');
  const a = realtime(0, { clientId: 'ann' }).channels.get(name);
  const b = realtime(1, { clientId: 'bob' }).channels.get(name);
  await withTimeout(a.presence.enter('a'), 15000, 'enter on A');
  await withTimeout(b.presence.enter('b'), 15000, 'enter on B');
  // Both nodes see both members (each its own, the other's through Redis).
  await waitUntil(async () => (await members(a)).length === 2, 15000, 'A sees both');
  await waitUntil(async () => (await members(b)).length === 2, 15000, 'B sees both');
  const late = realtime(2).channels.get(name);
  assert.deepEqual(await members(late), [['ann', 'a'], ['bob', 'b']]);
  // The connection on B closes: its member leaves on A and C.
  const bClient = opened[opened.length - 2];
  await closeClient(bClient);
  await waitUntil(async () => (await members(late)).length === 1, 15000, 'bob left on C');
  await waitUntil(async () => (await members(a)).length === 1, 15000, 'bob left on A');
});

test('RSP3: REST presence from any node, also one where nobody is attached', async () => {
  const name = uniqueChannel('rest');
  const a = realtime(0, { clientId: 'carol' }).channels.get(name);
  await withTimeout(a.presence.enter('here'), 15000, 'enter on A');
  for (const i of [0, 1, 2]) {
    await waitUntil(async () => {
      const page = await rest(i).channels.get(name).presence.get();
      return page.items.length === 1 && page.items[0].clientId === 'carol' && page.items[0].data === 'here';
    }, 15000, `REST presence on node ${i}`);
  }
});

test('ephemeral messages (extras.ephemeral) reach subscribers on every node, and are not in history', async () => {
  const name = uniqueChannel('eph');
  const subs = [];
  for (const i of [0, 1, 2]) {
    const ch = realtime(i).channels.get(name);
    const got = [];
    await withTimeout(ch.subscribe((m) => got.push(m.data)), 15000, 'attach');
    subs.push(got);
  }
  const pub = realtime(0).channels.get(name);
  await withTimeout(pub.publish({ name: 'typing', data: 'e1', extras: { ephemeral: true } }), 15000, 'publish');
  await withTimeout(rest(1).channels.get(name).publish({ name: 'typing', data: 'e2', extras: { ephemeral: true } }),
    15000, 'REST publish');
  for (const got of subs) await waitUntil(() => got.includes('e1') && got.includes('e2'), 15000, 'ephemeral seen');
  const page = await rest(2).channels.get(name).history();
  assert.equal(page.items.length, 0);
});

test('[meta]occupancy and REST channel status (CHM2) count the attachments of every node holding the channel', async () => {
  const name = uniqueChannel('occ');
  const onC = realtime(2).channels.get(name, { params: { occupancy: 'metrics' } });
  const seen = [];
  await withTimeout(onC.subscribe('[meta]occupancy', (m) => seen.push(m.data.metrics)), 15000, 'attach on C');
  const bClient = realtime(1);
  await withTimeout(realtime(0).channels.get(name).attach(), 15000, 'attach on A');
  await withTimeout(bClient.channels.get(name).attach(), 15000, 'attach on B');
  await waitUntil(() => seen.some((o) => o.connections === 3 && o.subscribers === 3), 20000,
    '[meta]occupancy on C counting A, B and C', () => JSON.stringify(seen));
  await waitUntil(async () => (await rest(0).channels.get(name).status()).status.occupancy.metrics.connections === 3,
    20000, 'REST status on A');
  await closeClient(bClient);
  await waitUntil(() => seen.length && seen[seen.length - 1].connections === 2, 20000, 'B gone from the count',
    () => JSON.stringify(seen));
});

test('RTP2: a member that entered while a node\'s pub/sub connection was down is delivered (ENTER) once it resubscribes', async () => {
  const name = uniqueChannel('gap');
  const onB = await presenceWatcher(realtime(1), name);
  const erin = realtime(0, { clientId: 'erin' }).channels.get(name);
  await withTimeout(erin.attach(), 15000, 'attach on A');
  // Every node's pub/sub connection dropped again and again (they reconnect
  // after 100 ms or more): the ENTER is published while B is not listening,
  // and B reads the set again after its re-subscription.
  let killing = true;
  const killer = (async () => {
    while (killing) {
      await redisCommand('CLIENT', 'KILL', 'TYPE', 'pubsub').catch(() => {});
      await sleep(20);
    }
  })();
  await sleep(100);
  await withTimeout(erin.presence.enter('gap'), 15000, 'enter on A');
  await sleep(300);
  killing = false;
  await killer;
  await waitUntil(() => has(onB.got, 'enter', 'erin', 'gap'), 20000, 'ENTER on B', () => JSON.stringify(onB.got));
  assert.deepEqual(await members(onB.ch), [['erin', 'gap']]);
});

test('a node whose Redis connection comes back writes its members to the shared set again (lost or swept meanwhile)', async () => {
  const name = uniqueChannel('resync');
  const fay = realtime(0, { clientId: 'fay' }).channels.get(name);
  await withTimeout(fay.presence.enter('back'), 15000, 'enter on A');
  await waitUntil(async () => (await rest(2).channels.get(name).presence.get()).items.length === 1, 15000,
    'REST on C sees fay');
  // Redis loses the set behind the nodes' backs (as a restart without persistence would).
  assert.match(await redisCommand('DEL', `{${APP}:${name}}:presence`), /^:1/);
  assert.equal((await rest(2).channels.get(name).presence.get()).items.length, 0);
  // Every node's command connection drops and comes back.
  assert.match(await redisCommand('CLIENT', 'KILL', 'TYPE', 'normal'), /^:[1-9]/);
  await waitUntil(async () => {
    const items = (await rest(2).channels.get(name).presence.get().catch(() => ({ items: [] }))).items;
    return items.length === 1 && items[0].clientId === 'fay' && items[0].data === 'back';
  }, 20000, 'REST on C sees fay again');
});

test('RTP5: a member that left while its node could not write to Redis leaves on the other nodes once it can', async () => {
  const name = uniqueChannel('staleleave');
  const onB = await presenceWatcher(realtime(1), name);
  const gus = realtime(0, { clientId: 'gus' }).channels.get(name);
  await withTimeout(gus.presence.enter('g'), 15000, 'enter on A');
  await waitUntil(() => has(onB.got, 'enter', 'gus'), 15000, 'ENTER on B');
  // Every node's command connection dropped again and again while gus leaves on A.
  let killing = true;
  const killer = (async () => {
    while (killing) {
      await redisCommand('CLIENT', 'KILL', 'TYPE', 'normal').catch(() => {});
      await sleep(5);
    }
  })();
  await sleep(100);
  await withTimeout(gus.presence.leave(), 15000, 'leave on A');
  await sleep(300);
  killing = false;
  await killer;
  await waitUntil(() => has(onB.got, 'leave', 'gus'), 20000, 'LEAVE on B', () => JSON.stringify(onB.got));
  await waitUntil(async () => (await rest(2).channels.get(name).presence.get().catch(() => ({ items: [1] }))).items.length === 0,
    20000, 'REST on C: gone');
});

test('RTP5/RTP2: the members of a node killed with SIGKILL leave on the other nodes within the lease bound', async () => {
  const name = uniqueChannel('kill');
  const onB = await presenceWatcher(realtime(1), name);
  const onC = await presenceWatcher(realtime(2), name);
  const daveClient = realtime(0, { clientId: 'dave' });
  const dave = daveClient.channels.get(name);
  await withTimeout(dave.presence.enter('x'), 15000, 'enter on A');
  // A second channel nobody else holds: nobody sweeps it, REST must still leave dave out once A's lease lapsed.
  const lonely = uniqueChannel('lonely');
  await withTimeout(daveClient.channels.get(lonely).presence.enter('y'), 15000, 'enter on A (lonely)');
  await waitUntil(async () => (await rest(1).channels.get(lonely).presence.get()).items.length === 1, 15000,
    'REST on B sees dave on the lonely channel');
  for (const w of [onB, onC]) await waitUntil(() => has(w.got, 'enter', 'dave'), 15000, 'ENTER seen');
  await cluster.killNode(0);
  // docs/cluster.md: lease 10 s + sweep 3 s; generous here for a loaded machine.
  for (const w of [onB, onC]) await waitUntil(() => has(w.got, 'leave', 'dave'), 45000, 'LEAVE after node A died');
  assert.deepEqual(await members(onB.ch), []);
  assert.deepEqual(await members(onC.ch), []);
  const page = await rest(1).channels.get(name).presence.get();
  assert.equal(page.items.length, 0);
  await waitUntil(async () => (await rest(2).channels.get(lonely).presence.get()).items.length === 0, 20000,
    'REST on C leaves out the members of a lapsed node on a channel no node holds');
});
