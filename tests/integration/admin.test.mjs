// Admin API (sandbox-compatible): POST /apps with the test app (tests/fixtures/app-setup.json),
// key capabilities enforced as in the fixture, app isolation, DELETE
// /apps/{id}, and the admin API being closed without --sandbox.
import assert from 'node:assert/strict';
import {
  useServer,
  startServer,
  bothProtocols,
  clients,
  connected,
  collector,
  createApp,
  deleteApp,
  http,
  uniqueChannel,
  withTimeout,
  settle,
  sleep,
  waitForConnectionState,
  appSetup,
  fixtureKey,
  test,
} from './lib/server.mjs';

const env = useServer({ label: 'admin' });

const normCap = (s) => {
  const o = typeof s === 'string' ? JSON.parse(s) : s;
  const out = {};
  for (const k of Object.keys(o).sort()) out[k] = [...o[k]].sort();
  return out;
};

test('sandbox admin: POST /apps returns the app with keys in fixture order, capabilities and namespaces', async () => {
  const fixture = appSetup();
  const res = await http(env.server, 'POST', '/apps', { body: fixture });
  assert.equal(res.status, 201, res.text);
  const app = res.body;
  assert.equal(typeof app.appId, 'string');
  assert.ok(app.appId.length > 0);
  assert.equal(app.keys.length, fixture.keys.length, 'one key per fixture entry');
  const names = new Set();
  app.keys.forEach((k, i) => {
    assert.equal(typeof k.keyName, 'string');
    assert.ok(k.keyName.startsWith(`${app.appId}.`), `keyName ${k.keyName} is <appId>.<keyId>`);
    assert.equal(typeof k.keySecret, 'string');
    assert.ok(k.keySecret.length >= 8, 'secret has some length');
    assert.equal(k.keyStr, `${k.keyName}:${k.keySecret}`, 'keyStr = keyName:keySecret');
    names.add(k.keyName);
    if (fixture.keys[i].capability) {
      assert.deepEqual(normCap(k.capability), normCap(fixture.keys[i].capability), `key[${i}] capability as in the fixture`);
    }
  });
  assert.equal(names.size, app.keys.length, 'key names are distinct');
  const cap0 = normCap(app.keys[0].capability);
  assert.deepEqual(cap0, { '*': ['*'] }, `key[0] gets full access as on Ably, got ${app.keys[0].capability}`);
  assert.equal(app.keys[4].revocableTokens, true, 'key[4] revocableTokens');
  const nsIds = (app.namespaces || []).map((n) => n.id).sort();
  assert.deepEqual(nsIds, ['devices', 'durable', 'editable']);
  const durable = app.namespaces.find((n) => n.id === 'durable');
  assert.equal(durable.persisted, true);
  // Keys keep the ids the fixture gives them: keyName = <appId>.<id>.
  for (const k of fixture.keys) assert.equal(fixtureKey(app, k.id).keyName, `${app.appId}.${k.id}`);

  const other = await createApp(env.server);
  assert.notEqual(other.appId, app.appId, 'each POST creates a new app');
  assert.notEqual(other.keys[0].keySecret, app.keys[0].keySecret, 'secrets are not reused across apps');
});

bothProtocols('POST /apps: a key without a capability gets Ably\'s {"*":["*"]}; RSA8/TK2b a token requested without a capability has it too (ably-js authbase0)', async (t, binary) => {
  const c = clients(t);
  const app = await createApp(env.server, { keys: [{}] });
  assert.deepEqual(JSON.parse(app.keys[0].capability), { '*': ['*'] }, `key capability ${app.keys[0].capability}`);
  const rest = c.rest(env.server, { key: app.keys[0].keyStr, binary });
  const td = await rest.auth.requestToken();
  assert.deepEqual(JSON.parse(td.capability), { '*': ['*'] }, `token capability ${td.capability}`);
  assert.equal(td.expires - td.issued, 60 * 60 * 1000, 'RSA5 default ttl');
  const client = await connected(c, env.server, { token: td.token, binary });
  const col = collector(client.channels.get(uniqueChannel('default-cap')));
  await withTimeout(col.subscribed, 5000, 'attach');
});

test('sandbox admin: POST /apps with an invalid body -> 400', async () => {
  const res = await http(env.server, 'POST', '/apps', { body: '{"keys": [', headers: { 'content-type': 'application/json' } });
  assert.equal(res.status, 400, res.text);
  assert.ok(res.headers.get('x-ably-errorcode')?.startsWith('400'), `x-ably-errorcode ${res.headers.get('x-ably-errorcode')}`);
});

test('sandbox admin: a namespace retentionSeconds beyond 100 years is refused 40000 (it would overflow as ms); 100 years is accepted', async () => {
  const big = await http(env.server, 'POST', '/apps', { body: { keys: [{}], namespaces: [{ id: 'forever', retentionSeconds: 9.2e15 }] } });
  assert.equal(big.status, 400, big.text);
  assert.equal(big.body.error.code, 40000, big.text);
  assert.match(big.body.error.message, /retentionSeconds/);
  const ok = await http(env.server, 'POST', '/apps', { body: { keys: [{}], namespaces: [{ id: 'century', retentionSeconds: 3153600000 }] } });
  assert.equal(ok.status, 201, ok.text);
});

bothProtocols('RSA11/RTN2e every fixture key connects; key[5] {"[*]*":["*"]} can publish and subscribe', async (t, binary) => {
  const c = clients(t);
  for (const [i, k] of env.app.keys.entries()) {
    const client = c.realtime(env.server, { key: k.keyStr, binary });
    await waitForConnectionState(client, 'connected', { timeoutMs: 5000 }).catch((e) => {
      throw new Error(`key[${i}] ${k.keyName}: ${e.message}`);
    });
  }
  const k5 = await connected(c, env.server, { key: env.app.keys[5].keyStr, binary });
  const name = uniqueChannel('k5');
  const col = collector(k5.channels.get(name));
  await withTimeout(col.subscribed, 5000, 'attach');
  await k5.channels.get(name).publish('m', 'k5');
  await col.until(1);
});

bothProtocols('RTL4/RTL6 key[3] {"*":["subscribe"]} can attach and subscribe but publish is refused with 40160', async (t, binary) => {
  const c = clients(t);
  const name = uniqueChannel('k3');
  const [sub, pub] = await Promise.all([
    connected(c, env.server, { key: env.app.keys[3].keyStr, binary }),
    connected(c, env.server, { key: env.app.keys[0].keyStr, binary }),
  ]);
  const ch = sub.channels.get(name);
  const col = collector(ch);
  await withTimeout(col.subscribed, 5000, 'key[3] attach');
  assert.equal(ch.state, 'attached');
  await pub.channels.get(name).publish('from-key0', 'hello');
  const [m] = await col.until(1);
  assert.equal(m.data, 'hello', 'subscribe-only key receives messages');
  const r = await withTimeout(settle(ch.publish('from-key3', 'nope')), 5000, 'key[3] publish');
  assert.equal(r.ok, false, 'publish with a subscribe-only key must be refused');
  assert.equal(r.error.code, 40160, `${r.error.code} ${r.error.message}`);
  assert.equal(sub.connection.state, 'connected');
  await sleep(200);
  assert.deepEqual(col.messages.map((x) => x.name), ['from-key0']);
  // REST too.
  const rest = c.rest(env.server, { key: env.app.keys[3].keyStr, binary });
  const rr = await settle(rest.channels.get(name).publish('x', 'y'));
  assert.equal(rr.ok, false);
  assert.equal(rr.error.code, 40160);
});

bothProtocols('RTL4/RTL6 key[1] namespace wildcards: readers:* may not publish, writers:* may publish', async (t, binary) => {
  const c = clients(t);
  const client = await connected(c, env.server, { key: env.app.keys[1].keyStr, binary });
  const ok = await settle(client.channels.get(`writers:${uniqueChannel('x')}`).publish('a', 'b'));
  assert.equal(ok.ok, true, `publish on writers:* allowed: ${ok.error?.message}`);
  const denied = await settle(client.channels.get(`readers:${uniqueChannel('x')}`).publish('a', 'b'));
  assert.equal(denied.ok, false);
  assert.equal(denied.error.code, 40160);
  const att = await settle(client.channels.get(`readers:${uniqueChannel('y')}`).attach());
  assert.equal(att.ok, true, `attach on readers:* allowed: ${att.error?.message}`);
  const elsewhere = await settle(client.channels.get(uniqueChannel('plain')).attach());
  assert.equal(elsewhere.ok, false);
  assert.equal(elsewhere.error.code, 40160);
});

bothProtocols('RTL7/RSL2 apps are isolated: same channel name in two apps does not share messages or history', async (t, binary) => {
  const c = clients(t);
  const appB = await createApp(env.server);
  const name = uniqueChannel('iso');
  const [a, b] = await Promise.all([
    connected(c, env.server, { key: env.app.keys[0].keyStr, binary }),
    connected(c, env.server, { key: appB.keys[0].keyStr, binary }),
  ]);
  const colA = collector(a.channels.get(name));
  const colB = collector(b.channels.get(name));
  await withTimeout(Promise.all([colA.subscribed, colB.subscribed]), 5000, 'attach');
  await a.channels.get(name).publish('in-a', 'one');
  await colA.until(1);
  await sleep(300);
  assert.equal(colB.messages.length, 0, 'app B does not see app A traffic');
  const hist = await c.rest(env.server, { key: appB.keys[0].keyStr, binary }).channels.get(name).history();
  assert.equal(hist.items.length, 0, 'app B history is separate');
  await deleteApp(env.server, appB.appId);
});

bothProtocols('sandbox admin: DELETE /apps/{id} -> 204; later connects and REST calls with its keys fail (40400/40101)', async (t, binary) => {
  const c = clients(t);
  const app = await createApp(env.server);
  const before = await connected(c, env.server, { key: app.keys[0].keyStr, binary });
  assert.equal(before.connection.state, 'connected', 'key works before delete');
  const del = await deleteApp(env.server, app.appId);
  assert.equal(del.status, 204, del.text);
  const client = c.realtime(env.server, { key: app.keys[0].keyStr, binary });
  const sc = await waitForConnectionState(client, 'failed', { timeoutMs: 6000, failOn: ['connected'] });
  const pair = `${sc.reason?.code}/${sc.reason?.statusCode}`;
  assert.ok([40400, 40101].includes(sc.reason?.code), `deleted app: code 40400 or 40101, got ${pair}`);
  assert.ok([404, 401].includes(sc.reason?.statusCode), `deleted app: statusCode 404 or 401, got ${pair}`);
  const rest = c.rest(env.server, { key: app.keys[0].keyStr, binary });
  const r = await settle(rest.channels.get('x').publish('a', 'b'));
  assert.equal(r.ok, false);
  assert.ok([40400, 40101].includes(r.error.code), `REST with deleted app key: ${r.error.code}`);
  const again = await deleteApp(env.server, app.appId);
  assert.equal(again.status, 404, `deleting twice -> 404, got ${again.status}`);
});

test('sandbox admin: admin API without --sandbox and without credentials -> 401', { timeout: 20_000 }, async () => {
  const server = await startServer({ sandbox: false, label: 'admin-nosandbox' });
  try {
    const res = await http(server, 'POST', '/apps', { body: appSetup() });
    assert.equal(res.status, 401, `POST /apps without credentials: ${res.status} ${res.text}`);
    const code = Number(res.headers.get('x-ably-errorcode'));
    assert.ok(code >= 40100 && code < 40200, `x-ably-errorcode 401xx, got ${code}`);
    const del = await http(server, 'DELETE', '/apps/whatever');
    assert.equal(del.status, 401, `DELETE /apps without credentials: ${del.status}`);
  } finally {
    await server.stop();
  }
});

// ably-js's node suite against a local sandbox (ABLY_LOCAL_SANDBOX_URL, used by
// conformance/ably-js) routes its clients at the endpoint/port/tls of this answer.
test('sandbox admin: POST /apps answers the routing fields endpoint, port, tls; a client routed by them connects', async (t) => {
  const res = await http(env.server, 'POST', '/apps', { body: { keys: [{}] } });
  assert.equal(res.status, 201, res.text);
  assert.equal(res.body.endpoint, env.server.host, `endpoint from the Host header: ${res.text}`);
  assert.equal(res.body.port, env.server.port);
  assert.equal(res.body.tls, false);
  const named = await http(env.server, 'POST', '/apps', { body: { keys: [{}] }, headers: { host: 'localhost' } });
  assert.equal(named.body.endpoint, 'localhost', 'a Host without a port names the host');
  assert.equal(named.body.port, 80, "and the scheme's default port");
  // Only the answer's fields route this client: the placeholder server is overridden.
  const client = clients(t).realtime({ host: 'unused.invalid', port: 1 }, {
    key: res.body.keys[0].keyStr,
    endpoint: res.body.endpoint,
    port: res.body.port,
    tls: res.body.tls,
  });
  await waitForConnectionState(client, 'connected');
});
