// Connection resume on ANOTHER node of a cluster (issue 12 step 10,
// docs/cluster.md, "Connection records"): the test starts its own
// redis-server on loopback and three nodes on 127.0.0.2, .3 and .4 with the
// same port, so that ably-js lists the others as fallbackHosts. A node
// killed with SIGKILL: its clients resume on another node with the same
// connectionId (RTN15c6), and nothing acknowledged is lost or repeated.
// A missing redis-server fails the test (scripts/deps.sh test installs it).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import {
  sleep,
  uniqueChannel,
  waitUntil,
  withTimeout,
} from './lib/server.mjs';
import { Cluster } from './lib/cluster.mjs';

const APP = 'cresume';
const KEY = `${APP}.root:cresume-secret-6a1f0c3e9b2d4e71`;
const cluster = new Cluster({
  label: 'cresume',
  key: KEY,
  config: { apps: [{ id: APP, keys: [{ id: 'root', secret: KEY.split(':')[1] }] }] },
});
const { hosts: HOSTS } = cluster;

/** A client on node i that knows the other nodes as fallback hosts. */
const realtime = (i, extra = {}) =>
  cluster.realtime(i, {
    fallbackHosts: HOSTS.filter((_, j) => j !== i),
    disableConnectivityCheck: true, // no internet here: ably-js checks before it tries a fallback host
    ...extra,
  });

before(() => cluster.start());
after(() => cluster.stop());

async function connected(c) {
  if (c.connection.state !== 'connected') await withTimeout(c.connection.once('connected'), 15000, 'connected');
  return c;
}

/** Every connected event of a client, with its connectionId and reason. */
function watch(c) {
  const seen = [];
  c.connection.on('connected', (ch) => seen.push({ id: c.connection.id, reason: ch.reason?.code ?? null }));
  return seen;
}

/** Opens a raw WebSocket on node i and waits for its first ProtocolMessage (JSON). */
function rawConnect(i, query) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://${HOSTS[i]}:${cluster.nodePort}/?key=${encodeURIComponent(KEY)}&format=json&v=3${query}`);
    const t = setTimeout(() => reject(new Error('no first message')), 15000);
    ws.once('message', (d) => {
      clearTimeout(t);
      resolve({ ws, msg: JSON.parse(String(d)) });
    });
    ws.once('error', (e) => {
      clearTimeout(t);
      reject(e);
    });
  });
}

test('RTN15c6: a resume on another node keeps the connectionId, and the old node drops its copy', async () => {
  const a = await rawConnect(1, '');
  assert.equal(a.msg.action, 4, 'CONNECTED on node B');
  const { connectionId, connectionKey } = a.msg.connectionDetails ? { connectionId: a.msg.connectionId, connectionKey: a.msg.connectionDetails.connectionKey } : {};
  assert.ok(connectionId && connectionKey);
  const closedOnB = new Promise((r) => a.ws.once('close', r));
  const b = await rawConnect(2, `&resume=${encodeURIComponent(connectionKey)}`);
  assert.equal(b.msg.action, 4, 'CONNECTED on node C');
  assert.equal(b.msg.connectionId, connectionId, 'the same connectionId');
  assert.equal(b.msg.error, undefined, 'no error: continuity kept');
  await withTimeout(closedOnB, 15000, 'node B closes its old transport');
  b.ws.close();
});

test('RTN15c6: a resume on another node with a wrong connectionKey secret is a new connection with 80008', async () => {
  const a = await rawConnect(1, '');
  const { connectionId } = a.msg;
  const forged = `${connectionId}!${'A'.repeat(16)}`;
  assert.notEqual(forged, a.msg.connectionDetails.connectionKey);
  const b = await rawConnect(2, `&resume=${encodeURIComponent(forged)}`);
  assert.equal(b.msg.action, 4);
  assert.notEqual(b.msg.connectionId, connectionId, 'not taken over');
  assert.equal(b.msg.error?.code, 80008);
  // The real connection is untouched on node B.
  const open = await new Promise((resolve) => {
    const t = setTimeout(() => resolve(true), 500);
    a.ws.once('close', () => {
      clearTimeout(t);
      resolve(false);
    });
  });
  assert.ok(open, 'the connection on node B is still open');
  a.ws.send(JSON.stringify({ action: 0 }));
  const hb = await withTimeout(new Promise((r) => a.ws.once('message', (d) => r(JSON.parse(String(d))))), 10000, 'heartbeat');
  assert.equal(hb.action, 0);
  a.ws.close();
  b.ws.close();
});

test('RTN15c6/RTN19a2: kill -9 of the node holding a publisher and a subscriber: both resume elsewhere, same connectionId, every acknowledged message once, in order', async () => {
  const name = uniqueChannel('kill');
  const subClient = await connected(realtime(0));
  const pubClient = await connected(realtime(0));
  const subId = subClient.connection.id;
  const pubId = pubClient.connection.id;
  const subSeen = watch(subClient);
  const pubSeen = watch(pubClient);
  const got = [];
  const sch = subClient.channels.get(name);
  await withTimeout(sch.subscribe((m) => got.push(m.name)), 15000, 'subscribe');
  const pch = pubClient.channels.get(name);
  await withTimeout(pch.attach(), 15000, 'publisher attach');
  const acked = [];
  let stop = false;
  const pumping = (async () => {
    for (let i = 0; !stop && i < 2000; i++) {
      try {
        // No message id: a publish the dead node stored without answering
        // is resent by ably-js (RTN19a) and must be answered, not stored
        // again (RTN19a2).
        await withTimeout(pch.publish(`k${i}`, String(i)), 30000, 'publish');
        acked.push(`k${i}`);
      } catch {
        /* not acknowledged: may or may not be delivered */
      }
    }
  })();
  await waitUntil(() => acked.length >= 30, 20000, '30 acknowledged');
  await cluster.killNode(0);
  const before = acked.length;
  await waitUntil(() => acked.length >= before + 30, 30000, '30 more acknowledged after the kill');
  stop = true;
  await withTimeout(pumping, 40000, 'publisher done');
  await waitUntil(() => got.length >= acked.length, 20000, 'every acknowledged message delivered');
  await sleep(300);
  assert.equal(subClient.connection.id, subId, 'the subscriber kept its connectionId');
  assert.equal(pubClient.connection.id, pubId, 'the publisher kept its connectionId');
  for (const seen of [subSeen, pubSeen]) {
    assert.ok(seen.length >= 1, 'reconnected');
    for (const e of seen) assert.equal(e.reason, null, 'no RTN15c7 error');
  }
  assert.deepEqual(subSeen.map((e) => e.id), subSeen.map(() => subId));
  assert.deepEqual(pubSeen.map((e) => e.id), pubSeen.map(() => pubId));
  assert.deepEqual(got, acked, 'every acknowledged message exactly once, in order');
});

test('RTN16d: a recover on another node keeps the connectionId with a new connectionKey; the old key recovers no more', async () => {
  const a = await rawConnect(1, ''); // node A (0) is killed by the test above
  const { connectionId } = a.msg;
  const oldKey = a.msg.connectionDetails.connectionKey;
  const dropped = new Promise((r) => a.ws.once('close', r));
  const b = await rawConnect(2, `&recover=${encodeURIComponent(oldKey)}`);
  assert.equal(b.msg.connectionId, connectionId, 'the same connectionId');
  assert.equal(b.msg.error, undefined);
  const newKey = b.msg.connectionDetails.connectionKey;
  assert.notEqual(newKey, oldKey, 'a new connectionKey');
  // The old node learns of the take-over on {node:<id>}:conn and drops its
  // copy (closing a's socket); until then, milliseconds, it still holds the
  // connection under the old key (docs/cluster.md, "Connection records").
  await withTimeout(dropped, 10000, 'the old node drops its copy');
  const again = await rawConnect(1, `&recover=${encodeURIComponent(oldKey)}`);
  assert.notEqual(again.msg.connectionId, connectionId, 'the old key recovers no more');
  assert.equal(again.msg.error?.code, 80008);
  const resumed = await rawConnect(1, `&resume=${encodeURIComponent(newKey)}`);
  assert.equal(resumed.msg.connectionId, connectionId, 'the new key resumes it');
  for (const x of [a, b, again, resumed]) x.ws.close();
});

test('RTN12: a connection closed by its client is not resumed on another node (its record is gone)', async () => {
  const a = await rawConnect(1, '');
  const key = a.msg.connectionDetails.connectionKey;
  const closed = new Promise((r) => a.ws.once('message', (d) => r(JSON.parse(String(d)))));
  a.ws.send(JSON.stringify({ action: 7 })); // CLOSE
  assert.equal((await withTimeout(closed, 10000, 'CLOSED')).action, 8);
  a.ws.close();
  await sleep(200); // the record's DEL is on its way to Redis; the resume below reads after it
  const b = await rawConnect(2, `&resume=${encodeURIComponent(key)}`);
  assert.notEqual(b.msg.connectionId, a.msg.connectionId);
  assert.equal(b.msg.error?.code, 80008);
  b.ws.close();
});
