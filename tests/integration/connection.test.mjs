// Connection lifecycle with the real ably-js SDK: RTN2, RTN4, RTN8, RTN9, RTN21, RTN12.
import assert from 'node:assert/strict';
import {
  useServer,
  bothProtocols,
  clients,
  connected,
  waitForConnectionState,
  withTimeout,
  rawWs,
  ACTION,
  sleep,
  test,
} from './lib/server.mjs';

const env = useServer({ label: 'connection' });

bothProtocols('RTN2/RTN4b/RTN6 connect emits CONNECTING then CONNECTED and sets id and key', async (t, binary) => {
  const c = clients(t);
  const client = c.realtime(env.server, { key: env.app.keys[0].keyStr, binary, autoConnect: false });
  const events = [];
  client.connection.on((sc) => events.push({ current: sc.current, previous: sc.previous, reason: sc.reason }));
  assert.equal(client.connection.state, 'initialized');
  assert.equal(client.connection.id, undefined, 'RTN8a id unset before connecting');
  client.connect();
  const sc = await waitForConnectionState(client, 'connected');
  assert.equal(sc.current, 'connected');
  assert.equal(sc.reason, undefined, `CONNECTED should carry no error, got ${JSON.stringify(sc.reason)}`);
  assert.deepEqual(
    events.map((e) => e.current),
    ['connecting', 'connected'],
    'RTN4b: CONNECTING then CONNECTED, nothing else',
  );
  assert.equal(typeof client.connection.id, 'string');
  assert.ok(client.connection.id.length > 0, 'connection.id non-empty');
  assert.equal(typeof client.connection.key, 'string');
  assert.ok(client.connection.key.length > 0, 'connection.key non-empty');
  assert.equal(client.connection.errorReason, null, 'no errorReason after a clean connect');
});

bothProtocols('RTN21 CONNECTED carries connectionDetails (maxMessageSize, connectionStateTtl, maxIdleInterval, serverId, connectionKey)', async (t, binary) => {
  const c = clients(t);
  const client = await connected(c, env.server, { key: env.app.keys[0].keyStr, binary });
  const cd = client.connection.connectionManager.connectionDetails;
  assert.ok(cd && typeof cd === 'object', 'connectionDetails present');
  assert.equal(typeof cd.maxMessageSize, 'number');
  assert.ok(cd.maxMessageSize > 0, `maxMessageSize > 0 (got ${cd.maxMessageSize})`);
  assert.equal(cd.maxMessageSize, 65536, 'default maxMessageSize is 65536');
  assert.equal(typeof cd.connectionStateTtl, 'number');
  assert.ok(cd.connectionStateTtl > 0, `connectionStateTtl > 0 (got ${cd.connectionStateTtl})`);
  assert.equal(typeof cd.maxIdleInterval, 'number');
  assert.ok(cd.maxIdleInterval > 0, `maxIdleInterval > 0 (got ${cd.maxIdleInterval})`);
  assert.equal(typeof cd.serverId, 'string');
  assert.ok(cd.serverId.length > 0, 'serverId non-empty');
  assert.equal(cd.connectionKey, client.connection.key, 'connectionDetails.connectionKey is the connection key');
  // RTN21: the details override the client's defaults.
  assert.equal(client.options.maxMessageSize, cd.maxMessageSize);
  if (cd.clientId !== undefined && cd.clientId !== null) {
    assert.equal(typeof cd.clientId, 'string');
  }
});

bothProtocols('RTN8b/RTN9b two connections get distinct ids and keys', async (t, binary) => {
  const c = clients(t);
  const key = env.app.keys[0].keyStr;
  const [a, b] = await Promise.all([
    connected(c, env.server, { key, binary }),
    connected(c, env.server, { key, binary }),
  ]);
  assert.notEqual(a.connection.id, b.connection.id);
  assert.notEqual(a.connection.key, b.connection.key);
});

bothProtocols('RTN2d connection with clientId reports it in connectionDetails and auth.clientId', async (t, binary) => {
  const c = clients(t);
  const client = await connected(c, env.server, { key: env.app.keys[0].keyStr, binary, clientId: 'carol' });
  const cd = client.connection.connectionManager.connectionDetails;
  assert.equal(cd.clientId, 'carol', 'connectionDetails.clientId echoes the requested clientId');
  assert.equal(client.auth.clientId, 'carol');
});

bothProtocols('RTN12a/RTN4c close() goes CLOSING then CLOSED; id and key cleared (RTN8d/RTN9d)', async (t, binary) => {
  const c = clients(t);
  const client = await connected(c, env.server, { key: env.app.keys[0].keyStr, binary });
  const events = [];
  client.connection.on((sc) => events.push(sc));
  client.close();
  await waitForConnectionState(client, 'closed', { timeoutMs: 5000, failOn: ['failed'] });
  // Note: ably-js sends CLOSE and finishes the transport without waiting
  // for CLOSED; the server side of RTN12a is checked with a raw socket below.
  assert.deepEqual(
    events.map((e) => e.current),
    ['closing', 'closed'],
  );
  assert.equal(client.connection.id ?? null, null, 'RTN8d id cleared when CLOSED');
  assert.equal(client.connection.key ?? null, null, 'RTN9d key cleared when CLOSED');
});

test('RTN12a raw WebSocket: CLOSE is answered with CLOSED, the socket is closed, and the connection cannot be resumed', async () => {
  const key = env.app.keys[0].keyStr;
  const ws = rawWs(env.server, { key, v: '6', format: 'json' });
  let connKey;
  let connId;
  try {
    await ws.opened;
    const conn = await ws.next((f) => f.action === ACTION.CONNECTED, 5000, 'CONNECTED');
    connKey = conn.connectionDetails?.connectionKey ?? conn.connectionKey;
    connId = conn.connectionId;
    assert.equal(typeof connKey, 'string');
    ws.send({ action: ACTION.CLOSE });
    const closed = await ws.next((f) => f.action === ACTION.CLOSED, 5000, 'CLOSED');
    assert.equal(closed.action, ACTION.CLOSED);
    await withTimeout(ws.closed, 5000, 'server closes the socket after CLOSED');
  } finally {
    ws.terminate();
  }
  // A closed connection's state is discarded: resuming it gives a new
  // connection with an error (RTN15c7).
  const again = rawWs(env.server, { key, v: '6', format: 'json', resume: connKey });
  try {
    await again.opened;
    const conn2 = await again.next((f) => f.action === ACTION.CONNECTED || f.action === ACTION.ERROR, 5000, 'CONNECTED after resume of a closed connection');
    assert.equal(conn2.action, ACTION.CONNECTED, `resume of a closed connection is not fatal: ${JSON.stringify(conn2)}`);
    assert.notEqual(conn2.connectionId, connId, 'closed connection is not resumed');
    assert.ok(conn2.error && conn2.error.code >= 80000 && conn2.error.code < 81000, `CONNECTED carries a resume error: ${JSON.stringify(conn2.error)}`);
  } finally {
    again.terminate();
  }
});

test('RTN15c6 raw WebSocket: resume of a dropped connection keeps its connectionId without error', async () => {
  const key = env.app.keys[0].keyStr;
  const ws = rawWs(env.server, { key, v: '6', format: 'json' });
  let conn;
  try {
    await ws.opened;
    conn = await ws.next((f) => f.action === ACTION.CONNECTED, 5000, 'CONNECTED');
  } finally {
    ws.terminate(); // no CLOSE: the server keeps the connection for connectionStateTtl
  }
  await sleep(100);
  const again = rawWs(env.server, { key, v: '6', format: 'json', resume: conn.connectionDetails.connectionKey });
  try {
    await again.opened;
    const conn2 = await again.next((f) => f.action === ACTION.CONNECTED || f.action === ACTION.ERROR, 5000, 'CONNECTED on resume');
    assert.equal(conn2.action, ACTION.CONNECTED, JSON.stringify(conn2));
    assert.equal(conn2.connectionId, conn.connectionId, 'same connectionId');
    assert.equal(conn2.error ?? null, null, `no error on a valid resume: ${JSON.stringify(conn2.error)}`);
  } finally {
    again.terminate();
  }
});

bothProtocols('RTN13 ping() round-trips a HEARTBEAT', async (t, binary) => {
  const c = clients(t);
  const client = await connected(c, env.server, { key: env.app.keys[0].keyStr, binary });
  const rtt = await withTimeout(client.connection.ping(), 5000, 'ping');
  assert.equal(typeof rtt, 'number');
  assert.ok(rtt >= 0 && rtt < 5000, `rtt ${rtt}`);
});
