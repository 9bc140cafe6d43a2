// Channel options and params with the real ably-js SDK (issue 13): the
// `modes` channel param (RTL4k, RTL4m), which params ATTACHED echoes
// (RTL4k1), and the modes a channel is attached with.
import assert from 'node:assert/strict';
import {
  useServer,
  bothProtocols,
  clients,
  connected,
  collector,
  uniqueChannel,
  settle,
  sleep,
  withTimeout,
  dropConnection,
  waitForChannelState,
  ACTION,
  rawWs,
  test,
} from './lib/server.mjs';
import { wsConnected } from './lib/auth.mjs';

const env = useServer({ label: 'channels' });
const key = () => env.app.keys[0].keyStr;

/** Resolves true if `channel` receives a presence event within ms after `act` runs. */
async function seesPresence(channel, act, ms = 1500) {
  let seen = false;
  const l = () => (seen = true);
  await channel.presence.subscribe(l);
  try {
    await act();
    await sleep(ms);
  } finally {
    channel.presence.unsubscribe(l);
  }
  return seen;
}

bothProtocols('RTL4k/RTL4m the `modes` channel param grants only those modes: params {modes: "subscribe"} attaches with SUBSCRIBE only, echoed in params; publish 40165, presence enter 40165, no presence events (ably-js attachWithChannelParamsBasicChannelsGet)', async (t, binary) => {
  const c = clients(t);
  const name = uniqueChannel('modes-param');
  const [client, other] = await Promise.all([
    connected(c, env.server, { key: key(), binary }),
    connected(c, env.server, { key: key(), binary, clientId: 'other' }),
  ]);
  const params = { modes: 'subscribe' };
  const ch = client.channels.get(name, { params });
  await withTimeout(ch.attach(), 5000, 'attach');
  assert.deepEqual(ch.modes, ['subscribe'], 'RTL4m granted modes');
  assert.deepEqual(ch.params, params, 'RTL4k1 the modes param is echoed');
  const col = collector(ch);
  await col.subscribed;
  await other.channels.get(name).publish('m', 'hello');
  await col.until(1, 5000);
  const pub = await settle(ch.publish('x', 'no'));
  assert.equal(pub.ok, false, 'publish refused');
  assert.equal(pub.error.code, 40165, `publish: ${pub.error?.message}`);
  const enter = await settle(ch.presence.enterClient('someone', null));
  assert.equal(enter.ok, false, 'presence enter refused');
  assert.equal(enter.error.code, 40165, `enter: ${enter.error?.message}`);
  const ochan = other.channels.get(name);
  assert.equal(await seesPresence(ch, () => ochan.presence.enter('x')), false, 'no PRESENCE_SUBSCRIBE: no presence events');
});

bothProtocols('RTL4k the `modes` param with several modes and in a [?modes=...] qualifier; the param decides over ATTACH flags; an unknown mode name is refused 40003', async (t, binary) => {
  const c = clients(t);
  const client = await connected(c, env.server, { key: key(), binary });
  const a = client.channels.get(uniqueChannel('modes-several'), { params: { modes: 'publish,presence_subscribe' } });
  await withTimeout(a.attach(), 5000, 'attach a');
  assert.deepEqual([...a.modes].sort(), ['presence_subscribe', 'publish']);
  const b = client.channels.get(`[?modes=subscribe%2Cpresence]${uniqueChannel('modes-qualifier')}`);
  await withTimeout(b.attach(), 5000, 'attach b');
  assert.deepEqual([...b.modes].sort(), ['presence', 'subscribe']);
  const d = client.channels.get(uniqueChannel('modes-both'), { params: { modes: 'subscribe' }, modes: ['publish', 'subscribe'] });
  await withTimeout(d.attach(), 5000, 'attach d');
  assert.deepEqual(d.modes, ['subscribe'], 'the modes param wins over the flags');
  const bad = client.channels.get(uniqueChannel('modes-bad'), { params: { modes: 'subscribe,susribe' } });
  const r = await settle(bad.attach());
  assert.equal(r.ok, false, 'an unknown mode is refused');
  assert.equal(r.error.code, 40003, r.error.message);
  assert.equal(client.connection.state, 'connected');
});

test('RTL4k raw: the modes param is intersected with the capability (subscribe-only key: modes=publish,subscribe grants subscribe; modes=presence_subscribe grants only that)', async () => {
  const k = env.app.keys[3]; // the fixture's {"*":["subscribe"]}
  assert.deepEqual(JSON.parse(k.capability), { '*': ['subscribe'] });
  const { sock } = await wsConnected(assert, env.server, { key: k.keyStr, format: 'json' });
  try {
    const name = uniqueChannel('modes-cap');
    sock.send({ action: ACTION.ATTACH, channel: name, params: { modes: 'publish,subscribe' } });
    const att = await sock.next((f) => f.action === ACTION.ATTACHED || f.action === ACTION.ERROR, 4000, 'ATTACHED');
    assert.equal(att.action, ACTION.ATTACHED, JSON.stringify(att));
    assert.equal(att.flags & ((1 << 17) | (1 << 18)), 1 << 18, `SUBSCRIBE only: flags ${att.flags}`);
    const name2 = uniqueChannel('modes-cap2');
    sock.send({ action: ACTION.ATTACH, channel: name2, params: { modes: 'presence_subscribe' } });
    const att2 = await sock.next((f) => (f.action === ACTION.ATTACHED || f.action === ACTION.ERROR) && f.channel === name2, 4000, 'ATTACHED 2');
    assert.equal(att2.action, ACTION.ATTACHED, JSON.stringify(att2));
    assert.equal(att2.flags & 0xfff0000, 1 << 19, `PRESENCE_SUBSCRIBE only: flags ${att2.flags}`);
  } finally {
    sock.close();
  }
});

bothProtocols('RTL4k1 ATTACHED echoes only the params the server recognises: {nonexistent: "foo"} gives params {} (ably-js attachWithInvalidChannelParams); rewind, rewindLimit, delta and modes are echoed', async (t, binary) => {
  const c = clients(t);
  const client = await connected(c, env.server, { key: key(), binary });
  const ch = client.channels.get(uniqueChannel('params-unknown'), { params: { nonexistent: 'foo' } });
  await withTimeout(ch.attach(), 5000, 'attach');
  assert.deepEqual(ch.params, {}, `unknown params dropped: ${JSON.stringify(ch.params)}`);
  const params = { rewind: '1', rewindLimit: '5', delta: 'vcdiff', modes: 'subscribe', other: 'x' };
  const ch2 = client.channels.get(uniqueChannel('params-known'), { params });
  await withTimeout(ch2.attach(), 5000, 'attach 2');
  assert.deepEqual(ch2.params, { rewind: '1', rewindLimit: '5', delta: 'vcdiff', modes: 'subscribe' });
  const ch3 = client.channels.get(`[?rewind=1&foo=bar]${uniqueChannel('params-qualifier')}`);
  await withTimeout(ch3.attach(), 5000, 'attach 3');
  assert.deepEqual(ch3.params, { rewind: '1' }, 'the qualifier\'s params too');
});

bothProtocols('RTL4k/TR4q channel param values that are not strings are taken as their string form: channels.get(name, {params: {rewind: 1}}) rewinds one message, echoed as "1" (ably-js resume_rewind_1)', async (t, binary) => {
  const c = clients(t);
  const name = uniqueChannel('params-number');
  const pub = await connected(c, env.server, { key: key(), binary });
  await pub.channels.get(name).publish('m', { foo: 'bar', count: 1 });
  const client = await connected(c, env.server, { key: key(), binary });
  const ch = client.channels.get(name, { params: { rewind: 1 } });
  const col = collector(ch);
  await withTimeout(col.subscribed, 5000, 'attach');
  const [m] = await col.until(1, 5000);
  assert.deepEqual(m.data, { foo: 'bar', count: 1 });
  assert.deepEqual(ch.params, { rewind: '1' });
  assert.equal(client.connection.state, 'connected');
});

test('TR4q raw: numbers and booleans in ATTACH params become strings (2 -> "2", 1.5 -> "1.5", true -> "true"), null is no param; an object value fails that ATTACH alone (40003)', async () => {
  const { sock } = await wsConnected(assert, env.server, { key: key(), format: 'json' });
  try {
    const attach = async (params) => {
      const name = uniqueChannel('params-kinds');
      sock.send({ action: ACTION.ATTACH, channel: name, params });
      return sock.next((f) => f.channel === name && (f.action === ACTION.ATTACHED || f.action === ACTION.ERROR), 4000, 'ATTACHED');
    };
    let att = await attach({ rewind: 0, rewindLimit: 2, delta: true, modes: null });
    assert.equal(att.action, ACTION.ATTACHED, JSON.stringify(att));
    assert.deepEqual(att.params, { rewind: '0', rewindLimit: '2', delta: 'true' });
    att = await attach({ delta: 1.5 });
    assert.deepEqual(att.params, { delta: '1.5' });
    att = await attach({ rewind: { n: 1 } });
    assert.equal(att.action, ACTION.ERROR, JSON.stringify(att));
    assert.equal(att.error.code, 40003);
    att = await attach({ rewind: '1' });
    assert.equal(att.action, ACTION.ATTACHED, 'the connection goes on');
  } finally {
    sock.close();
  }
});

bothProtocols('RTL2i/TR3b a rewind that will replay messages attaches with HAS_BACKLOG (stateChange.hasBacklog); one on an empty channel, or with no rewind, without (ably-js rewind_has_backlog_0/1)', async (t, binary) => {
  const c = clients(t);
  const client = await connected(c, env.server, { key: key(), binary });
  const empty = client.channels.get(uniqueChannel('backlog-empty'), { params: { rewind: '1' } });
  const sc0 = await withTimeout(empty.attach(), 5000, 'attach empty');
  assert.ok(!sc0?.hasBacklog, `no backlog on an empty channel: ${JSON.stringify(sc0)}`);
  const name = uniqueChannel('backlog');
  await c.rest(env.server, { key: key(), binary }).channels.get(name).publish('foo', 'bar');
  const ch = client.channels.get(name, { params: { rewind: '1' } });
  const col = collector(ch);
  const sc1 = await withTimeout(ch.attach(), 5000, 'attach with backlog');
  assert.equal(sc1?.hasBacklog, true, `backlog: ${JSON.stringify(sc1)}`);
  await col.until(1, 5000);
  const other = await connected(c, env.server, { key: key(), binary });
  const plain = other.channels.get(name);
  const sc2 = await withTimeout(plain.attach(), 5000, 'attach without rewind');
  assert.ok(!sc2?.hasBacklog);
});

// ---------------------------------------------------------------------------
// Derived channels: [filter=<base64 JMESPath>]name (RTS5, ably-js getDerived)
// ---------------------------------------------------------------------------

const FILTER_DATA = [
  { name: 'filtered', data: 'one', extras: { headers: { name: 'Lorem Choo', number: 26095, bool: true } } },
  { name: 'filtered', data: 'no extras' },
  { name: 'filtered', data: 'two', extras: { headers: { name: 'John Bull', number: 26095, bool: false } } },
  { name: 'filtered', data: 'no header' },
  { name: 'filtered', data: 'other number', extras: { headers: { name: 'John Bull', number: 12345, bool: false } } },
  { name: 'end', data: 'last' },
];
const FILTER = 'name == `"filtered"` && headers.number == `26095`';

bothProtocols('RTS5/DO2a a derived channel (channels.getDerived with a JMESPath filter) gets only the messages that pass, alongside the plain channel on the same connection (ably-js "subscribes to filtered channel")', async (t, binary) => {
  const c = clients(t);
  const base = uniqueChannel('chan');
  const client = await connected(c, env.server, { key: env.app.keys[5].keyStr, binary });
  const derived = client.channels.getDerived(base, { filter: FILTER });
  const plain = client.channels.get(base);
  const dcol = collector(derived);
  const pcol = collector(plain);
  await withTimeout(Promise.all([dcol.subscribed, pcol.subscribed]), 5000, 'attach both');
  const rest = c.rest(env.server, { key: key(), binary: !binary });
  for (const m of FILTER_DATA) await rest.channels.get(base).publish(m);
  await pcol.until(6, 5000);
  await dcol.until(2, 5000);
  await sleep(300);
  assert.deepEqual(dcol.messages.map((m) => m.data), ['one', 'two']);
  assert.deepEqual(dcol.messages.map((m) => m.extras.headers.name), ['Lorem Choo', 'John Bull']);
  assert.equal(pcol.messages.length, 6, 'the plain channel gets every message');
  // Detaching the derived channel leaves the plain one.
  await withTimeout(derived.detach(), 5000, 'detach derived');
  await rest.channels.get(base).publish({ name: 'filtered', data: 'after', extras: { headers: { number: 26095 } } });
  await pcol.until(7, 5000);
  await sleep(200);
  assert.equal(dcol.messages.length, 2, 'nothing after the detach');
  assert.equal(plain.state, 'attached');
});

bothProtocols('RTS5 derived channels: rewind and resume replay only what passes; publishing on one is refused (40010); a malformed filter fails the attach (40010); the base channel\'s capability applies', async (t, binary) => {
  const c = clients(t);
  const base = uniqueChannel('chan-replay');
  const rest = c.rest(env.server, { key: key(), binary });
  for (const m of FILTER_DATA) await rest.channels.get(base).publish(m);
  const client = await connected(c, env.server, { key: key(), binary });
  const rw = client.channels.getDerived(`[?rewind=10]${base}`, { filter: FILTER });
  assert.match(rw.name, /^\[filter=[^?\]]+\?rewind=10\]/, `ably-js puts the params in the qualifier: ${rw.name}`);
  const rcol = collector(rw);
  await withTimeout(rcol.subscribed, 5000, 'attach with rewind');
  await rcol.until(2, 5000);
  await sleep(300);
  assert.deepEqual(rcol.messages.map((m) => m.data), ['one', 'two'], 'rewind: only what passes');
  // Resume: messages published while the client is away, filtered.
  dropConnection(client);
  await rest.channels.get(base).publish([
    { name: 'filtered', data: 'away-pass', extras: { headers: { number: 26095 } } },
    { name: 'filtered', data: 'away-skip', extras: { headers: { number: 1 } } },
  ]);
  await waitForChannelState(rw, 'attached', { timeoutMs: 8000 });
  await rcol.until(3, 8000);
  await rest.channels.get(base).publish({ name: 'filtered', data: 'live', extras: { headers: { number: 26095 } } });
  await rcol.until(4, 5000);
  await sleep(300);
  assert.deepEqual(rcol.messages.map((m) => m.data), ['one', 'two', 'away-pass', 'live']);
  const pub = await settle(rw.publish('x', 'y'));
  assert.equal(pub.ok, false, `publish on a derived channel refused: ${JSON.stringify(pub)}`);
  assert.equal(pub.error.code, 40010, pub.error.message);
  const bad = client.channels.getDerived(uniqueChannel('bad'), { filter: 'name ==' });
  const r = await settle(bad.attach());
  assert.equal(r.ok, false, 'malformed filter');
  assert.equal(r.error.code, 40010, r.error.message);
  // key[3] may subscribe on every channel; key[2] on sub-only only.
  const limited = await connected(c, env.server, { key: env.app.keys[2].keyStr, binary });
  const denied = await settle(limited.channels.getDerived('pub-1', { filter: 'name == `"x"`' }).attach());
  assert.equal(denied.ok, false, 'capability');
  assert.equal(denied.error.code, 40160);
  const ok = await settle(limited.channels.getDerived('sub-only', { filter: 'name == `"x"`' }).attach());
  assert.equal(ok.ok, true, ok.error?.message);
  assert.equal(client.connection.state, 'connected');
});

bothProtocols('RTS5/RTL32 a derived channel gets the updates of the messages that pass its filter (judged on the updated message)', async (t, binary) => {
  const c = clients(t);
  const base = `editable:${uniqueChannel('derived-mut')}`;
  const client = await connected(c, env.server, { key: key(), binary });
  const derived = client.channels.getDerived(base, { filter: "headers.kind == 'keep'" });
  const col = collector(derived);
  await withTimeout(col.subscribed, 5000, 'attach');
  const ch = client.channels.get(base);
  const { serials: [keep] } = await ch.publish({ name: 'm', data: 'v1', extras: { headers: { kind: 'keep' } } });
  const { serials: [drop] } = await ch.publish({ name: 'm', data: 'x1', extras: { headers: { kind: 'drop' } } });
  await ch.updateMessage({ serial: keep, data: 'v2', extras: { headers: { kind: 'keep' } } });
  await ch.updateMessage({ serial: drop, data: 'x2' });
  await col.until(2, 5000);
  await sleep(300);
  assert.deepEqual(col.messages.map((m) => [m.action, m.serial, m.data]), [
    ['message.create', keep, 'v1'],
    ['message.update', keep, 'v2'],
  ]);
});

// ably-js resume_rewind_1 (RTL4j2) forces ATTACH_RESUME onto a new
// connection's ATTACH with rewind=1 and expects nothing: a resumed attach
// has had its rewind already. The same ATTACH without the flag rewinds.
test('RTL4j/RTL4j2 raw: an ATTACH with the ATTACH_RESUME flag and params {rewind: "1"} replays nothing (no HAS_BACKLOG); without the flag the same rewind replays the last message', async (t) => {
  const c = clients(t);
  const [resumed, fresh] = [uniqueChannel('attach-resume'), uniqueChannel('attach-fresh')];
  const pub = await connected(c, env.server, { key: key() });
  await pub.channels.get(resumed).publish('m', 'old');
  await pub.channels.get(fresh).publish('m', 'old');
  const ws = rawWs(env.server, { key: key(), v: '6', format: 'json' });
  try {
    await ws.opened;
    await ws.next((f) => f.action === ACTION.CONNECTED, 5000, 'CONNECTED');
    const ATTACH_RESUME = 1 << 5;
    const HAS_BACKLOG = 1 << 1;
    ws.send({ action: ACTION.ATTACH, channel: resumed, flags: ATTACH_RESUME, params: { rewind: '1' } });
    const att = await ws.next((f) => f.action === ACTION.ATTACHED && f.channel === resumed, 5000, 'ATTACHED (resume)');
    assert.equal((att.flags ?? 0) & HAS_BACKLOG, 0, `no backlog announced: flags ${att.flags}`);
    assert.deepEqual(att.params, { rewind: '1' }, 'the param is still echoed');
    // The control: the rewind of the same kind of channel, after the
    // resumed one on the same socket, so its replay would have come first.
    ws.send({ action: ACTION.ATTACH, channel: fresh, params: { rewind: '1' } });
    const m = await ws.next((f) => f.action === ACTION.MESSAGE && f.channel === fresh, 5000, 'rewound MESSAGE');
    assert.equal(m.messages[0].data, 'old');
    await sleep(500);
    const got = ws.frames.filter((f) => f.action === ACTION.MESSAGE && f.channel === resumed);
    assert.deepEqual(got, [], 'no message replayed on the resumed attach');
  } finally {
    ws.terminate();
  }
});
