// REST API with the real ably-js SDK (and raw fetch for headers):
// RSL1 publish (one, many), RSL1k idempotent publishing, RSL1i size limit,
// RSC16 time, RSL8 channel status, RSC19 request() in msgpack and JSON,
// error responses (ErrorInfo code/statusCode, X-Ably-ErrorCode header).
import assert from 'node:assert/strict';
import {
  useServer,
  bothProtocols,
  clients,
  connected,
  collector,
  uniqueChannel,
  withTimeout,
  settle,
  http,
  sleep,
  test,
} from './lib/server.mjs';

const env = useServer({ label: 'rest' });
const key = () => env.app.keys[0].keyStr;
const wrongSecretKey = () => `${env.app.keys[0].keyName}:definitely-not-the-secret`;

bothProtocols('RSL1a/RSL1b REST publish one and many; realtime subscriber and history see them', async (t, binary) => {
  const c = clients(t);
  const name = uniqueChannel('rsl1');
  const sub = await connected(c, env.server, { key: key(), binary });
  const col = collector(sub.channels.get(name));
  await withTimeout(col.subscribed, 5000, 'attach');
  const rest = c.rest(env.server, { key: key(), binary });
  const ch = rest.channels.get(name);
  await withTimeout(ch.publish('one', 'first'), 5000, 'publish(name, data)');
  await withTimeout(ch.publish({ name: 'obj', data: { k: [1, 2] }, extras: { headers: { h: 'v' } } }), 5000, 'publish(message)');
  await withTimeout(
    ch.publish([
      { name: 'many', data: 'm0' },
      { name: 'many', data: Buffer.from([9, 8, 7]) },
      { name: 'many', data: 'm2' },
    ]),
    5000,
    'publish([messages])',
  );
  const got = await col.until(5);
  await sleep(200);
  assert.equal(col.messages.length, 5);
  assert.deepEqual(got.map((m) => m.name), ['one', 'obj', 'many', 'many', 'many']);
  assert.equal(got[0].data, 'first');
  assert.deepEqual(got[1].data, { k: [1, 2] });
  assert.deepEqual(got[1].extras, { headers: { h: 'v' } });
  assert.ok(Buffer.isBuffer(got[3].data), 'binary stays binary');
  assert.deepEqual(Buffer.from(got[3].data), Buffer.from([9, 8, 7]));
  for (const m of got) {
    assert.equal(typeof m.id, 'string');
    assert.equal(typeof m.timestamp, 'number');
    assert.equal(typeof m.serial, 'string');
  }
  const hist = await ch.history({ direction: 'forwards' });
  assert.deepEqual(hist.items.map((m) => m.name), ['one', 'obj', 'many', 'many', 'many']);
  assert.deepEqual(hist.items.map((m) => m.id), got.map((m) => m.id), 'history ids equal delivered ids');
  assert.deepEqual(Buffer.from(hist.items[3].data), Buffer.from([9, 8, 7]));
});

bothProtocols('RSL1n REST publish resolves with serials', async (t, binary) => {
  const c = clients(t);
  const rest = c.rest(env.server, { key: key(), binary });
  const ch = rest.channels.get(uniqueChannel('rsl1n'));
  const r1 = await ch.publish('a', 'b');
  assert.ok(r1 && Array.isArray(r1.serials), `REST publish returns {serials}, got ${JSON.stringify(r1)}`);
  assert.equal(r1.serials.length, 1);
  const r2 = await ch.publish([{ data: 'x' }, { data: 'y' }]);
  assert.equal(r2.serials.length, 2);
  assert.ok(r1.serials[0] < r2.serials[0] && r2.serials[0] < r2.serials[1], 'serials increase');
});

bothProtocols('RSL1k2/RSL1k5 REST publish with an explicit id twice: history holds it once', async (t, binary) => {
  const c = clients(t);
  const name = uniqueChannel('idem-rest');
  const rest = c.rest(env.server, { key: key(), binary });
  const ch = rest.channels.get(name);
  const id = `explicit-${name}`;
  await ch.publish({ id, name: 'idem', data: 'v1' });
  await ch.publish({ id, name: 'idem', data: 'v1' });
  // RSL1k3: batch with ids, published twice.
  const batch = [
    { id: `${id}-b:0`, name: 'batch', data: 'b0' },
    { id: `${id}-b:1`, name: 'batch', data: 'b1' },
  ];
  await ch.publish(batch);
  await ch.publish(batch);
  const hist = await ch.history({ direction: 'forwards' });
  assert.deepEqual(
    hist.items.map((m) => [m.id, m.data]),
    [
      [id, 'v1'],
      [`${id}-b:0`, 'b0'],
      [`${id}-b:1`, 'b1'],
    ],
  );
});

bothProtocols('RSL1k1 library-generated ids (idempotentRestPublishing) are preserved by the server', async (t, binary) => {
  const c = clients(t);
  const name = uniqueChannel('idem-gen');
  const rest = c.rest(env.server, { key: key(), binary, idempotentRestPublishing: true });
  const ch = rest.channels.get(name);
  await ch.publish([{ data: 'a' }, { data: 'b' }]);
  const hist = await ch.history({ direction: 'forwards' });
  assert.equal(hist.items.length, 2);
  const [base0, idx0] = hist.items[0].id.split(':');
  const [base1, idx1] = hist.items[1].id.split(':');
  assert.equal(base0, base1, `ids share the generated base: ${hist.items.map((m) => m.id)}`);
  assert.deepEqual([idx0, idx1], ['0', '1']);
});

bothProtocols('RSC16 time() returns the server time in ms', async (t, binary) => {
  const c = clients(t);
  const rest = c.rest(env.server, { key: key(), binary });
  const before = Date.now();
  const time = await withTimeout(rest.time(), 5000, 'time()');
  const after = Date.now();
  assert.equal(typeof time, 'number');
  assert.ok(Number.isInteger(time), 'integer milliseconds');
  assert.ok(time >= before - 2000 && time <= after + 2000, `server time ${time} within [${before}, ${after}] +-2 s`);
});

test('RSC16 GET /time raw: JSON array with one number, no auth needed', async () => {
  const res = await http(env.server, 'GET', '/time', { headers: { accept: 'application/json' } });
  assert.equal(res.status, 200, res.text);
  assert.ok(Array.isArray(res.body) && res.body.length === 1 && typeof res.body[0] === 'number', res.text);
});

bothProtocols('RSL8 channel status(): ChannelDetails with occupancy for an attached channel', async (t, binary) => {
  const c = clients(t);
  const name = uniqueChannel('rsl8');
  const sub = await connected(c, env.server, { key: key(), binary });
  await withTimeout(sub.channels.get(name).attach(), 5000, 'attach');
  const rest = c.rest(env.server, { key: key(), binary });
  const details = await withTimeout(rest.channels.get(name).status(), 5000, 'status()');
  assert.equal(details.channelId, name);
  assert.equal(details.status?.isActive, true, `attached channel is active: ${JSON.stringify(details)}`);
  const m = details.status.occupancy?.metrics;
  assert.ok(m, `occupancy.metrics present: ${JSON.stringify(details)}`);
  for (const f of ['connections', 'presenceConnections', 'presenceMembers', 'presenceSubscribers', 'publishers', 'subscribers']) {
    assert.equal(typeof m[f], 'number', `metrics.${f} is a number`);
  }
  assert.equal(m.connections, 1, 'one connection attached');
  assert.equal(m.subscribers, 1, 'one subscriber (full-access key attaches with subscribe mode)');
  assert.equal(m.presenceMembers, 0);
});

bothProtocols('RSC19 request(): GET history and POST messages in msgpack and JSON; 404 surfaces as HttpPaginatedResponse', async (t, binary) => {
  const c = clients(t);
  const name = uniqueChannel('rsc19');
  const rest = c.rest(env.server, { key: key(), binary });
  const post = await withTimeout(
    rest.request('post', `/channels/${encodeURIComponent(name)}/messages`, 6, null, { name: 'raw', data: 'via request' }),
    5000,
    'request POST',
  );
  assert.ok(post.success, `POST success, status ${post.statusCode} ${post.errorMessage}`);
  assert.ok(post.statusCode === 201 || post.statusCode === 200, `POST status ${post.statusCode}`);
  const get = await rest.request('get', `/channels/${encodeURIComponent(name)}/messages`, 6, { limit: '10' }, null);
  assert.equal(get.statusCode, 200);
  assert.equal(get.success, true);
  assert.equal(get.items.length, 1);
  assert.equal(get.items[0].name, 'raw');
  assert.equal(get.items[0].data, 'via request');
  const ct = get.headers['content-type'] ?? get.headers['Content-Type'];
  assert.match(String(ct), binary ? /application\/x-msgpack/ : /application\/json/, 'response content type follows the Accept format');
  const missing = await rest.request('get', '/this/route/does/not/exist', 6, null, null);
  assert.equal(missing.statusCode, 404);
  assert.equal(missing.success, false);
  assert.equal(missing.errorCode, 40400);
  assert.equal(typeof missing.errorMessage, 'string');
});

bothProtocols('RSC19 request(): GET /channels/{id} and /time work through request()', async (t, binary) => {
  const c = clients(t);
  const rest = c.rest(env.server, { key: key(), binary });
  const name = uniqueChannel('rsc19b');
  const r = await rest.request('get', `/channels/${encodeURIComponent(name)}`, 6, null, null);
  assert.equal(r.statusCode, 200);
  assert.equal(r.items[0].channelId, name);
  const time = await rest.request('get', '/time', 6, null, null);
  assert.equal(time.statusCode, 200);
  assert.equal(typeof time.items[0], 'number');
});

bothProtocols('TI1/RSC REST errors: wrong secret -> ErrorInfo 40101/401', async (t, binary) => {
  const c = clients(t);
  const rest = c.rest(env.server, { key: wrongSecretKey(), binary });
  const r = await settle(rest.channels.get(uniqueChannel('bad')).publish('x', 'y'));
  assert.equal(r.ok, false, 'publish with a wrong secret must fail');
  assert.equal(r.error.code, 40101);
  assert.equal(r.error.statusCode, 401);
  const h = await settle(rest.channels.get(uniqueChannel('bad')).history());
  assert.equal(h.ok, false);
  assert.equal(h.error.code, 40101);
});

bothProtocols('RSL1i REST publish above maxMessageSize is rejected by the server with 40009', async (t, binary) => {
  const c = clients(t);
  const rest = c.rest(env.server, { key: key(), binary });
  rest.options.maxMessageSize = 16 * 1024 * 1024; // bypass the SDK-side check so the server decides
  const name = uniqueChannel('toobig');
  const r = await settle(rest.channels.get(name).publish('big', 'x'.repeat(70_000)));
  assert.equal(r.ok, false, 'a 70000-byte message must be rejected (limit 65536)');
  assert.equal(r.error.code, 40009);
  assert.equal(r.error.statusCode, 400);
  const ok = await settle(rest.channels.get(name).publish('small', 'x'.repeat(60_000)));
  assert.equal(ok.ok, true, `a 60000-byte message is accepted: ${ok.error?.message}`);
});

test('TI1/RSC7 HTTP errors carry X-Ably-ErrorCode and an error body (raw fetch)', async () => {
  const name = uniqueChannel('raw');
  const wrong = await http(env.server, 'GET', `/channels/${name}/messages`, {
    key: wrongSecretKey(),
    headers: { accept: 'application/json' },
  });
  assert.equal(wrong.status, 401);
  assert.equal(wrong.headers.get('x-ably-errorcode'), '40101');
  assert.equal(wrong.body?.error?.code, 40101, wrong.text);
  assert.equal(wrong.body?.error?.statusCode, 401, wrong.text);
  assert.equal(typeof wrong.body?.error?.message, 'string');

  const noAuth = await http(env.server, 'GET', `/channels/${name}/messages`, { headers: { accept: 'application/json' } });
  assert.equal(noAuth.status, 401, noAuth.text);
  const code = Number(noAuth.headers.get('x-ably-errorcode'));
  assert.ok(code >= 40100 && code < 40200, `no credentials -> 401xx, got ${code}`);
  assert.equal(noAuth.body?.error?.code, code);

  const notFound = await http(env.server, 'GET', '/definitely/not/a/route', {
    key: env.app.keys[0].keyStr,
    headers: { accept: 'application/json' },
  });
  assert.equal(notFound.status, 404);
  assert.equal(notFound.headers.get('x-ably-errorcode'), '40400');
  assert.equal(notFound.body?.error?.code, 40400);

  const badBody = await http(env.server, 'POST', `/channels/${name}/messages`, {
    key: env.app.keys[0].keyStr,
    headers: { accept: 'application/json', 'content-type': 'application/json' },
    body: '{"name": "x", "data": ',
  });
  assert.equal(badBody.status, 400, badBody.text);
  const badCode = badBody.headers.get('x-ably-errorcode');
  assert.ok(badCode === '40000' || badCode === '40001', `malformed JSON body -> 40000/40001, got ${badCode}`);
  assert.equal(String(badBody.body?.error?.code), badCode);

  const ok = await http(env.server, 'POST', `/channels/${name}/messages`, {
    key: env.app.keys[0].keyStr,
    headers: { accept: 'application/json' },
    body: { name: 'raw', data: 'ok' },
  });
  assert.ok(ok.status === 201 || ok.status === 200, `raw publish ok: ${ok.status} ${ok.text}`);
  assert.equal(ok.headers.get('x-ably-errorcode'), null, 'no error header on success');
});

test('RSA11 REST: API key as the key query param authenticates; CORS headers on responses and preflight', async () => {
  const name = uniqueChannel('keyparam');
  const k = encodeURIComponent(env.app.keys[0].keyStr);
  const post = await http(env.server, 'POST', `/channels/${name}/messages?key=${k}`, {
    headers: { accept: 'application/json', origin: 'http://example.test' },
    body: { name: 'kp', data: 'via key param' },
  });
  assert.ok(post.status === 201 || post.status === 200, `${post.status} ${post.text}`);
  const get = await http(env.server, 'GET', `/channels/${name}/messages?key=${k}`, {
    headers: { accept: 'application/json', origin: 'http://example.test' },
  });
  assert.equal(get.status, 200, get.text);
  assert.deepEqual(get.body.map((m) => m.data), ['via key param']);
  assert.ok(get.headers.get('access-control-allow-origin'), 'CORS allow-origin on a normal response');
  const wrong = await http(env.server, 'GET', `/channels/${name}/messages?key=${encodeURIComponent(env.app.keys[0].keyName + ':bad')}`, {
    headers: { accept: 'application/json', origin: 'http://example.test' },
  });
  assert.equal(wrong.status, 401);
  assert.equal(wrong.headers.get('x-ably-errorcode'), '40101');
  const pre = await http(env.server, 'OPTIONS', `/channels/${name}/messages`, {
    headers: {
      origin: 'http://example.test',
      'access-control-request-method': 'POST',
      'access-control-request-headers': 'authorization,content-type,x-ably-version',
    },
  });
  assert.ok(pre.status === 204 || pre.status === 200, `preflight status ${pre.status}`);
  assert.ok(pre.headers.get('access-control-allow-origin'), 'preflight allow-origin');
  assert.match(String(pre.headers.get('access-control-allow-methods')), /POST/i);
  assert.notEqual(wrong.headers.get('x-ably-errormessage'), null, 'X-Ably-ErrorMessage header on errors');
  // Browsers can only read the error headers if CORS exposes them.
  const exposed = String(wrong.headers.get('access-control-expose-headers') ?? '');
  assert.ok(/x-ably-errorcode/i.test(exposed) || exposed === '*', `X-Ably-ErrorCode exposed via CORS: "${exposed}"`);
});

bothProtocols('TM2h publish on behalf of a realtime connection: a REST message with that connection\'s connectionKey is attributed to it (connectionId); a key that names no live connection, or a connectionId without one, is 40006 (ably-js "publish a message on behalf of a Realtime connection")', async (t, binary) => {
  const c = clients(t);
  const k = env.app.keys[0].keyStr;
  const realtime = await connected(c, env.server, { key: k, binary });
  const name = uniqueChannel('on-behalf');
  const col = collector(realtime.channels.get(name));
  await withTimeout(col.subscribed, 5000, 'attach');
  const rest = c.rest(env.server, { key: k, binary });
  const rch = rest.channels.get(name);
  await rch.publish({ name: 'foo', data: 'bar', connectionKey: realtime.connection.key });
  const [m] = await col.until(1, 5000);
  assert.equal(m.connectionId, realtime.connection.id, 'attributed to the realtime connection');
  const h = (await rch.history()).items[0];
  assert.equal(h.connectionId, realtime.connection.id, 'in history too');
  for (const [label, msg] of [
    ['a key of no live connection', { data: 'x', connectionKey: 'AAAAAAAAAAAA!BBBBBBBBBBBBBBBB' }],
    ['a malformed key', { data: 'x', connectionKey: 'nonsense' }],
    ['a connectionId without a key', { data: 'x', connectionId: realtime.connection.id }],
    ['another connection\'s id with the key', { data: 'x', connectionKey: realtime.connection.key, connectionId: 'someoneelse' }],
  ]) {
    const r = await settle(rch.publish(msg));
    assert.equal(r.ok, false, `${label}: refused`);
    assert.equal(r.error.code, 40006, `${label}: ${r.error.code} ${r.error.message}`);
    assert.equal(r.error.statusCode, 400);
  }
  await sleep(200);
  assert.equal(col.messages.length, 1, 'nothing else was published');
});

test('TM2h raw: on behalf of an identified connection, the message takes its clientId; a REST client identified as another is refused 40006', async (t) => {
  const c = clients(t);
  const k = env.app.keys[0].keyStr;
  const alice = await connected(c, env.server, { key: k, clientId: 'alice' });
  const name = uniqueChannel('on-behalf-id');
  const col = collector(alice.channels.get(name));
  await withTimeout(col.subscribed, 5000, 'attach');
  let r = await http(env.server, 'POST', `/channels/${name}/messages`, { key: k, body: { data: 'hi', connectionKey: alice.connection.key } });
  assert.equal(r.status, 201, r.text);
  const [m] = await col.until(1, 5000);
  assert.equal(m.clientId, 'alice');
  assert.equal(m.connectionId, alice.connection.id);
  r = await http(env.server, 'POST', `/channels/${name}/messages`, { key: k, body: { data: 'hi', clientId: 'bob', connectionKey: alice.connection.key } });
  assert.equal(r.status, 400, r.text);
  assert.equal(r.body.error.code, 40006);
});
