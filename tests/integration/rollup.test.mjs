// Append rollup (issue 13 item 3): the `appendRollupWindow` transport param
// of the publishing connection (`transportParams: {appendRollupWindow: ms}`,
// Ably's default 40 ms). Appends one connection publishes to one message
// within the window reach subscribers as one message.append: the fragments
// joined, the last append's version, extras and serial (its channelSerial);
// the first append of a window goes at once. Storage is unchanged: every
// append is acknowledged with its own versionSerial and kept as a version;
// history, getMessage and late attachers see the aggregated head. Held
// appends go out before anything else with a channelSerial, so that
// channelSerials reach clients in order (RTL15b) and a resume (RTN15)
// misses nothing. The real ably SDK publishes and subscribes; a raw JSON
// WebSocket checks the wire.
import assert from 'node:assert/strict';
import { beforeEach } from 'node:test';
import {
  useServer,
  bothProtocols,
  clients,
  connected,
  collector,
  createApp,
  startServer,
  dropConnection,
  uniqueChannel,
  rawWs,
  ACTION,
  withTimeout,
  waitUntil,
  waitForConnectionState,
  sleep,
  test,
} from './lib/server.mjs';
import { writeConfig } from './lib/auth.mjs';

const env = useServer({ label: 'rollup' });
let K;
let appReady;
function setupApp() {
  appReady ??= (async () => {
    const app = await createApp(env.server, { keys: [{}], namespaces: [{ id: 'mut', mutableMessages: true }] });
    K = app.keys[0].keyStr;
  })();
  return appReady;
}
beforeEach(() => setupApp());

const mutName = (p) => `mut:${uniqueChannel(p)}`;
const windowOpts = (ms) => (ms === undefined ? {} : { transportParams: { appendRollupWindow: ms } });

/** The text a client shows after applying messages in order (TM5). */
function fold(messages, serial) {
  let text;
  for (const m of messages) {
    if (m.serial !== serial) continue;
    if (m.action === 'message.create' || m.action === 'message.update') text = m.data ?? '';
    else if (m.action === 'message.append') {
      if (text === undefined) throw new Error(`append before its message: ${JSON.stringify(m)}`);
      text += m.data;
    } else if (m.action === 'message.delete') text = null;
  }
  return text;
}

/** A raw JSON subscriber attached to `name`; its MESSAGE frames in `frames`. */
async function rawSubscriber(t, name) {
  const raw = rawWs(env.server, { key: K, format: 'json', v: '5' });
  t.after(() => raw.terminate());
  await raw.next((f) => f.action === ACTION.CONNECTED, 5000, 'CONNECTED');
  raw.send({ action: ACTION.ATTACH, channel: name });
  await raw.next((f) => f.action === ACTION.ATTACHED && f.channel === name, 5000, 'ATTACHED');
  return { raw, messages: () => raw.frames.filter((f) => f.action === ACTION.MESSAGE && f.channel === name) };
}

/** Publishes a message and then `frags` as appends all at once; the ACKs in order, with their arrival times. */
async function burst(ch, frags, first = 'Hello', msgName = 'answer') {
  const { serials: [serial] } = await withTimeout(ch.publish(msgName, first), 5000, 'publish');
  const acks = await withTimeout(
    Promise.all(frags.map((data) => ch.appendMessage({ serial, data }).then((r) => ({ v: r.versionSerial, at: Date.now() })))),
    10_000,
    'append ACKs',
  );
  return { serial, versions: acks.map((a) => a.v), span: Math.max(...acks.map((a) => a.at)) - Math.min(...acks.map((a) => a.at)) };
}

const FRAGS = Array.from({ length: 12 }, (_, i) => ` f${i}`);

bothProtocols('appendRollupWindow 40: a burst of appends reaches subscribers as fewer message.append deliveries (fragments joined, last version) whose text is exact; every append is still its own version', async (t, binary) => {
  const c = clients(t);
  const name = mutName('rollup40');
  const [writer, sub] = await Promise.all([
    connected(c, env.server, { key: K, clientId: 'writer', binary, ...windowOpts(40) }),
    connected(c, env.server, { key: K, binary: !binary }),
  ]);
  const col = collector(sub.channels.get(name));
  await withTimeout(col.subscribed, 5000, 'subscriber attach');
  const { raw, messages: rawMessages } = await rawSubscriber(t, name);
  const { serial, versions, span } = await burst(writer.channels.get(name), FRAGS);
  const expected = 'Hello' + FRAGS.join('');
  await waitUntil(() => fold(col.messages, serial) === expected, 5000, 'the whole text', () => JSON.stringify(col.messages.map((m) => [m.action, m.data])));
  await waitUntil(() => rawMessages().at(-1)?.messages[0].version?.serial === versions.at(-1), 5000, 'the raw subscriber has the last version');
  await sleep(150); // nothing more comes (a window is 40 ms)

  const appends = col.messages.filter((m) => m.action === 'message.append');
  assert.equal(col.messages.length, 1 + appends.length, `only the create and appends: ${JSON.stringify(col.messages.map((m) => m.action))}`);
  assert.ok(appends.length < FRAGS.length, `${FRAGS.length} appends in a burst arrive as fewer deliveries: ${appends.length}`);
  // The first append of a window goes at once, then one delivery per window at most.
  assert.ok(appends.length <= 3 + Math.ceil(span / 40), `${appends.length} deliveries for appends acknowledged within ${span} ms`);
  // Each delivery is a run of consecutive fragments and carries the last one's version.
  let next = 0;
  for (const m of appends) {
    let k = next;
    let joined = '';
    while (k < FRAGS.length && joined !== m.data) joined += FRAGS[k++];
    assert.equal(joined, m.data, `delivery ${JSON.stringify(m.data)} is the fragments from ${next} on`);
    assert.equal(m.version.serial, versions[k - 1], 'a rolled-up append has the version of its last fragment');
    assert.equal(m.serial, serial);
    assert.equal(m.clientId, 'writer');
    assert.equal(m.connectionId, writer.connection.id);
    next = k;
  }
  assert.equal(next, FRAGS.length, 'every fragment delivered once, in order');

  // The wire (JSON): one message per MESSAGE, its channelSerial the last append's version serial.
  const wire = rawMessages().filter((f) => f.messages[0].serial === serial);
  assert.deepEqual(wire.map((f) => f.messages.length), wire.map(() => 1));
  assert.equal(wire[0].messages[0].action, 0, 'message.create');
  for (const f of wire.slice(1)) {
    const m = f.messages[0];
    assert.equal(m.action, 5, 'message.append (TM5)');
    assert.equal(f.channelSerial, m.version.serial, 'channelSerial = the last append\'s version serial');
    assert.equal(m.serial, serial);
    assert.equal(typeof m.id, 'string');
  }
  assert.deepEqual(wire.slice(1).map((f) => f.messages[0].data), appends.map((m) => m.data), 'the raw subscriber saw the same grouping');
  raw.terminate();

  // Storage is unchanged: one version per append; history and getMessage serve the head.
  const rest = c.rest(env.server, { key: K, binary });
  const rch = rest.channels.get(name);
  const vers = await rch.getMessageVersions(serial, { direction: 'forwards' });
  const appendVersions = vers.items.filter((m) => m.action === 'message.append');
  assert.deepEqual(appendVersions.map((m) => [m.data, m.version.serial]), FRAGS.map((f, i) => [f, versions[i]]), 'RSL14 one version per append');
  const head = await rch.getMessage(serial);
  assert.equal(head.data, expected);
  assert.equal(head.version.serial, versions.at(-1));
  const hist = await rch.history();
  assert.deepEqual(hist.items.map((m) => [m.serial, m.data]), [[serial, expected]], 'RSL2 history: the aggregated head');
});

for (const ms of [0, undefined, 500]) {
  const label = ms === undefined ? 'absent (Ably\'s default, 40 ms)' : `${ms} ms`;
  test(`appendRollupWindow ${label}: deliveries counted for a burst of ${FRAGS.length} appends`, { timeout: 30_000 }, async (t) => {
    const c = clients(t);
    const name = mutName('rollupN');
    const [writer, sub] = await Promise.all([
      connected(c, env.server, { key: K, ...windowOpts(ms) }),
      connected(c, env.server, { key: K }),
    ]);
    const col = collector(sub.channels.get(name));
    await withTimeout(col.subscribed, 5000, 'subscriber attach');
    const { serial, versions, span } = await burst(writer.channels.get(name), FRAGS);
    const expected = 'Hello' + FRAGS.join('');
    await waitUntil(() => fold(col.messages, serial) === expected, 5000, 'the whole text');
    await sleep(ms === 500 ? 600 : 150);
    const appends = col.messages.filter((m) => m.action === 'message.append');
    assert.equal(appends.at(-1).version.serial, versions.at(-1));
    if (ms === 0) {
      assert.deepEqual(appends.map((m) => m.data), FRAGS, 'a window of 0: one delivery per append');
    } else {
      const w = ms ?? 40;
      assert.ok(appends.length < FRAGS.length, `rolled up: ${appends.length} deliveries`);
      assert.ok(appends.length <= 3 + Math.ceil(span / w), `${appends.length} deliveries for appends acknowledged within ${span} ms`);
    }
  });
}

test('RTL15b order: appends held for the window go out before the next message (same or another publisher) and before an update; channelSerials never go back', { timeout: 30_000 }, async (t) => {
  const c = clients(t);
  const name = mutName('rollup-order');
  const [writer, other] = await Promise.all([
    connected(c, env.server, { key: K, clientId: 'writer', ...windowOpts(500) }),
    connected(c, env.server, { key: K, clientId: 'other' }),
  ]);
  const { messages: rawMessages } = await rawSubscriber(t, name);
  const ch = writer.channels.get(name);
  const { serials: [serial] } = await ch.publish('answer', 'A');
  await ch.appendMessage({ serial, data: '1' }); // goes at once, opens a 500 ms window
  await Promise.all([ch.appendMessage({ serial, data: '2' }), ch.appendMessage({ serial, data: '3' })]); // held
  await other.channels.get(name).publish('other', 'from another connection');
  await Promise.all([ch.appendMessage({ serial, data: '4' }), ch.appendMessage({ serial, data: '5' })]); // held again
  await ch.publish('next', 'the same publisher\'s next message');
  await ch.appendMessage({ serial, data: '6' });
  await ch.updateMessage({ serial, data: 'A123456!' });
  await waitUntil(() => rawMessages().some((f) => f.messages[0].action === 1), 5000, 'the update');
  await sleep(600);
  // An append (action 5) by its action: it carries its message's name too.
  const seen = rawMessages().map((f) => [f.messages[0].action === 5 ? 5 : f.messages[0].name, f.messages[0].data]);
  assert.deepEqual(seen, [
    ['answer', 'A'],
    [5, '1'],
    [5, '23'],
    ['other', 'from another connection'],
    [5, '45'],
    ['next', 'the same publisher\'s next message'],
    [5, '6'],
    ['answer', 'A123456!'],
  ], 'held appends go before the next event, in order');
  const cs = rawMessages().map((f) => f.channelSerial);
  assert.deepEqual([...cs].sort(), cs, `channelSerials in order: ${cs}`);
  assert.equal(new Set(cs).size, cs.length);
});

test('late attachers while appends are held: a plain attach gets the head as message.update when the window ends; a rewind attach holding it all gets nothing twice', { timeout: 30_000 }, async (t) => {
  const c = clients(t);
  const name = mutName('rollup-late');
  const [writer, early, late, rew] = await Promise.all([
    connected(c, env.server, { key: K, ...windowOpts(500) }),
    connected(c, env.server, { key: K }),
    connected(c, env.server, { key: K, binary: false }),
    connected(c, env.server, { key: K }),
  ]);
  const ecol = collector(early.channels.get(name));
  await withTimeout(ecol.subscribed, 5000, 'early attach');
  const ch = writer.channels.get(name);
  const { serials: [serial] } = await ch.publish('answer', 'A');
  await ch.appendMessage({ serial, data: 'b' });
  await Promise.all([ch.appendMessage({ serial, data: 'c' }), ch.appendMessage({ serial, data: 'd' })]); // held
  const lcol = collector(late.channels.get(name));
  const rcol = collector(rew.channels.get(name, { params: { rewind: '1' } }));
  await withTimeout(Promise.all([lcol.subscribed, rcol.subscribed]), 5000, 'late attaches');
  const last = (await ch.appendMessage({ serial, data: 'e' })).versionSerial; // held with c, d
  await waitUntil(() => fold(ecol.messages, serial) === 'Abcde', 5000, 'early: the whole text', () => JSON.stringify(ecol.messages.map((m) => [m.action, m.data])));
  await waitUntil(() => fold(lcol.messages, serial) === 'Abcde' && fold(rcol.messages, serial) === 'Abcde', 5000, 'late attachers served',
    () => JSON.stringify([lcol.messages, rcol.messages].map((l) => l.map((m) => [m.action, m.data]))));
  await sleep(600);
  assert.equal(ecol.messages.length, 3, `the early subscriber: create, b, then c+d+e as one: ${JSON.stringify(ecol.messages.map((m) => [m.action, m.data]))}`);
  assert.deepEqual(lcol.messages.map((m) => [m.action, m.data, m.version.serial]), [['message.update', 'Abcde', last]],
    'the late attacher gets the whole head once, not fragments it lacks the start of');
  // The rewind gave the head up to d (it attached while c and d were held);
  // the held delivery then brings it the rest, as the head (it holds part
  // of what c..e carries), and nothing twice.
  assert.deepEqual(rcol.messages.map((m) => [m.action, m.data]), [['message.update', 'Abcd'], ['message.update', 'Abcde']]);

  // Held appends all older than a new attach: the attacher has them (its rewind read the head) and gets nothing more.
  const { serials: [s2] } = await ch.publish('answer2', 'X');
  await ch.appendMessage({ serial: s2, data: 'y' });
  await ch.appendMessage({ serial: s2, data: 'z' }); // held
  const r2 = await connected(c, env.server, { key: K });
  const r2col = collector(r2.channels.get(name, { params: { rewind: '1' } }));
  await withTimeout(r2col.subscribed, 5000, 'rewind attach');
  await sleep(700);
  assert.deepEqual(r2col.messages.map((m) => [m.action, m.data]), [['message.update', 'Xyz']], 'the head once, nothing twice');
});

test('RTN15 a subscriber cut while appends are held (40 ms) resumes with exactly the whole text, no version twice', { timeout: 40_000 }, async (t) => {
  const c = clients(t);
  const name = mutName('rollup-resume');
  const [writer, sub] = await Promise.all([
    connected(c, env.server, { key: K, ...windowOpts(40) }),
    connected(c, env.server, { key: K, binary: false }),
  ]);
  const id0 = sub.connection.id;
  const states = [];
  sub.connection.on((sc) => states.push(sc.current));
  const sch = sub.channels.get(name);
  const col = collector(sch);
  await withTimeout(col.subscribed, 5000, 'attach');
  const ch = writer.channels.get(name);
  const { serials: [serial] } = await ch.publish('stream', '<start>');
  let expected = '<start>';
  let dropped = false;
  sch.subscribe(() => {
    if (!dropped && col.messages.length >= 3) {
      dropped = true;
      dropConnection(sub);
    }
  });
  const acks = [];
  for (let i = 0; i < 120; i++) {
    const frag = ` [${i}]`;
    expected += frag;
    acks.push(ch.appendMessage({ serial, data: frag }));
    if (i % 4 === 3) await sleep(5);
  }
  const results = await withTimeout(Promise.all(acks), 15_000, 'append ACKs');
  const lastVersion = results.at(-1).versionSerial;
  assert.ok(dropped, 'the subscriber was cut mid-stream');
  await waitForConnectionState(sub, 'connected', { timeoutMs: 8000 });
  await waitUntil(() => col.messages.at(-1)?.version?.serial === lastVersion, 10_000, 'caught up');
  await sleep(200);
  assert.equal(fold(col.messages, serial), expected, `folded text; events: ${JSON.stringify(col.messages.map((m) => `${m.action}:${m.data}`)).slice(0, 1500)}`);
  assert.ok(states.includes('disconnected'), `went through DISCONNECTED: ${states}`);
  assert.equal(sub.connection.id, id0, 'RTN15c6 resumed the same connection');
  const vs = col.messages.map((m) => m.version.serial);
  assert.equal(new Set(vs).size, vs.length, 'no version delivered twice');
});

test('maxMessageSize: what a window holds stays within it (held data goes out early), text exact', { timeout: 30_000 }, async (t) => {
  const c = clients(t);
  const name = mutName('rollup-size');
  const [writer, sub] = await Promise.all([
    connected(c, env.server, { key: K, ...windowOpts(500) }),
    connected(c, env.server, { key: K }),
  ]);
  const max = writer.connection.connectionManager.connectionDetails?.maxMessageSize ?? 65536;
  const col = collector(sub.channels.get(name));
  await withTimeout(col.subscribed, 5000, 'attach');
  const frags = Array.from({ length: 16 }, (_, i) => String.fromCharCode(97 + i).repeat(Math.floor(max / 5)));
  const { serial, versions } = await burst(writer.channels.get(name), frags, '');
  const expected = frags.join('');
  await waitUntil(() => fold(col.messages, serial) === expected, 8000, 'the whole text');
  await sleep(600);
  const appends = col.messages.filter((m) => m.action === 'message.append');
  for (const m of appends) assert.ok(m.data.length <= max, `a delivery of ${m.data.length} bytes (maxMessageSize ${max})`);
  assert.ok(appends.length >= Math.ceil(expected.length / max), `${appends.length} deliveries`);
  assert.ok(appends.length < frags.length, `still rolled up: ${appends.length} deliveries`);
  assert.equal(appends.at(-1).version.serial, versions.at(-1));
});

test('more streams on one channel than it rolls up at once (32, then appends go at once): every text exact, each delivery a run of one stream\'s fragments', { timeout: 30_000 }, async (t) => {
  const c = clients(t);
  const name = mutName('rollup-many');
  const [writer, sub] = await Promise.all([
    connected(c, env.server, { key: K, ...windowOpts(500) }),
    connected(c, env.server, { key: K }),
  ]);
  const col = collector(sub.channels.get(name));
  await withTimeout(col.subscribed, 5000, 'attach');
  const ch = writer.channels.get(name);
  const serials = [];
  for (let i = 0; i < 40; i++) serials.push((await ch.publish(`m${i}`, `<${i}>`)).serials[0]);
  const frags = ['a', 'b', 'c', 'd'];
  await withTimeout(Promise.all(frags.flatMap((f) => serials.map((serial) => ch.appendMessage({ serial, data: f })))), 10_000, 'appends');
  await waitUntil(() => serials.every((serial, i) => fold(col.messages, serial) === `<${i}>abcd`), 8000, 'every text',
    () => JSON.stringify(serials.map((serial) => fold(col.messages, serial))));
  await sleep(600);
  serials.forEach((serial, i) => assert.equal(fold(col.messages, serial), `<${i}>abcd`));
  const appends = col.messages.filter((m) => m.action === 'message.append');
  assert.ok(appends.every((m) => /^a?b?c?d?$/.test(m.data) && m.data.length > 0), 'each delivery joins consecutive fragments of one message');
});

test('RTS5 a derived channel gets the held appends of the messages that pass its filter, rolled up the same way', { timeout: 30_000 }, async (t) => {
  const c = clients(t);
  const name = mutName('rollup-derived');
  const [writer, sub] = await Promise.all([
    connected(c, env.server, { key: K, ...windowOpts(40) }),
    connected(c, env.server, { key: K }),
  ]);
  const base = collector(sub.channels.get(name));
  const derived = collector(sub.channels.getDerived(name, { filter: "name == 'answer'" }));
  await withTimeout(Promise.all([base.subscribed, derived.subscribed]), 5000, 'attaches');
  const ch = writer.channels.get(name);
  const { serial: other } = await burst(ch, ['x', 'y', 'z'], 'skip', 'other');
  const { serial, versions } = await burst(ch, FRAGS);
  const expected = 'Hello' + FRAGS.join('');
  await waitUntil(() => fold(derived.messages, serial) === expected && fold(base.messages, serial) === expected, 5000, 'the whole text on both');
  await sleep(150);
  assert.ok(derived.messages.every((m) => m.serial === serial), 'only the message that passes the filter');
  assert.equal(fold(base.messages, other), 'skipxyz');
  const appends = (col) => col.messages.filter((m) => m.serial === serial && m.action === 'message.append');
  assert.deepEqual(appends(derived).map((m) => [m.data, m.version.serial]), appends(base).map((m) => [m.data, m.version.serial]), 'the same grouping');
  assert.ok(appends(derived).length < FRAGS.length, `rolled up: ${appends(derived).length}`);
  assert.equal(appends(derived).at(-1).version.serial, versions.at(-1));
});

test('REST appends are delivered at once (a REST request has no transport params)', { timeout: 20_000 }, async (t) => {
  const c = clients(t);
  const name = mutName('rollup-rest');
  const sub = await connected(c, env.server, { key: K });
  const col = collector(sub.channels.get(name));
  await withTimeout(col.subscribed, 5000, 'attach');
  const rch = c.rest(env.server, { key: K }).channels.get(name);
  await rch.publish('m', 'a');
  await waitUntil(() => col.messages.length === 1, 5000, 'the create');
  const serial = col.messages[0].serial;
  for (const data of ['b', 'c', 'd']) await rch.appendMessage({ serial, data });
  await col.until(4);
  await sleep(100);
  assert.deepEqual(col.messages.map((m) => m.data), ['a', 'b', 'c', 'd']);
});

test('RTN15h3 SIGTERM while appends are held: subscribers get them before DISCONNECTED; exit 0', { timeout: 30_000 }, async (t) => {
  const server = await startServer({ label: 'rollup-shutdown' });
  let stopped = false;
  t.after(async () => {
    if (!stopped) await server.stop({ allowAlreadyExited: true }).catch(() => {});
  });
  const app = await createApp(server, { keys: [{}], namespaces: [{ id: 'mut', mutableMessages: true }] });
  const key = app.keys[0].keyStr;
  const c = clients(t);
  const writer = await connected(c, server, { key, ...windowOpts(500) });
  const name = mutName('rollup-sigterm');
  // The wire order, on a raw socket (ably-js decodes messages asynchronously,
  // so its events need not follow it).
  const raw = rawWs(server, { key, format: 'json', v: '5' });
  t.after(() => raw.terminate());
  await raw.next((f) => f.action === ACTION.CONNECTED, 5000, 'CONNECTED');
  raw.send({ action: ACTION.ATTACH, channel: name });
  await raw.next((f) => f.action === ACTION.ATTACHED, 5000, 'ATTACHED');
  const ch = writer.channels.get(name);
  const { serials: [serial] } = await ch.publish('m', 'X');
  await ch.appendMessage({ serial, data: 'a' });
  await Promise.all([ch.appendMessage({ serial, data: 'b' }), ch.appendMessage({ serial, data: 'c' })]); // held
  const res = await server.stop(); // throws unless exit 0 and no sanitizer output
  stopped = true;
  assert.equal(res.code, 0);
  await raw.next((f) => f.action === ACTION.DISCONNECTED, 5000, 'DISCONNECTED');
  const seen = raw.frames
    .filter((f) => f.action === ACTION.MESSAGE || f.action === ACTION.DISCONNECTED)
    .map((f) => (f.action === ACTION.MESSAGE ? `${f.messages[0].action}:${f.messages[0].data}` : 'DISCONNECTED'));
  assert.deepEqual(seen, ['0:X', '5:a', '5:bc', 'DISCONNECTED']);
});

test('limits.appendRollupWindow 0 in the config: appends of a connection that gives no window go one by one; one that gives a window still rolls up', { timeout: 30_000 }, async (t) => {
  const cfg = writeConfig({ limits: { appendRollupWindow: 0 } });
  t.after(() => cfg.cleanup());
  const server = await startServer({ label: 'rollup-config', extraArgs: ['--config', cfg.file] });
  t.after(() => server.stop());
  const app = await createApp(server, { keys: [{}], namespaces: [{ id: 'mut', mutableMessages: true }] });
  const key = app.keys[0].keyStr;
  const c = clients(t);
  const [plain, windowed, sub] = await Promise.all([
    connected(c, server, { key }),
    connected(c, server, { key, ...windowOpts(500) }),
    connected(c, server, { key }),
  ]);
  const name = mutName('rollup-config');
  const col = collector(sub.channels.get(name));
  await withTimeout(col.subscribed, 5000, 'attach');
  const a = await burst(plain.channels.get(name), FRAGS);
  const b = await burst(windowed.channels.get(name), FRAGS);
  const expected = 'Hello' + FRAGS.join('');
  await waitUntil(() => fold(col.messages, a.serial) === expected && fold(col.messages, b.serial) === expected, 5000, 'both texts');
  await sleep(600);
  const appends = (serial) => col.messages.filter((m) => m.serial === serial && m.action === 'message.append');
  assert.deepEqual(appends(a.serial).map((m) => m.data), FRAGS, 'no window given: the configured 0, one delivery per append');
  assert.ok(appends(b.serial).length < FRAGS.length, `the connection's own window wins: ${appends(b.serial).length} deliveries`);
});
