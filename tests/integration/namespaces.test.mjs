// Channel namespaces of the test app (tests/fixtures/app-setup.json): the
// persisted `durable:` is accepted and keeps history; the presence fixture
// channel durable:roster holds the fixture members.
import assert from 'node:assert/strict';
import {
  useServer,
  bothProtocols,
  clients,
  connected,
  collector,
  uniqueChannel,
  withTimeout,
  appSetup,
  test,
} from './lib/server.mjs';

const env = useServer({ label: 'namespaces' });
const key = () => env.app.keys[0].keyStr;

bothProtocols('RTL10d a persisted namespace (durable:) channel attaches, delivers and keeps history', async (t, binary) => {
  const c = clients(t);
  const name = `durable:${uniqueChannel('ns')}`;
  const [pub, sub] = await Promise.all([
    connected(c, env.server, { key: key(), binary }),
    connected(c, env.server, { key: key(), binary }),
  ]);
  const col = collector(sub.channels.get(name));
  await withTimeout(col.subscribed, 5000, 'attach durable channel');
  for (let i = 0; i < 3; i++) await pub.channels.get(name).publish('p', `p${i}`);
  await col.until(3);
  const rest = c.rest(env.server, { key: key(), binary });
  const hist = await rest.channels.get(name).history({ direction: 'forwards' });
  assert.deepEqual(hist.items.map((m) => m.data), ['p0', 'p1', 'p2']);
  const details = await rest.channels.get(name).status();
  assert.equal(details.channelId, name);
});

bothProtocols('RTL6/RTL7 other fixture namespaces (devices:, editable:) are ordinary channels for pub/sub', async (t, binary) => {
  const c = clients(t);
  for (const ns of ['devices', 'editable']) {
    const name = `${ns}:${uniqueChannel('ns')}`;
    const client = await connected(c, env.server, { key: key(), binary });
    const col = collector(client.channels.get(name));
    await withTimeout(col.subscribed, 5000, `attach ${name}`);
    await client.channels.get(name).publish('n', ns);
    const [m] = await col.until(1);
    assert.equal(m.data, ns);
  }
});

test('RSP3 presence fixture channel durable:roster holds the fixture members', async (t) => {
  const c = clients(t);
  const fixture = appSetup().channels[0];
  const rest = c.rest(env.server, { key: key() });
  const page = await withTimeout(rest.channels.get(fixture.name).presence.get(), 5000, 'presence.get');
  const ids = page.items.map((p) => p.clientId).sort();
  assert.deepEqual(ids, fixture.presence.map((p) => p.clientId).sort());
  const byId = Object.fromEntries(page.items.map((p) => [p.clientId, p]));
  assert.equal(byId['member-text'].data, 'a plain text member');
  assert.deepEqual(byId['member-json'].data, { profile: { name: 'Ada', langs: ['C', 'JS'] } });
});
