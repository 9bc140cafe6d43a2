// A cluster of switchboard nodes on Redis (issue 12, docs/cluster.md): the
// test starts its own redis-server on loopback (a free port, its files in a
// temporary directory, appendonly with appendfsync always) and three nodes
// on 127.0.0.2, 127.0.0.3 and 127.0.0.4 with the same port, each
// `serve --memory --sandbox --redis redis://127.0.0.1:PORT` with the same app
// and key from one config file (apps are not shared through Redis yet).
// The real ably SDK publishes and subscribes. A missing redis-server fails
// the test (scripts/deps.sh test installs it).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import Ably from 'ably';
import {
  ARTIFACTS_DIR,
  SERVER_BIN,
  ServerProcess,
  sleep,
  uniqueChannel,
  waitUntil,
  withTimeout,
} from './lib/server.mjs';
import { appConfig, Cluster, collector, freePort } from './lib/cluster.mjs';

const APP = 'cluster';
const KEY = `${APP}.root:cluster-secret-2b7f4c9e1a3d5f80`;

const cluster = new Cluster({
  label: 'cluster',
  key: KEY,
  config: appConfig(KEY),
});
const { hosts: HOSTS, nodes } = cluster;
const realtime = (i, extra) => cluster.realtime(i, extra);
const rest = (i, extra) => cluster.rest(i, extra);
const readyz = (i) => cluster.readyz(i);

before(() => cluster.start());
after(() => cluster.stop());

test('RTL6/RTL7: published on node A, B and C receive every message in order with the same serials', async () => {
  const name = uniqueChannel('fanout');
  const [b, c] = [await collector(realtime(1), name), await collector(realtime(2), name)];
  const pub = realtime(0).channels.get(name);
  for (let i = 0; i < 40; i++) pub.publish(`m${i}`, { i }); // queued in order on one connection
  await withTimeout(pub.publish('last', 'x'), 15000, 'publish acknowledged');
  await waitUntil(() => b.got.length === 41 && c.got.length === 41, 15000, '41 messages on B and C');
  const names = [...Array(40).keys()].map((i) => `m${i}`).concat('last');
  assert.deepEqual(b.got.map((m) => m.name), names);
  assert.deepEqual(c.got.map((m) => m.name), names);
  assert.deepEqual(b.got.map((m) => m.serial), c.got.map((m) => m.serial));
  const serials = b.got.map((m) => m.serial);
  assert.deepEqual([...serials].sort(), serials, 'serials increase');
  assert.equal(new Set(serials).size, serials.length);
});

test('RSL2/RTL10b: history and untilAttach from any node', async () => {
  const name = uniqueChannel('history');
  const pubClient = realtime(0);
  const pub = pubClient.channels.get(name);
  for (let i = 0; i < 5; i++) await withTimeout(pub.publish(`h${i}`, String(i)), 10000, 'publish');
  // REST history on every node, newest first by default and forwards.
  for (let i = 0; i < HOSTS.length; i++) {
    const page = await rest(i).channels.get(name).history({ direction: 'forwards' });
    assert.deepEqual(page.items.map((m) => m.name), ['h0', 'h1', 'h2', 'h3', 'h4'], `node ${i}`);
    const back = await rest(i).channels.get(name).history({ limit: 2 });
    assert.deepEqual(back.items.map((m) => m.name), ['h4', 'h3']);
    assert.ok(back.hasNext());
    const next = await back.next();
    assert.deepEqual(next.items.map((m) => m.name), ['h2', 'h1']);
  }
  // untilAttach on node C: only what was published before its attach.
  const late = realtime(2).channels.get(name);
  await withTimeout(late.attach(), 15000, 'attach on C');
  await withTimeout(pub.publish('after', 'x'), 10000, 'publish after attach');
  const h = await late.history({ untilAttach: true, direction: 'forwards' });
  assert.deepEqual(h.items.map((m) => m.name), ['h0', 'h1', 'h2', 'h3', 'h4']);
  // rewind on node B reads the shared log.
  const rw = realtime(1).channels.get(`[?rewind=3]${name}`);
  const got = [];
  await withTimeout(rw.subscribe((m) => got.push(m.name)), 15000, 'rewind attach on B');
  await waitUntil(() => got.length >= 3, 10000, 'rewound messages');
  assert.deepEqual(got, ['h3', 'h4', 'after']);
});

test('RSL1k: an idempotent publish is stored once across nodes', async () => {
  const name = uniqueChannel('idem');
  const sub = await collector(realtime(2), name);
  const id = `idem-${Date.now()}`;
  await rest(0).channels.get(name).publish({ id, name: 'once', data: 'a' });
  await rest(1).channels.get(name).publish({ id, name: 'once', data: 'b' });
  // A realtime resend through another node too.
  await withTimeout(realtime(2).channels.get(name).publish({ id, name: 'once', data: 'c' }), 10000, 'realtime resend');
  await withTimeout(rest(0).channels.get(name).publish('marker', 'm'), 10000, 'marker');
  await waitUntil(() => sub.got.some((m) => m.name === 'marker'), 10000, 'marker');
  assert.deepEqual(sub.got.map((m) => m.name), ['once', 'marker']);
  assert.equal(sub.got[0].data, 'a');
  const page = await rest(1).channels.get(name).history({ direction: 'forwards' });
  assert.deepEqual(page.items.map((m) => [m.name, m.id === id]), [['once', true], ['marker', false]]);
});

test('RTC1a: echoMessages false skips the publisher on its own node only', async () => {
  const name = uniqueChannel('echo');
  const quiet = realtime(0, { echoMessages: false });
  const own = await collector(quiet, name);
  const sameNode = await collector(realtime(0), name);
  const other = await collector(realtime(1), name);
  await withTimeout(own.ch.publish('e1', 'x'), 10000, 'publish');
  await withTimeout(own.ch.publish('e2', 'x'), 10000, 'publish');
  await waitUntil(() => sameNode.got.length === 2 && other.got.length === 2, 10000, 'both messages elsewhere');
  await sleep(300);
  assert.equal(own.got.length, 0, 'the publisher did not get its own messages');
});

test('RSL11/RSL14: getMessage and getMessageVersions by serial from any node; the Chat REST API on a cluster', async () => {
  const name = uniqueChannel('get');
  await rest(0).channels.get(name).publish('one', 'first');
  await rest(0).channels.get(name).publish('two', 'second');
  const page = await rest(1).channels.get(name).history({ direction: 'forwards' });
  const serial = page.items[1].serial;
  for (let i = 0; i < HOSTS.length; i++) {
    const m = await rest(i).channels.get(name).getMessage(serial);
    assert.equal(m.name, 'two');
    assert.equal(m.data, 'second');
    assert.equal(m.serial, serial);
  }
  await assert.rejects(rest(2).channels.get(name).getMessage('00000000000fffff'), (e) => e.code === 40400);
  // RSL14: a message never changed has one version, its create (cluster-mutable.test.mjs has the rest).
  const vers = await rest(2).channels.get(name).getMessageVersions(serial);
  assert.deepEqual(vers.items.map((m) => [m.action, m.data, m.serial]), [['message.create', 'second', serial]]);
  // The Chat REST API reads through the bus too (cluster-mutable.test.mjs): an unknown message is 40400 on any node.
  const res = await fetch(`http://${HOSTS[0]}:${cluster.nodePort}/chat/v4/rooms/r1/messages/${serial}/client-reactions`, {
    headers: { authorization: `Basic ${Buffer.from(KEY).toString('base64')}` },
  });
  const body = await res.json();
  assert.equal(res.status, 404);
  assert.equal(body.error.code, 40400);
});

test('RTN15c6/RTL4c1: a subscriber whose transport drops resumes on its node and gets what was published meanwhile from the shared log, once, in order', async () => {
  const name = uniqueChannel('resume');
  const subClient = realtime(1);
  const sub = await collector(subClient, name);
  const id0 = subClient.connection.id;
  const pub = realtime(0).channels.get(name);
  await withTimeout(pub.publish('r0', 'x'), 10000, 'publish');
  await waitUntil(() => sub.got.length === 1, 10000, 'r0');
  const ws = subClient.connection.connectionManager.activeProtocol.getTransport().wsConnection;
  ws.pause(); // nothing more is read until the transport is dropped
  for (let i = 1; i <= 30; i++) await withTimeout(pub.publish(`r${i}`, 'x'), 10000, 'publish while away');
  ws.terminate();
  await waitUntil(() => sub.got.length >= 31, 20000, 'the 31 messages after the resume');
  await sleep(300);
  assert.equal(subClient.connection.id, id0, 'the same connection (resumed)');
  assert.deepEqual(sub.got.map((m) => m.name), [...Array(31).keys()].map((i) => `r${i}`));
});

test('Redis stopped: publishes refused with 50004, connections stay up; Redis back: accepted, nothing acknowledged lost', async () => {
  const name = uniqueChannel('outage');
  const sub = await collector(realtime(1), name);
  const pubClient = realtime(0);
  const pub = pubClient.channels.get(name);
  const acked = [];
  for (let i = 0; i < 10; i++) {
    await withTimeout(pub.publish(`before${i}`, String(i)), 10000, 'publish before the outage');
    acked.push(`before${i}`);
  }
  await cluster.redis.stop();
  await waitUntil(async () => (await readyz(0)).status === 503, 15000, '/readyz 503 on node A');
  const rz = await readyz(0);
  assert.equal(rz.body.error.code, 50004);
  // Publishes are refused (NACK), never acknowledged unsaved.
  let refused = 0;
  for (let i = 0; i < 5; i++) {
    try {
      await withTimeout(pub.publish(`during${i}`, String(i)), 15000, 'publish during the outage');
      acked.push(`during${i}`);
    } catch (e) {
      assert.equal(e.code, 50004, `refusal: ${e.code} ${e.message}`);
      refused++;
    }
  }
  assert.ok(refused >= 1, 'at least one publish was refused during the outage');
  await assert.rejects(rest(2).channels.get(name).publish('rest-during', 'x'), (e) => e.code === 50004);
  assert.equal(pubClient.connection.state, 'connected');
  assert.equal(sub.ch.state, 'attached');
  await cluster.redis.start();
  for (let i = 0; i < HOSTS.length; i++) {
    await waitUntil(async () => (await readyz(i)).status === 200, 20000, `/readyz 200 again on node ${i}`);
  }
  for (let i = 0; i < 5; i++) {
    await withTimeout(pub.publish(`after${i}`, String(i)), 15000, 'publish after the outage');
    acked.push(`after${i}`);
  }
  await waitUntil(() => acked.every((n) => sub.got.some((m) => m.name === n)), 20000, 'every acknowledged message on node B');
  const page = await rest(2).channels.get(name).history({ direction: 'forwards', limit: 100 });
  const stored = page.items.map((m) => m.name);
  for (const n of acked) assert.ok(stored.includes(n), `${n} is in history`);
  assert.equal(pubClient.connection.state, 'connected');
});

test('kill -9 of node A mid-stream: subscribers on C lose nothing a publisher on B got acknowledged', async () => {
  const name = uniqueChannel('kill');
  const onA = await collector(realtime(0), name); // a subscriber on the node that dies
  const sub = await collector(realtime(2), name);
  const pub = realtime(1).channels.get(name);
  const acked = [];
  let stop = false;
  const pumping = (async () => {
    for (let i = 0; !stop && i < 400; i++) {
      try {
        await withTimeout(pub.publish(`k${i}`, String(i)), 15000, 'publish');
        acked.push(`k${i}`);
      } catch {
        /* not acknowledged: may or may not be delivered */
      }
    }
  })();
  await waitUntil(() => acked.length >= 50, 20000, '50 acknowledged');
  await cluster.killNode(0);
  await sleep(300);
  stop = true;
  await withTimeout(pumping, 30000, 'publisher done');
  await waitUntil(() => acked.every((n) => sub.got.some((m) => m.name === n)), 20000, 'every acknowledged message on node C');
  const names = sub.got.map((m) => m.name);
  assert.deepEqual(names, acked, 'C got exactly the acknowledged messages, in order, once');
  assert.ok(onA.got.length > 0);
  // Node A comes back and serves the channel's history.
  await cluster.startNode(0);
  await waitUntil(async () => (await readyz(0)).status === 200, 15000, 'node A ready again (Redis connected)');
  const page = await rest(0).channels.get(name).history({ direction: 'forwards', limit: 1000 });
  assert.deepEqual(page.items.map((m) => m.name), acked);
});

/** serve with args that must fail at start: {status, stderr}. */
function serveFails(args) {
  const r = spawnSync(SERVER_BIN, ['serve', '--listen', '127.0.0.1:0', '--memory', ...args], {
    encoding: 'utf8',
    timeout: 20000,
  });
  return { status: r.status, stderr: r.stderr };
}

test('--redis: a bad URL or rediss:// is refused at start (exit 1) with the reason, the password never shown', () => {
  let r = serveFails(['--redis', 'rediss://127.0.0.1:6379']);
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /rediss:\/\/ \(TLS\) is not supported/);
  r = serveFails(['--redis', 'redis://:hunter2-secret@127.0.0.1:99999']);
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /not a Redis URL/);
  assert.doesNotMatch(r.stderr, /hunter2/);
  r = serveFails(['--redis', 'http://127.0.0.1']);
  assert.equal(r.status, 1, r.stderr);
  const cfg = path.join(cluster.dir, 'tls.json');
  writeFileSync(cfg, JSON.stringify({ redis: { host: '127.0.0.1', tls: true } }));
  r = serveFails(['--config', cfg]);
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /redis\.tls: TLS to Redis is not supported/);
});

test('the "redis" config object (host, port) makes a node of the same cluster', async () => {
  const cfg = path.join(cluster.dir, 'object.json');
  writeFileSync(
    cfg,
    JSON.stringify({
      apps: [{ id: APP, keys: [{ id: 'root', secret: KEY.split(':')[1] }] }],
      adminKey: 'cluster-admin-key-0123456789',
      redis: { host: '127.0.0.1', port: cluster.redis.port, commandTimeout: 3000, maxPending: 5000 },
    }),
  );
  const s = await new ServerProcess(['serve', '--listen', '127.0.0.1:0', '--memory', '--config', cfg], 'cluster-object', {
    artifactsDir: ARTIFACTS_DIR,
  }).start();
  try {
    await waitUntil(
      async () => (await fetch(`http://127.0.0.1:${s.port}/readyz`)).status === 200,
      15000,
      '/readyz 200 on the node from the config object',
    );
    const name = uniqueChannel('object');
    await rest(0).channels.get(name).publish('from-a', 'x');
    const r = new Ably.Rest({ key: KEY, endpoint: '127.0.0.1', port: s.port, tls: false });
    const page = await r.channels.get(name).history();
    assert.deepEqual(page.items.map((m) => m.name), ['from-a']);
    const metrics = await (await fetch(`http://127.0.0.1:${s.port}/metrics`, {
      headers: { authorization: 'Bearer cluster-admin-key-0123456789' },
    })).text();
    assert.match(metrics, /^switchboard_cluster_up 1$/m);
  } finally {
    await s.stop();
  }
});

test('a node whose Redis is not there does not start (exit 1, the reason and the redacted URL on stderr): without the shared state it could not tell revoked tokens or deleted apps', async () => {
  const deadPort = await freePort(['127.0.0.1']);
  const cfg = path.join(cluster.dir, 'switchboard.json');
  const r = serveFails(['--config', cfg, '--redis', `redis://:hunter2-secret@127.0.0.1:${deadPort}`]);
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /cannot load the cluster state from Redis/);
  assert.doesNotMatch(r.stderr, /hunter2/);
});
