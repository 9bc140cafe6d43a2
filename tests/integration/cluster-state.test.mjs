// Shared app state across cluster nodes (issue 12, docs/cluster.md "Shared
// app state"): three switchboard nodes (127.0.0.2, .3, .4, the same port)
// on one redis-server this file starts on loopback and stops. Apps created
// through the admin API on one node are served by the others (and deleted
// everywhere), tokens minted on one node are accepted by the others (one
// sealing secret), a revocation through one node drops the matching
// connection on another (RSA17), a TokenRequest's nonce used on one node is
// refused on another (RSA9, 40105), a large Ably token stored on one node
// is usable on another, and a node whose subscription was lost reloads
// what changed meanwhile. Publishes here stay on one node: cross-node
// fan-out is the bus's (another part of issue 12).
import crypto from 'node:crypto';
import { after, before } from 'node:test';
import {
  appSetup,
  createApp,
  deleteApp,
  clients,
  http,
  uniqueChannel,
  waitForConnectionState,
  withTimeout,
  waitUntil,
  sleep,
  assert,
  test,
} from './lib/server.mjs';
import { Cluster } from './lib/cluster.mjs';
import { mintToken, requestTokenRaw, revokeRaw, signedTokenRequest, expectRestError } from './lib/auth.mjs';

const T = { timeout: 60_000 };
// Nodes without a config file: apps are made through the admin API (--sandbox).
const cluster = new Cluster({ label: 'cluster-state' });

before(() => cluster.start());
after(() => cluster.stop());

const [A, B, C] = [0, 1, 2].map((i) => () => cluster.nodes[i]);
const revocableKey = (app) => app.keys.find((k) => k.revocableTokens);
const rootKey = (app) => app.keys[0];

/** A realtime client on `server` authenticated by `td` (TokenDetails) through its authCallback. */
function tokenClient(set, server, td, extra = {}) {
  return set.realtime(server, { binary: false, authCallback: (_p, cb) => cb(null, td), ...extra });
}

/** Attaches, publishes one message and receives it back on the same connection. */
async function publishAndReceive(client, name) {
  const ch = client.channels.get(name);
  await withTimeout(ch.attach(), 8000, `attach ${name}`);
  const data = crypto.randomBytes(6).toString('hex');
  const got = new Promise((resolve) => ch.subscribe((m) => m.data === data && resolve(m)));
  await withTimeout(ch.publish('m', data), 8000, `publish on ${name}`);
  return withTimeout(got, 8000, `receive on ${name}`);
}

test('an app created through the admin API on node A is served by nodes B and C (key auth, realtime) and deleted everywhere by a DELETE on B', T, async (t) => {
  const set = clients(t);
  const app = await createApp(A());
  for (const node of [B(), C()]) {
    const res = await http(node, 'GET', `/apps/${app.appId}`);
    assert.equal(res.status, 200, `GET /apps/${app.appId} on ${node.host}: ${res.status} ${res.text}`);
    assert.deepEqual(res.body.keys.map((k) => k.keyName), app.keys.map((k) => k.keyName));
    const time = await http(node, 'GET', '/channels/probe/messages', { key: rootKey(app).keyStr });
    assert.equal(time.status, 200, `/time with the new app's key on ${node.host}: ${time.text}`);
  }
  const onC = set.realtime(C(), { key: rootKey(app).keyStr });
  await waitForConnectionState(onC, 'connected');
  await publishAndReceive(onC, uniqueChannel('made-on-a'));

  // The same id again, through another node: one app per id in the cluster.
  const dup = await http(B(), 'POST', '/apps', { body: { ...appSetup(), id: app.appId } });
  expectRestError(assert, dup, 40000, 400, 'a second app with the same id');

  const failed = new Promise((resolve) => onC.connection.once('failed', (ch) => resolve(ch.reason)));
  const del = await deleteApp(B(), app.appId);
  assert.equal(del.status, 204, `DELETE on B: ${del.status} ${del.text}`);
  const reason = await withTimeout(failed, 8000, 'the connection on C to fail once the app is deleted');
  assert.equal(reason?.code, 40400, `reason ${JSON.stringify(reason)}`);
  for (const node of [A(), C()]) {
    const res = await http(node, 'GET', '/channels/probe/messages', { key: rootKey(app).keyStr });
    expectRestError(assert, res, 40101, 401, `the deleted app's key on ${node.host}`);
  }
});

test('RSA17 a token minted on A is accepted on C, and a revocation through B drops the matching connection on C (40141), not the others', T, async (t) => {
  const set = clients(t);
  const app = await createApp(A());
  const k = revocableKey(app);
  const bob = await mintToken(A(), k, { clientId: 'bob' });
  const alice = await mintToken(A(), k, { clientId: 'alice' });
  const bobOnC = tokenClient(set, C(), bob, { disconnectedRetryTimeout: 60_000 });
  const aliceOnC = tokenClient(set, C(), alice);
  await waitForConnectionState(bobOnC, 'connected');
  await waitForConnectionState(aliceOnC, 'connected');
  const dropped = new Promise((resolve) =>
    bobOnC.connection.on((ch) => {
      if (ch.reason?.code === 40141) resolve(ch.reason);
    }),
  );
  const res = await revokeRaw(B(), k.keyName, { targets: ['clientId:bob'] }, { key: k.keyStr });
  assert.equal(res.status, 201, `revokeTokens on B: ${res.status} ${res.text}`);
  const reason = await withTimeout(dropped, 8000, "bob's connection on C to be dropped with 40141");
  assert.equal(reason.statusCode, 401);
  await sleep(300);
  assert.equal(aliceOnC.connection.state, 'connected', "alice's connection on C is not revoked");
  // Refused on every node now, including the one that minted it.
  for (const node of [A(), C()]) {
    const r = await http(node, 'GET', '/channels/probe/messages', { headers: { authorization: `Bearer ${Buffer.from(bob.token).toString('base64')}` } });
    expectRestError(assert, r, 40141, 401, `bob's revoked token on ${node.host}`);
  }
});

test('RSA9 a signed TokenRequest used on A is refused when replayed on B or C (40105, as on one node)', T, async () => {
  const app = await createApp(A());
  const k = rootKey(app);
  const tr = signedTokenRequest(k, { clientId: 'replayer' });
  const first = await requestTokenRaw(A(), k.keyName, tr);
  assert.equal(first.status, 200, `first use on A: ${first.status} ${first.text}`);
  for (const node of [B(), C(), A()]) {
    const again = await requestTokenRaw(node, k.keyName, tr);
    expectRestError(assert, again, 40105, 401, `the same TokenRequest replayed on ${node.host}`);
  }
  // A fresh nonce is still accepted on another node.
  const other = await requestTokenRaw(B(), k.keyName, signedTokenRequest(k, { clientId: 'replayer' }));
  assert.equal(other.status, 200, `a new TokenRequest on B: ${other.status} ${other.text}`);
});

test('TK2b a large Ably token (a "sbr1." reference) stored on A is usable on B with the ably SDK', T, async (t) => {
  const set = clients(t);
  const app = await createApp(A());
  const k = rootKey(app);
  const room = uniqueChannel('big');
  const cap = { [room]: ['publish', 'subscribe'] };
  for (let i = 0; JSON.stringify(cap).length < 19 * 1024; i++) {
    cap[`room:${i}:${crypto.randomBytes(8).toString('hex')}`] = ['subscribe'];
  }
  const td = await mintToken(A(), k, { capability: cap });
  assert.match(td.token, /^sbr1\./, 'a large token is handed out as a reference');
  const onB = tokenClient(set, B(), td);
  await waitForConnectionState(onB, 'connected');
  await publishAndReceive(onB, room);
});

test('a node whose subscription was lost reloads the whole state: an app written to Redis meanwhile is served, one removed meanwhile is deleted', T, async () => {
  const gone = await createApp(A());
  // Written behind the nodes' backs (no announcement), as if announced while
  // their subscriptions were down.
  await cluster.redis.command('DEL', `{app:${gone.appId}}:spec`);
  await cluster.redis.command('SREM', '{sw}:apps', gone.appId);
  const late = { ...appSetup(), id: `lt${crypto.randomBytes(3).toString('hex')}` };
  late.keys = [{ id: 'k1', secret: 'late-secret-0123456789' }];
  await cluster.redis.command('SET', `{app:${late.id}}:spec`, JSON.stringify(late));
  await cluster.redis.command('SADD', '{sw}:apps', late.id);
  // Still the old picture: nothing was announced.
  assert.equal((await http(C(), 'GET', `/apps/${late.id}`)).status, 404);
  const killed = await cluster.redis.command('CLIENT', 'KILL', 'TYPE', 'pubsub');
  assert.match(killed, /^:[1-9]/, `CLIENT KILL TYPE pubsub: ${killed}`);
  for (const node of [A(), B(), C()]) {
    await waitUntil(async () => (await http(node, 'GET', `/apps/${late.id}`)).status === 200, 10_000,
      `${node.host} to serve the app written while it was not listening`);
    await waitUntil(async () => (await http(node, 'GET', `/apps/${gone.appId}`)).status === 404, 10_000,
      `${node.host} to drop the app removed while it was not listening`);
    const t = await http(node, 'GET', '/channels/probe/messages', { key: `${late.id}.k1:late-secret-0123456789` });
    assert.equal(t.status, 200, `the reloaded app's key on ${node.host}: ${t.text}`);
  }
});

test('Redis unreachable: shared-state writes are refused with 50004 (never made on one node), live connections and key auth keep working; once Redis is back, writes work again and nothing acknowledged was lost', T, async (t) => {
  const set = clients(t);
  const app = await createApp(A());
  const k = revocableKey(app);
  const onB = set.realtime(B(), { key: rootKey(app).keyStr });
  await waitForConnectionState(onB, 'connected');
  const live = onB.channels.get(uniqueChannel('redis-down'));
  await withTimeout(live.attach(), 8000, 'attach before the outage');
  await cluster.redis.stop();
  await sleep(300);
  const made = await http(A(), 'POST', '/apps', { body: appSetup() });
  expectRestError(assert, made, 50004, 500, 'POST /apps while Redis is down');
  const tr = await requestTokenRaw(B(), k.keyName, signedTokenRequest(k));
  expectRestError(assert, tr, 50004, 500, 'a signed TokenRequest while Redis is down');
  const rv = await revokeRaw(C(), k.keyName, { targets: ['clientId:x'] }, { key: k.keyStr });
  expectRestError(assert, rv, 50004, 500, 'revokeTokens while Redis is down');
  assert.equal(onB.connection.state, 'connected', 'a live connection stays up');
  // Publishes go through the shared log: refused, never acknowledged unsaved.
  await assert.rejects(live.publish('during', 'the outage'), (e) => e.code === 50004);
  assert.equal(onB.connection.state, 'connected', 'the refusal does not cost the connection');
  // History reads the shared log (50004 now); channel status is the node's own.
  const read = await http(C(), 'GET', '/channels/probe', { key: rootKey(app).keyStr });
  assert.equal(read.status, 200, `key auth on C from its copy: ${read.text}`);

  await cluster.redis.start();
  const again = await waitUntil(async () => {
    const r = await http(A(), 'POST', '/apps', { body: appSetup() });
    return r.status === 201 ? r.body : null;
  }, 20_000, 'POST /apps to work again once Redis is back');
  for (const node of [B(), C()]) {
    await waitUntil(async () => (await http(node, 'GET', `/apps/${again.appId}`)).status === 200, 10_000,
      `${node.host} to serve the app made after Redis came back`);
    const before = await http(node, 'GET', `/apps/${app.appId}`);
    assert.equal(before.status, 200, `the app made before the outage is still served on ${node.host}`);
  }
  await waitUntil(async () => {
    try {
      await live.publish('after', 'the outage');
      return true;
    } catch {
      return false;
    }
  }, 20_000, 'a publish on B once its bus is back');
  // Each node reconnects on its own backoff (at most 5 s): B's claims work once it has.
  await waitUntil(async () => (await requestTokenRaw(B(), k.keyName, signedTokenRequest(k))).status === 200, 20_000,
    'a signed TokenRequest on B once Redis is back');
});
