// Error handling, with exact Ably error codes:
// 40010 invalid channel name (RTL4 attach -> channel FAILED, RTL14),
// 40009 message too large (RSL1i / RTN7 NACK),
// 40101 / 40400 bad credentials (RTN14a, RTN14g ERROR frame),
// 40160 capability denied (attach and publish),
// raw-WebSocket protocol errors: 40000 malformed frame / unknown action,
// 40017 unsupported protocol version.
import assert from 'node:assert/strict';
import {
  useServer,
  bothProtocols,
  clients,
  connected,
  collector,
  uniqueChannel,
  http,
  withTimeout,
  settle,
  sleep,
  waitForConnectionState,
  rawWs,
  ACTION,
  test,
} from './lib/server.mjs';

const env = useServer({ label: 'errors' });
const key = (i = 0) => env.app.keys[i].keyStr;

async function assertRoundTrip(c, client, binary, label) {
  const name = uniqueChannel('alive');
  const col = collector(client.channels.get(name));
  await withTimeout(col.subscribed, 5000, `${label}: attach valid channel`);
  await withTimeout(client.channels.get(name).publish('ping', 'pong'), 5000, `${label}: publish`);
  const [m] = await col.until(1, 5000);
  assert.equal(m.data, 'pong', `${label}: round trip works`);
}

const INVALID_NAMES = ['[unterminated-qualifier', ':leading-colon', 'has\nnewline'];

bothProtocols('RTL4/RTL14 attach to an invalid channel name -> channel FAILED 40010, connection stays CONNECTED', async (t, binary) => {
  const c = clients(t);
  const client = await connected(c, env.server, { key: key(), binary });
  for (const bad of INVALID_NAMES) {
    const label = JSON.stringify(bad);
    const ch = client.channels.get(bad);
    const r = await withTimeout(settle(ch.attach()), 6000, `attach ${label} to settle`);
    assert.equal(r.ok, false, `attach ${label} must fail`);
    assert.equal(r.error.code, 40010, `attach ${label}: error code (got ${r.error.code} ${r.error.message})`);
    assert.equal(r.error.statusCode, 400, `attach ${label}: statusCode`);
    assert.equal(ch.state, 'failed', `channel ${label} is FAILED`);
    assert.equal(ch.errorReason?.code, 40010);
    assert.equal(client.connection.state, 'connected', `connection stays CONNECTED after ${label}`);
  }
  await assertRoundTrip(c, client, binary, 'after invalid names');
});

bothProtocols('RSL1i/RTN7 publish larger than maxMessageSize -> NACK 40009, connection stays up', async (t, binary) => {
  const c = clients(t);
  const [pub, sub] = await Promise.all([
    connected(c, env.server, { key: key(), binary }),
    connected(c, env.server, { key: key(), binary }),
  ]);
  const max = pub.connection.connectionManager.connectionDetails.maxMessageSize;
  assert.equal(max, 65536, 'default maxMessageSize');
  pub.options.maxMessageSize = 16 * 1024 * 1024; // bypass the SDK-side check: the server must enforce it
  const name = uniqueChannel('toolarge');
  const col = collector(sub.channels.get(name));
  await withTimeout(col.subscribed, 5000, 'attach');
  const ch = pub.channels.get(name);
  const r = await withTimeout(settle(ch.publish('big', 'x'.repeat(max + 5000))), 6000, 'oversized publish to settle');
  assert.equal(r.ok, false, 'oversized publish must be rejected');
  assert.equal(r.error.code, 40009, `code (got ${r.error.code} ${r.error.message})`);
  assert.equal(r.error.statusCode, 400);
  assert.equal(pub.connection.state, 'connected', 'connection stays CONNECTED');
  const small = await withTimeout(settle(ch.publish('small', 'ok')), 5000, 'follow-up publish');
  assert.equal(small.ok, true, `follow-up publish succeeds: ${small.error?.message}`);
  await col.until(1);
  await sleep(300);
  assert.deepEqual(col.messages.map((m) => m.name), ['small'], 'oversized message never delivered');
});

bothProtocols('RTN14a wrong key secret -> connection FAILED with 40101/401', async (t, binary) => {
  const c = clients(t);
  const client = c.realtime(env.server, { key: `${env.app.keys[0].keyName}:wrong-secret`, binary });
  const sc = await waitForConnectionState(client, 'failed', { timeoutMs: 6000, failOn: ['connected'] });
  // A refused upgrade would leave ably-js DISCONNECTED and retrying; FAILED
  // with this code requires an ERROR protocol message (RTN14g).
  assert.equal(sc.reason?.code, 40101, `reason: ${JSON.stringify(sc.reason)}`);
  assert.equal(sc.reason?.statusCode, 401);
  assert.equal(client.connection.errorReason?.code, 40101);
});

bothProtocols('RTN14a a key of an unknown app or an unknown key of a real app -> FAILED with 40101/401, like a wrong secret (ably-js invalid_cred_failure: key "this.is:wrong"); REST the same', async (t, binary) => {
  const c = clients(t);
  for (const bogus of ['this.is:wrong', 'nosuchapp.nosuchkey:secret', `${env.app.appId}.nosuchkey:secret`]) {
    const client = c.realtime(env.server, { key: bogus, binary });
    const sc = await waitForConnectionState(client, 'failed', { timeoutMs: 6000, failOn: ['connected'] });
    const pair = `${sc.reason?.code}/${sc.reason?.statusCode}`;
    assert.equal(pair, '40101/401', `${bogus}: ${pair} ${sc.reason?.message}`);
    assert.equal(client.connection.errorReason?.code, 40101);
    const r = await http(env.server, 'GET', `/channels/${uniqueChannel('k')}/messages`, { key: bogus });
    assert.equal(r.status, 401, `${bogus} over REST: ${r.text}`);
    assert.equal(r.body?.error?.code, 40101);
  }
});

test('RTN14g wrong secret over a raw WebSocket: an ERROR frame (not a refused upgrade), then close', async () => {
  const ws = rawWs(env.server, { key: `${env.app.keys[0].keyName}:nope`, v: '6', format: 'json' });
  try {
    await ws.opened; // throws with the HTTP status if the upgrade was refused
    const err = await ws.next((f) => f.action === ACTION.ERROR, 5000, 'ERROR frame');
    assert.equal(err.error?.code, 40101, JSON.stringify(err));
    assert.equal(err.error?.statusCode, 401);
    assert.equal(err.channel ?? null, null, 'connection-level ERROR has no channel');
    assert.ok(!ws.frames.some((f) => f.action === ACTION.CONNECTED), 'never CONNECTED');
    await withTimeout(ws.closed, 5000, 'server closes the socket after ERROR');
  } finally {
    ws.terminate();
  }
});

bothProtocols('RTL4/RTL6 40160 capability denied: keys[2] attach outside its capability fails, publish on subscribe-only channel is refused', async (t, binary) => {
  const c = clients(t);
  const k2 = env.app.keys[2];
  assert.match(k2.capability, /sub-only/, 'fixture key[2] is the per-channel key ("channels")');
  const client = await connected(c, env.server, { key: k2.keyStr, binary });
  // Positive controls so this test cannot pass by refusing everything.
  const ch3 = client.channels.get('sub-only');
  await withTimeout(ch3.attach(), 5000, 'attach sub-only (subscribe allowed)');
  const ok0 = await withTimeout(settle(client.channels.get('pub-1').publish('p', 'allowed')), 5000, 'publish pub-1');
  assert.equal(ok0.ok, true, `publish on pub-1 is allowed: ${ok0.error?.message}`);

  const nope = client.channels.get('nope');
  const a = await withTimeout(settle(nope.attach()), 6000, 'attach nope');
  assert.equal(a.ok, false, 'attach outside capability must fail');
  assert.equal(a.error.code, 40160, `attach: ${a.error.code} ${a.error.message}`);
  assert.equal(a.error.statusCode, 401);
  assert.equal(nope.state, 'failed');
  assert.equal(client.connection.state, 'connected');

  const p = await withTimeout(settle(ch3.publish('p', 'denied')), 6000, 'publish sub-only');
  assert.equal(p.ok, false, 'publish on the subscribe-only channel sub-only must be refused');
  assert.equal(p.error.code, 40160, `publish: ${p.error.code} ${p.error.message}`);
  assert.equal(p.error.statusCode, 401);
  assert.equal(client.connection.state, 'connected', 'connection survives a capability NACK');

  // The refused message must not reach subscribers or history.
  const rest = c.rest(env.server, { key: key(), binary });
  const hist = await rest.channels.get('sub-only').history();
  assert.ok(!hist.items.some((m) => m.data === 'denied'), 'denied message not stored');
});

bothProtocols('RSL1/RSL2 40160 REST: keys[2] history/publish outside capability are refused', async (t, binary) => {
  const c = clients(t);
  const rest = c.rest(env.server, { key: env.app.keys[2].keyStr, binary });
  const p = await settle(rest.channels.get('sub-only').publish('x', 'y'));
  assert.equal(p.ok, false);
  assert.equal(p.error.code, 40160);
  assert.equal(p.error.statusCode, 401);
  const ok = await settle(rest.channels.get('pub-1').publish('x', 'y'));
  assert.equal(ok.ok, true, `REST publish on pub-1 allowed: ${ok.error?.message}`);
});

test('RTN15j raw WebSocket: garbage JSON text frame -> ERROR 40000 then close; another client keeps working', { timeout: 30_000 }, async (t) => {
  const c = clients(t);
  const bystander = await connected(c, env.server, { key: key(), binary: false });
  const ws = rawWs(env.server, { key: key(), v: '6', format: 'json' });
  try {
    await ws.opened;
    const conn = await ws.next((f) => f.action === ACTION.CONNECTED, 5000, 'CONNECTED');
    assert.equal(typeof conn.connectionId, 'string');
    assert.equal(typeof conn.connectionDetails?.connectionKey, 'string');
    ws.send('{"action": 10, "channel": "x"'); // truncated JSON
    const err = await ws.next((f) => f.action === ACTION.ERROR, 5000, 'ERROR frame');
    assert.equal(err.error?.code, 40000, JSON.stringify(err));
    assert.equal(err.channel ?? null, null);
    await withTimeout(ws.closed, 5000, 'server closes the socket after a fatal ERROR');
  } finally {
    ws.terminate();
  }
  assert.equal(bystander.connection.state, 'connected', 'bystander still connected');
  await assertRoundTrip(c, bystander, false, 'bystander');
});

test('RTN15j raw WebSocket: unknown action number -> ERROR 40000', async (t) => {
  const ws = rawWs(env.server, { key: key(), v: '6', format: 'json' });
  try {
    await ws.opened;
    await ws.next((f) => f.action === ACTION.CONNECTED, 5000, 'CONNECTED');
    ws.send({ action: 99, channel: 'whatever' });
    const err = await ws.next((f) => f.action === ACTION.ERROR, 5000, 'ERROR frame');
    assert.equal(err.error?.code, 40000, JSON.stringify(err));
  } finally {
    ws.terminate();
  }
});

test('RTN15j raw WebSocket: a JSON text frame that is not an object -> ERROR 40000', async () => {
  const ws = rawWs(env.server, { key: key(), v: '6', format: 'json' });
  try {
    await ws.opened;
    await ws.next((f) => f.action === ACTION.CONNECTED, 5000, 'CONNECTED');
    ws.send('[1,2,3]');
    const err = await ws.next((f) => f.action === ACTION.ERROR, 5000, 'ERROR frame');
    assert.equal(err.error?.code, 40000, JSON.stringify(err));
  } finally {
    ws.terminate();
  }
});

for (const v of ['99', 'banana']) {
  test(`RTN2f raw WebSocket with unsupported protocol version v=${v} -> ERROR 40017`, async () => {
    const ws = rawWs(env.server, { key: key(), v, format: 'json' });
    try {
      await ws.opened;
      const err = await ws.next((f) => f.action === ACTION.ERROR, 5000, 'ERROR frame');
      assert.equal(err.error?.code, 40017, JSON.stringify(err));
      assert.equal(err.error?.statusCode, 400);
      assert.ok(!ws.frames.some((f) => f.action === ACTION.CONNECTED), 'never CONNECTED');
      await withTimeout(ws.closed, 5000, 'close after ERROR');
    } finally {
      ws.terminate();
    }
  });
}

bothProtocols('RTN2f ably-js with an unsupported v transport param -> FAILED 40017', async (t, binary) => {
  const c = clients(t);
  const client = c.realtime(env.server, { key: key(), binary, transportParams: { v: '99' } });
  const sc = await waitForConnectionState(client, 'failed', { timeoutMs: 6000, failOn: ['connected'] });
  assert.equal(sc.reason?.code, 40017, JSON.stringify(sc.reason));
});

test('RTN2a/TR4s raw WebSocket: v=6 format=json connection gets CONNECTED with connectionDetails and JSON framing', async () => {
  const ws = rawWs(env.server, { key: key(), v: '6', format: 'json' });
  try {
    await ws.opened;
    const conn = await ws.next((f) => f.action === ACTION.CONNECTED, 5000, 'CONNECTED');
    const cd = conn.connectionDetails;
    assert.equal(typeof conn.connectionId, 'string');
    assert.equal(typeof cd.connectionKey, 'string');
    assert.equal(cd.maxMessageSize, 65536);
    assert.equal(typeof cd.connectionStateTtl, 'number');
    assert.equal(typeof cd.maxIdleInterval, 'number');
    assert.equal(typeof cd.serverId, 'string');
    // ATTACH then MESSAGE: expect ATTACHED, ACK with serials (TR4s), and the echo.
    const name = uniqueChannel('rawjson');
    ws.send({ action: ACTION.ATTACH, channel: name });
    const attached = await ws.next((f) => f.action === ACTION.ATTACHED && f.channel === name, 5000, 'ATTACHED');
    assert.equal(attached.channel, name);
    ws.send({ action: ACTION.MESSAGE, channel: name, msgSerial: 0, messages: [{ name: 'n', data: 'd' }] });
    const ack = await ws.next((f) => f.action === ACTION.ACK, 5000, 'ACK');
    assert.equal(ack.msgSerial, 0);
    assert.equal(ack.count, 1);
    assert.ok(Array.isArray(ack.res) && Array.isArray(ack.res[0]?.serials), `ACK carries res[].serials: ${JSON.stringify(ack)}`);
    const msg = await ws.next((f) => f.action === ACTION.MESSAGE && f.channel === name, 5000, 'MESSAGE echo');
    assert.equal(msg.messages[0].name, 'n');
    assert.equal(msg.messages[0].data, 'd');
    assert.equal(typeof msg.channelSerial, 'string', 'MESSAGE carries channelSerial (RTL15b)');
    assert.equal(msg.messages[0].serial, ack.res[0].serials[0], 'delivered serial equals ACKed serial');
    // Ably sets id/connectionId/timestamp on the ProtocolMessage or each message.
    assert.equal(msg.connectionId ?? msg.messages[0].connectionId, conn.connectionId);
    assert.equal(typeof (msg.timestamp ?? msg.messages[0].timestamp), 'number');
    assert.equal(typeof (msg.id ?? msg.messages[0].id), 'string');
  } finally {
    ws.terminate();
  }
});

test('RTN2a/RTN15j raw WebSocket format=msgpack: binary CONNECTED, MESSAGE -> ACK, then an undecodable binary frame -> ERROR 40000 and close', async () => {
  const ws = rawWs(env.server, { key: key(), v: '6', format: 'msgpack' });
  try {
    await ws.opened;
    const conn = await ws.next((f) => f.action === ACTION.CONNECTED, 5000, 'CONNECTED');
    assert.equal(conn.__binary, true, 'format=msgpack frames are binary');
    assert.equal(typeof conn.connectionId, 'string');
    const name = uniqueChannel('rawmp');
    ws.sendMsgpack({ action: ACTION.MESSAGE, channel: name, msgSerial: 0, messages: [{ name: 'n', data: Buffer.from([1, 2, 3]) }] });
    const ack = await ws.next((f) => f.action === ACTION.ACK || f.action === ACTION.NACK, 5000, 'ACK');
    assert.equal(ack.action, ACTION.ACK, JSON.stringify(ack));
    assert.equal(ack.msgSerial, 0);
    ws.send(Buffer.from([0xc1, 0xc1, 0xc1])); // 0xc1 is never used in msgpack
    const err = await ws.next((f) => f.action === ACTION.ERROR, 5000, 'ERROR frame');
    assert.equal(err.__binary, true, 'ERROR is msgpack-encoded on a msgpack connection');
    assert.equal(err.error?.code, 40000, JSON.stringify(err));
    await withTimeout(ws.closed, 5000, 'close after fatal ERROR');
  } finally {
    ws.terminate();
  }
  const rest = new (await import('ably')).default.Rest({ key: key(), endpoint: env.server.host, port: env.server.port, tls: false, logLevel: 0 });
  const hist = await rest.channels.get('x').history().catch((e) => e);
  assert.ok(!(hist instanceof Error), 'server still serves requests');
});

test('RTL6 raw WebSocket: MESSAGE frame larger than maxMessageSize -> NACK 40009 with the msgSerial, connection stays', async () => {
  const ws = rawWs(env.server, { key: key(), v: '6', format: 'json' });
  try {
    await ws.opened;
    await ws.next((f) => f.action === ACTION.CONNECTED, 5000, 'CONNECTED');
    const name = uniqueChannel('rawbig');
    ws.send({ action: ACTION.MESSAGE, channel: name, msgSerial: 0, messages: [{ name: 'big', data: 'y'.repeat(70_000) }] });
    const nack = await ws.next((f) => f.action === ACTION.NACK || f.action === ACTION.ACK, 5000, 'NACK');
    assert.equal(nack.action, ACTION.NACK, JSON.stringify(nack).slice(0, 300));
    assert.equal(nack.msgSerial, 0);
    assert.equal(nack.count, 1);
    assert.equal(nack.error?.code, 40009);
    ws.send({ action: ACTION.MESSAGE, channel: name, msgSerial: 1, messages: [{ name: 'ok', data: 'small' }] });
    const ack = await ws.next((f) => f.action === ACTION.ACK, 5000, 'ACK for the next message');
    assert.equal(ack.msgSerial, 1);
  } finally {
    ws.terminate();
  }
});
