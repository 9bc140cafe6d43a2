// Connection lifecycle with the real ably-js SDK: RTN2, RTN4, RTN8, RTN9, RTN21, RTN12.
import assert from 'node:assert/strict';
import {
  useServer,
  bothProtocols,
  clients,
  connected,
  waitForConnectionState,
  withTimeout,
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

bothProtocols('RTN12a/RTN4c close() goes CLOSING then CLOSED via a CLOSED frame; id and key cleared (RTN8d/RTN9d)', async (t, binary) => {
  const c = clients(t);
  const client = await connected(c, env.server, { key: env.app.keys[0].keyStr, binary });
  const events = [];
  client.connection.on((sc) => events.push(sc));
  const t0 = Date.now();
  client.close();
  await waitForConnectionState(client, 'closed', { timeoutMs: 5000, failOn: ['failed'] });
  const elapsed = Date.now() - t0;
  assert.deepEqual(
    events.map((e) => e.current),
    ['closing', 'closed'],
  );
  // ably-js falls back to closing after realtimeRequestTimeout (10 s) if no
  // CLOSED frame arrives; a server that answers CLOSE makes this quick.
  assert.ok(elapsed < 3000, `CLOSED should arrive promptly (took ${elapsed} ms): server must answer CLOSE with CLOSED`);
  assert.equal(events[1].reason?.code ?? null, null, `no error on clean close: ${JSON.stringify(events[1].reason)}`);
  assert.equal(client.connection.id ?? null, null, 'RTN8d id cleared when CLOSED');
  assert.equal(client.connection.key ?? null, null, 'RTN9d key cleared when CLOSED');
});

bothProtocols('RTN13 ping() round-trips a HEARTBEAT', async (t, binary) => {
  const c = clients(t);
  const client = await connected(c, env.server, { key: env.app.keys[0].keyStr, binary });
  const rtt = await withTimeout(client.connection.ping(), 5000, 'ping');
  assert.equal(typeof rtt, 'number');
  assert.ok(rtt >= 0 && rtt < 5000, `rtt ${rtt}`);
});
