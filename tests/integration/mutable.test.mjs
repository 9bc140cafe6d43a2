// Mutable messages (issue 4) with the real ably-js SDK, on an app whose
// `mut` namespace has `"mutableMessages": true`: RTL32 appendMessage /
// updateMessage / deleteMessage resolving to increasing version serials;
// TM5 actions and TM2s versions seen live (message.append with the fragment,
// message.update with the full content, message.delete); a late attacher's
// first append as a full message.update; RSL2/RTL10 history and rewind
// serving aggregated heads; a subscriber whose socket is cut mid-stream
// (RTN15) ending with exactly the full text; RSL11 getMessage, RSL14
// getMessageVersions, RSL15 REST PATCH; capabilities message-update-own/any,
// message-delete-own/any (40160, 40166); 93002 without the namespace rule;
// 40400 for an unknown serial.
import assert from 'node:assert/strict';
import { beforeEach } from 'node:test';
import {
  useServer,
  bothProtocols,
  clients,
  connected,
  collector,
  createApp,
  dropConnection,
  uniqueChannel,
  withTimeout,
  waitUntil,
  waitForConnectionState,
  settle,
  sleep,
  test,
} from './lib/server.mjs';

const env = useServer({ label: 'mutable' });
const CAPS = {
  all: null,
  pubsub: { 'mut:*': ['publish', 'subscribe', 'history'], 'plain:*': ['publish', 'subscribe', 'history'] },
  own: { 'mut:*': ['publish', 'subscribe', 'history', 'message-update-own', 'message-delete-own'] },
  any: { 'mut:*': ['publish', 'subscribe', 'history', 'message-update-any', 'message-delete-any'] },
  updateOwnOnly: { 'mut:*': ['publish', 'subscribe', 'history', 'message-update-own'] },
};
const K = {};
let appReady;
/** Creates this file's app on first use (after the server is up) and fills K with its keys. */
function setupApp() {
  appReady ??= (async () => {
    const names = Object.keys(CAPS);
    const app = await createApp(env.server, {
      keys: names.map((n) => (CAPS[n] ? { capability: JSON.stringify(CAPS[n]) } : {})),
      namespaces: [{ id: 'mut', mutableMessages: true }],
    });
    names.forEach((n, i) => (K[n] = app.keys[i].keyStr));
  })();
  return appReady;
}
beforeEach(() => setupApp());

const mutName = (p) => `mut:${uniqueChannel(p)}`;
/* Writers that need one delivery per append: at Ably's default
 * appendRollupWindow (40 ms) appends published close together reach
 * subscribers as one (tests/integration/rollup.test.mjs). */
const EACH_APPEND = { transportParams: { appendRollupWindow: 0 } };

/** Asserts that `promise` rejects with Ably error `code` (and `statusCode` if given). */
async function expectError(promise, code, statusCode, what) {
  const r = await withTimeout(settle(promise), 6000, what);
  assert.equal(r.ok, false, `${what}: must fail, resolved with ${JSON.stringify(r.value)}`);
  assert.equal(r.error.code, code, `${what}: code ${r.error.code} (${r.error.message}), want ${code}`);
  if (statusCode) assert.equal(r.error.statusCode, statusCode, `${what}: statusCode`);
  return r.error;
}

/**
 * What a client shows after applying messages as they come (TM5): create and
 * update set the text, append adds to what it holds, delete clears it.
 * Throws on an append for a message it never held.
 */
function fold(messages) {
  const text = new Map();
  for (const m of messages) {
    if (m.action === 'message.create' || m.action === 'message.update') text.set(m.serial, m.data ?? '');
    else if (m.action === 'message.append') {
      if (!text.has(m.serial)) throw new Error(`append for ${m.serial} before its message: ${JSON.stringify(m)}`);
      text.set(m.serial, text.get(m.serial) + m.data);
    } else if (m.action === 'message.delete') text.set(m.serial, null);
  }
  return text;
}

const brief = (m) => ({ action: m.action, serial: m.serial, data: m.data, name: m.name, version: m.version?.serial });

// ---------------------------------------------------------------------------

bothProtocols('RTL32/TM5/TM2s append, update, delete: increasing versionSerials; live subscribers (other format) get message.append fragments, a full message.update, message.delete', async (t, binary) => {
  const c = clients(t);
  const name = mutName('mut-live');
  const [writer, sub] = await Promise.all([
    connected(c, env.server, { key: K.all, clientId: 'writer', binary, ...EACH_APPEND }),
    connected(c, env.server, { key: K.all, binary: !binary }),
  ]);
  const col = collector(sub.channels.get(name));
  await withTimeout(col.subscribed, 5000, 'subscriber attach');
  const ch = writer.channels.get(name);
  const { serials } = await withTimeout(ch.publish('answer', 'Hello'), 5000, 'publish');
  const serial = serials[0];
  assert.equal(typeof serial, 'string');

  const versions = [];
  for (const frag of [',', ' wor', 'ld']) {
    const r = await withTimeout(ch.appendMessage({ serial, data: frag }), 5000, `append ${frag}`);
    versions.push(r.versionSerial);
  }
  const up = await withTimeout(
    ch.updateMessage({ serial, data: 'Hello, everyone', name: 'answer-v2' }, { description: 'rewrite', metadata: { reason: 'typo' } }),
    5000,
    'update',
  );
  versions.push(up.versionSerial);
  const del = await withTimeout(ch.deleteMessage({ serial }, { description: 'gone' }), 5000, 'delete');
  versions.push(del.versionSerial);
  for (const v of versions) assert.equal(typeof v, 'string', `versionSerial is a string: ${JSON.stringify(versions)}`);
  assert.ok(versions[0] > serial, `the first versionSerial ${versions[0]} sorts after the message serial ${serial}`);
  for (let i = 1; i < versions.length; i++) assert.ok(versions[i] > versions[i - 1], `versionSerials strictly increase: ${versions}`);

  const msgs = await col.until(6);
  await sleep(100);
  assert.equal(col.messages.length, 6, `exactly 6 messages: ${JSON.stringify(col.messages.map(brief))}`);
  assert.deepEqual(msgs.map((m) => m.action), ['message.create', 'message.append', 'message.append', 'message.append', 'message.update', 'message.delete']);
  assert.ok(msgs.every((m) => m.serial === serial), 'every event carries the message serial');
  assert.deepEqual(msgs.slice(1, 4).map((m) => m.data), [',', ' wor', 'ld'], 'appends carry only their fragment');
  assert.deepEqual(msgs.slice(1).map((m) => m.version.serial), versions, 'version.serial of each event is its versionSerial');
  assert.equal(msgs[0].version.serial, serial, 'TM2s1: the create has version.serial = serial');
  for (const m of msgs.slice(1)) {
    assert.equal(m.version.clientId, 'writer', `TM2s3 version.clientId on ${m.action}`);
    assert.equal(typeof m.version.timestamp, 'number');
  }
  const upd = msgs[4];
  assert.equal(upd.data, 'Hello, everyone');
  assert.equal(upd.name, 'answer-v2');
  assert.equal(upd.clientId, 'writer', 'the message keeps its publisher clientId');
  assert.equal(upd.version.description, 'rewrite', 'TM2s4');
  assert.deepEqual(upd.version.metadata, { reason: 'typo' }, 'TM2s5');
  assert.equal(msgs[5].version.description, 'gone');
  // A delete without data keeps the content (a shallow mixin, Ably's soft delete).
  assert.equal(msgs[5].data, 'Hello, everyone', `a soft-deleted message keeps its data: ${JSON.stringify(msgs[5].data)}`);
  assert.equal(fold(msgs).get(serial), null);
});

bothProtocols('RTL32 a client attached after the message was created gets its first append as a full message.update, later ones as message.append', async (t, binary) => {
  const c = clients(t);
  const name = mutName('mut-late');
  const [writer, early] = await Promise.all([
    connected(c, env.server, { key: K.all, binary, ...EACH_APPEND }),
    connected(c, env.server, { key: K.all, binary: !binary }),
  ]);
  const ecol = collector(early.channels.get(name));
  await withTimeout(ecol.subscribed, 5000, 'early attach');
  const ch = writer.channels.get(name);
  const { serials: [serial] } = await ch.publish('stream', 'a');
  await ch.appendMessage({ serial, data: 'b' });
  await ch.appendMessage({ serial, data: 'c' });

  const late = await connected(c, env.server, { key: K.all, binary });
  const lcol = collector(late.channels.get(name));
  await withTimeout(lcol.subscribed, 5000, 'late attach');
  const v4 = (await ch.appendMessage({ serial, data: 'd' })).versionSerial;
  const v5 = (await ch.appendMessage({ serial, data: 'e' })).versionSerial;
  const got = await lcol.until(2);
  await sleep(100);
  assert.deepEqual(lcol.messages.map(brief), [
    { action: 'message.update', serial, data: 'abcd', name: 'stream', version: v4 },
    { action: 'message.append', serial, data: 'e', name: 'stream', version: v5 },
  ]);
  assert.equal(fold(got).get(serial), 'abcde');

  const em = await ecol.until(5);
  await sleep(50);
  assert.deepEqual(ecol.messages.map((m) => `${m.action}:${m.data}`), ['message.create:a', 'message.append:b', 'message.append:c', 'message.append:d', 'message.append:e'], 'a subscriber that saw the create gets only fragments');
  assert.equal(fold(em).get(serial), 'abcde');
});

bothProtocols('RSL2/RTL10 history and RTL4 rewind serve one aggregated head per message (action message.update, latest version.serial); RSL11 getMessage; RSL14 getMessageVersions', async (t, binary) => {
  const c = clients(t);
  const name = mutName('mut-hist');
  const writer = await connected(c, env.server, { key: K.all, binary });
  const ch = writer.channels.get(name);
  const s1 = (await ch.publish('m1', 'one')).serials[0];
  const s2 = (await ch.publish('m2', 'two')).serials[0];
  const s3 = (await ch.publish('m3', 'three')).serials[0];
  const v3 = (await ch.updateMessage({ serial: s3, data: 'THREE' }, { description: 'caps' })).versionSerial;
  // TM5 update semantics: fields left out (here data) stay as they were.
  const v2 = (await ch.updateMessage({ serial: s2, name: 'm2-renamed' })).versionSerial;
  const v1 = [];
  for (const f of ['-a', '-b', '-c']) v1.push((await ch.appendMessage({ serial: s1, data: f })).versionSerial);

  const rest = c.rest(env.server, { key: K.all, binary });
  const rch = rest.channels.get(name);
  const heads = [
    { action: 'message.update', serial: s1, data: 'one-a-b-c', name: 'm1', version: v1[2] },
    { action: 'message.update', serial: s2, data: 'two', name: 'm2-renamed', version: v2 },
    { action: 'message.update', serial: s3, data: 'THREE', name: 'm3', version: v3 },
  ];
  const fwd = await rch.history({ direction: 'forwards' });
  assert.deepEqual(fwd.items.map(brief), heads, 'REST history: one item per message, in creation order');
  const back = await rch.history();
  assert.deepEqual(back.items.map(brief), [...heads].reverse(), 'REST history backwards');
  const p1 = await rch.history({ direction: 'forwards', limit: 2 });
  assert.deepEqual(p1.items.map((m) => m.serial), [s1, s2]);
  assert.deepEqual((await p1.next()).items.map((m) => m.serial), [s3], 'pagination over heads');
  const rt = await withTimeout(ch.history({ direction: 'forwards' }), 5000, 'realtime history');
  assert.deepEqual(rt.items.map(brief), heads, 'RTL10 realtime history');

  const reader = await connected(c, env.server, { key: K.all, binary: !binary });
  const rcol = collector(reader.channels.get(name, { params: { rewind: '10' } }));
  await withTimeout(rcol.subscribed, 5000, 'rewind attach');
  await rcol.until(3);
  await sleep(100);
  assert.deepEqual(rcol.messages.map(brief), heads, 'rewind delivers the heads, once each');
  // Appends after a rewind: the reader holds the message in full, so it gets the fragment.
  const v1d = (await ch.appendMessage({ serial: s1, data: '-d' })).versionSerial;
  await rcol.until(4);
  assert.deepEqual(brief(rcol.messages[3]), { action: 'message.append', serial: s1, data: '-d', name: 'm1', version: v1d });
  assert.equal(fold(rcol.messages).get(s1), 'one-a-b-c-d');
  heads[0] = { ...heads[0], data: 'one-a-b-c-d', version: v1d };
  // rewind counts messages in history order (by creation), not versions: the last one is m3 although m1 changed last.
  const r1 = collector(reader.channels.get(`[?rewind=1]${name}`));
  await withTimeout(r1.subscribed, 5000, 'rewind=1 attach');
  await r1.until(1);
  await sleep(100);
  assert.deepEqual(r1.messages.map(brief), [heads[2]], 'rewind=1 gives the newest message head');

  const g = await rch.getMessage(s1);
  assert.deepEqual(brief(g), heads[0], 'RSL11 getMessage returns the latest version');
  assert.deepEqual(brief(await rch.getMessage(s2)), heads[1]);

  const vers = await rch.getMessageVersions(s1);
  assert.deepEqual(vers.items.map((m) => [m.action, m.data, m.version.serial, m.serial]), [
    ['message.append', '-d', v1d, s1],
    ['message.append', '-c', v1[2], s1],
    ['message.append', '-b', v1[1], s1],
    ['message.append', '-a', v1[0], s1],
    ['message.create', 'one', s1, s1],
  ], 'RSL14 one item per version, newest first, the original create last');
  const vf = await rch.getMessageVersions(s1, { direction: 'forwards', limit: 2 });
  assert.deepEqual(vf.items.map((m) => m.version.serial), [s1, v1[0]]);
  assert.ok(vf.hasNext());
  assert.deepEqual((await vf.next()).items.map((m) => m.version.serial), [v1[1], v1[2]]);
  const v3s = await rch.getMessageVersions(s3);
  assert.deepEqual(v3s.items.map((m) => [m.action, m.data, m.version.description]), [['message.update', 'THREE', 'caps'], ['message.create', 'three', undefined]]);
});

bothProtocols('RTN15/RTL32 subscribers\' sockets cut while appends flow (one attached before the message, one after): after resume, folding gives exactly the full text', { timeout: 40_000 }, async (t, binary) => {
  const N = 80;
  const PRE = 10; // appends before the late subscriber attaches
  const c = clients(t);
  const name = mutName('mut-resume');
  const [writer, early, late] = await Promise.all([
    connected(c, env.server, { key: K.all, binary, ...EACH_APPEND }),
    connected(c, env.server, { key: K.all, binary }),
    connected(c, env.server, { key: K.all, binary: !binary }),
  ]);
  const subs = [{ label: 'early', client: early }, { label: 'late', client: late }];
  for (const s of subs) {
    s.id0 = s.client.connection.id;
    s.states = [];
    s.client.connection.on((sc) => s.states.push(sc.current));
  }
  const attachSub = async (s) => {
    const sch = s.client.channels.get(name);
    s.col = collector(sch);
    await withTimeout(s.col.subscribed, 5000, `${s.label} attach`);
    const cutAfter = s.col.messages.length + 12;
    s.dropped = null;
    sch.subscribe(() => {
      if (s.dropped === null && s.col.messages.length >= cutAfter) s.dropped = dropConnection(s.client);
    });
  };
  await attachSub(subs[0]);
  const ch = writer.channels.get(name);
  const { serials: [serial] } = await ch.publish('stream', '<start>');
  let expected = '<start>';
  const acks = [];
  for (let i = 0; i < N; i++) {
    if (i === PRE) {
      await withTimeout(Promise.all(acks), 5000, 'first appends');
      await attachSub(subs[1]);
    }
    const frag = ` [${i}]`;
    expected += frag;
    acks.push(ch.appendMessage({ serial, data: frag }));
    if (i % 5 === 4) await sleep(10);
  }
  const results = await withTimeout(Promise.all(acks), 15_000, 'append ACKs');
  const lastVersion = results.at(-1).versionSerial;
  for (const s of subs) {
    assert.ok(s.dropped, `${s.label}: the subscriber was cut mid-stream`);
    await waitForConnectionState(s.client, 'connected', { timeoutMs: 8000 });
  }
  const folded = (s) => {
    try {
      return fold(s.col.messages).get(serial);
    } catch (e) {
      return e.message;
    }
  };
  for (const s of subs) {
    await waitUntil(() => folded(s) === expected || s.col.messages.at(-1)?.version?.serial === lastVersion, 10_000, `${s.label} to catch up (has ${JSON.stringify(folded(s)).slice(-80)})`);
  }
  await sleep(300);
  for (const s of subs) {
    const events = JSON.stringify(s.col.messages.map((m) => `${m.action}:${m.data}`)).slice(0, 1500);
    assert.equal(folded(s), expected, `${s.label}: folded text after resume; events: ${events}`);
    assert.equal(s.col.messages.at(-1).version.serial, lastVersion, `${s.label}: the last event is the last version`);
    assert.ok(s.states.includes('disconnected'), `${s.label}: went through DISCONNECTED: ${s.states}`);
    assert.equal(s.client.connection.id, s.id0, `${s.label}: RTN15c6 resumed the same connection`);
    const vs = s.col.messages.map((m) => m.version.serial);
    assert.equal(new Set(vs).size, vs.length, `${s.label}: no version delivered twice`);
  }
  assert.equal(subs[1].col.messages[0].action, 'message.update', 'the late subscriber starts from a full message.update');
  const rest = c.rest(env.server, { key: K.all, binary });
  assert.equal((await rest.channels.get(name).getMessage(serial)).data, expected, 'the stored head matches what the subscribers folded');
});

bothProtocols('RSL15 REST updateMessage/appendMessage/deleteMessage (PATCH) reach realtime subscribers; RSL11 getMessage follows', async (t, binary) => {
  const c = clients(t);
  const name = mutName('mut-rest');
  const sub = await connected(c, env.server, { key: K.all, binary: !binary });
  const col = collector(sub.channels.get(name));
  await withTimeout(col.subscribed, 5000, 'attach');
  const rest = c.rest(env.server, { key: K.all, binary });
  const rch = rest.channels.get(name);
  const pub = await rch.publish('doc', 'draft');
  const serial = pub.serials[0];
  const a = await rch.appendMessage({ serial, data: ' +more' });
  const u = await rch.updateMessage({ serial, data: 'final', name: 'doc-v2' }, { description: 'publish', metadata: { by: 'rest' } });
  assert.ok(typeof a.versionSerial === 'string' && a.versionSerial > serial, `append versionSerial ${a.versionSerial}`);
  assert.ok(u.versionSerial > a.versionSerial, `update versionSerial ${u.versionSerial} > ${a.versionSerial}`);
  let g = await rch.getMessage(serial);
  assert.deepEqual(brief(g), { action: 'message.update', serial, data: 'final', name: 'doc-v2', version: u.versionSerial });
  assert.deepEqual(g.version.metadata, { by: 'rest' });
  const d = await rch.deleteMessage({ serial }, { description: 'retract' });
  assert.ok(d.versionSerial > u.versionSerial);
  g = await rch.getMessage(serial);
  assert.equal(g.action, 'message.delete');
  assert.equal(g.version.serial, d.versionSerial);
  assert.equal(g.data, 'final', 'a delete without data keeps the data (soft delete)');

  const msgs = await col.until(4);
  await sleep(100);
  assert.deepEqual(col.messages.map((m) => [m.action, m.data ?? null, m.version.serial]), [
    ['message.create', 'draft', serial],
    ['message.append', ' +more', a.versionSerial],
    ['message.update', 'final', u.versionSerial],
    ['message.delete', 'final', d.versionSerial],
  ]);
  assert.equal(msgs[2].version.description, 'publish');
  const vers = await rch.getMessageVersions(serial);
  // RSL14: the original message.create is listed too (its version serial is its serial).
  assert.deepEqual(vers.items.map((m) => m.version.serial), [d.versionSerial, u.versionSerial, a.versionSerial, serial]);
});

test('capabilities: publish/subscribe only → 40160 on append/update/delete; message-update-own/-delete-own only on own messages (40160 otherwise, 40166 unidentified); -any on any message', { timeout: 20_000 }, async (t) => {
  const c = clients(t);
  const name = mutName('mut-caps');
  const [alice, pubsubOnly, bobOwn, anonOwn, anyMod, aliceUpdOnly] = await Promise.all([
    connected(c, env.server, { key: K.own, clientId: 'alice' }),
    connected(c, env.server, { key: K.pubsub, clientId: 'alice', binary: false }),
    connected(c, env.server, { key: K.own, clientId: 'bob', binary: false }),
    connected(c, env.server, { key: K.own }),
    connected(c, env.server, { key: K.any, binary: false }),
    connected(c, env.server, { key: K.updateOwnOnly, clientId: 'alice' }),
  ]);
  const ch = (cl) => cl.channels.get(name);
  await Promise.all([alice, pubsubOnly, bobOwn, anonOwn, anyMod, aliceUpdOnly].map((cl) => withTimeout(ch(cl).attach(), 5000, 'attach')));
  const s = [];
  for (let i = 0; i < 4; i++) s.push((await ch(alice).publish('m', `alice-${i}`)).serials[0]);

  // publish/subscribe only (even for one's own message): 40160.
  await expectError(ch(pubsubOnly).appendMessage({ serial: s[0], data: 'x' }), 40160, 401, 'pubsub-only append');
  await expectError(ch(pubsubOnly).updateMessage({ serial: s[0], data: 'x' }), 40160, 401, 'pubsub-only update');
  await expectError(ch(pubsubOnly).deleteMessage({ serial: s[0] }), 40160, 401, 'pubsub-only delete');
  const restPubsub = c.rest(env.server, { key: K.pubsub, clientId: 'alice' });
  await expectError(restPubsub.channels.get(name).updateMessage({ serial: s[0], data: 'x' }), 40160, 401, 'pubsub-only REST update');

  // -own: bob cannot touch alice's message, an unidentified client gets 40166.
  await expectError(ch(bobOwn).updateMessage({ serial: s[0], data: 'bob was here' }), 40160, 401, 'bob updates alice');
  await expectError(ch(bobOwn).appendMessage({ serial: s[0], data: 'bob' }), 40160, 401, 'bob appends to alice');
  await expectError(ch(bobOwn).deleteMessage({ serial: s[0] }), 40160, 401, 'bob deletes alice');
  const restBob = c.rest(env.server, { key: K.own, clientId: 'bob' });
  await expectError(restBob.channels.get(name).deleteMessage({ serial: s[0] }), 40160, 401, 'bob deletes alice over REST');
  await expectError(ch(anonOwn).updateMessage({ serial: s[0], data: 'anon' }), 40166, null, 'unidentified update with -own');
  await expectError(ch(anonOwn).deleteMessage({ serial: s[0] }), 40166, null, 'unidentified delete with -own');
  // message-update-own does not grant deletes.
  await expectError(ch(aliceUpdOnly).deleteMessage({ serial: s[0] }), 40160, 401, 'delete with only message-update-own');

  // The owner may.
  const ok1 = await ch(alice).appendMessage({ serial: s[0], data: '+mine' });
  const ok2 = await ch(aliceUpdOnly).updateMessage({ serial: s[1], data: 'alice-1 edited' });
  const ok3 = await ch(alice).deleteMessage({ serial: s[2] });
  // -any: an unidentified moderator may update and delete anyone's message.
  const ok4 = await ch(anyMod).updateMessage({ serial: s[3], data: 'moderated' });
  const ok5 = await ch(anyMod).deleteMessage({ serial: s[0] });
  for (const r of [ok1, ok2, ok3, ok4, ok5]) assert.equal(typeof r.versionSerial, 'string');

  const rest = c.rest(env.server, { key: K.all });
  const hist = (await rest.channels.get(name).history({ direction: 'forwards' })).items;
  assert.deepEqual(hist.map((m) => [m.action, m.data ?? null]), [
    ['message.delete', 'alice-0+mine'],
    ['message.update', 'alice-1 edited'],
    ['message.delete', 'alice-2'],
    ['message.update', 'moderated'],
  ], 'only the permitted operations took effect (a delete keeps the data: soft delete)');
  for (const cl of [pubsubOnly, bobOwn, anonOwn, aliceUpdOnly]) {
    assert.equal(cl.connection.state, 'connected');
    assert.equal(ch(cl).state, 'attached', 'a refused operation does not fail the channel');
  }
});

bothProtocols('93002 for append/update/delete on a namespace without mutableMessages (realtime and REST); 40400 for an unknown serial', async (t, binary) => {
  const c = clients(t);
  const plain = `plain:${uniqueChannel('nomut')}`;
  const client = await connected(c, env.server, { key: K.all, binary });
  const pch = client.channels.get(plain);
  await withTimeout(pch.attach(), 5000, 'attach plain');
  const { serials: [serial] } = await withTimeout(pch.publish('m', 'immutable'), 5000, 'publish');
  assert.equal(typeof serial, 'string', 'publish on a plain channel still returns a serial');
  await expectError(pch.appendMessage({ serial, data: 'x' }), 93002, 400, 'realtime append without the rule');
  await expectError(pch.updateMessage({ serial, data: 'x' }), 93002, 400, 'realtime update without the rule');
  await expectError(pch.deleteMessage({ serial }), 93002, 400, 'realtime delete without the rule');
  const rest = c.rest(env.server, { key: K.all, binary });
  const rp = rest.channels.get(plain);
  await expectError(rp.appendMessage({ serial, data: 'x' }), 93002, 400, 'REST append without the rule');
  await expectError(rp.updateMessage({ serial, data: 'x' }), 93002, 400, 'REST update without the rule');
  await expectError(rp.deleteMessage({ serial }), 93002, 400, 'REST delete without the rule');
  assert.deepEqual((await rp.history()).items.map((m) => [m.action, m.data]), [['message.create', 'immutable']], 'the message is unchanged');
  assert.equal(pch.state, 'attached');

  const name = mutName('mut-unknown');
  const mch = client.channels.get(name);
  await withTimeout(mch.attach(), 5000, 'attach mut');
  const { serials: [real] } = await mch.publish('m', 'x');
  const unknown = 'ffffffffffffff00';
  assert.notEqual(unknown, real);
  await expectError(mch.appendMessage({ serial: unknown, data: 'x' }), 40400, 404, 'realtime append to an unknown serial');
  await expectError(mch.updateMessage({ serial: unknown, data: 'x' }), 40400, 404, 'realtime update of an unknown serial');
  await expectError(mch.deleteMessage({ serial: unknown }), 40400, 404, 'realtime delete of an unknown serial');
  const rm = rest.channels.get(name);
  await expectError(rm.getMessage(unknown), 40400, 404, 'REST getMessage of an unknown serial');
  await expectError(rm.updateMessage({ serial: unknown, data: 'x' }), 40400, 404, 'REST update of an unknown serial');
  // A serial that exists on another channel is unknown here.
  const other = rest.channels.get(mutName('mut-other'));
  await expectError(other.getMessage(real), 40400, 404, 'getMessage of a serial from another channel');
  assert.equal(mch.state, 'attached');
});

bothProtocols('RTL32/RSL4 an append to JSON-encoded data is refused or keeps the head decodable (never "{...}{...}" under encoding json)', async (t, binary) => {
  const c = clients(t);
  const name = mutName('mut-json');
  const client = await connected(c, env.server, { key: K.all, binary });
  const ch = client.channels.get(name);
  const rest = c.rest(env.server, { key: K.all, binary });
  for (const [label, first, frag] of [
    ['object + object', { a: 1 }, { b: 2 }],
    ['object + string', { a: 1 }, 'tail'],
    ['string + object', 'text', { b: 2 }],
  ]) {
    const { serials: [serial] } = await ch.publish('j', first);
    const r = await withTimeout(settle(ch.appendMessage({ serial, data: frag })), 5000, `${label}: append`);
    const head = await rest.channels.get(name).getMessage(serial);
    if (r.ok) {
      assert.ok(!head.encoding, `${label}: the head decodes (left encoding ${JSON.stringify(head.encoding)}, data ${JSON.stringify(head.data)})`);
    } else {
      assert.ok(r.error.statusCode >= 400 && r.error.statusCode < 500, `${label}: refused as a client error: ${r.error.code}`);
      assert.deepEqual(head.data, first, `${label}: a refused append leaves the message unchanged`);
    }
  }
});

bothProtocols('TM2s3 the operation\'s clientId is the version\'s: an unidentified key client\'s updateMessage/appendMessage/deleteMessage(msg, {clientId}) carry version.clientId live and in the rewound head (ably-js "Should append to a message over realtime")', async (t, binary) => {
  const c = clients(t);
  const name = mutName('mut-opclient');
  const client = await connected(c, env.server, { key: K.all, binary });
  const ch = client.channels.get(name);
  const col = collector(ch);
  await withTimeout(col.subscribed, 5000, 'attach');
  const { serials: [serial] } = await ch.publish('original-message', 'Hello');
  const op = { clientId: 'rt-appender-client', description: 'Realtime append operation', metadata: { reason: 'testing' } };
  const a = await withTimeout(ch.appendMessage({ serial, data: ' World' }, op), 5000, 'append');
  const msgs = await col.until(2, 5000);
  assert.equal(msgs[1].action, 'message.append');
  assert.equal(msgs[1].version?.serial, a.versionSerial);
  assert.equal(msgs[1].version?.clientId, 'rt-appender-client', 'TM2s3 live');
  assert.equal(msgs[1].version?.description, 'Realtime append operation');
  assert.deepEqual(msgs[1].version?.metadata, { reason: 'testing' });
  // The head, as a rewind serves it.
  const reader = await connected(c, env.server, { key: K.all, binary: !binary });
  const rcol = collector(reader.channels.get(name, { params: { rewind: '1' } }));
  const [head] = await rcol.until(1, 5000);
  assert.equal(head.action, 'message.update');
  assert.equal(head.data, 'Hello World');
  assert.equal(head.version?.serial, a.versionSerial);
  assert.equal(head.version?.clientId, 'rt-appender-client', 'TM2s3 in the head');
  const u = await withTimeout(ch.updateMessage({ serial, data: 'edited' }, { clientId: 'rt-updater-client' }), 5000, 'update');
  const d = await withTimeout(ch.deleteMessage({ serial }, { clientId: 'rt-deleter-client' }), 5000, 'delete');
  const all = await col.until(4, 5000);
  assert.deepEqual(all.slice(2).map((m) => [m.action, m.version?.serial, m.version?.clientId]), [
    ['message.update', u.versionSerial, 'rt-updater-client'],
    ['message.delete', d.versionSerial, 'rt-deleter-client'],
  ]);
});

test('TM2s3 raw: a client identified as alice cannot record another operation clientId (40012); without one the version has alice; an anonymous token may not name one (40012)', { timeout: 20_000 }, async (t) => {
  const c = clients(t);
  const name = mutName('mut-opclient-id');
  const alice = await connected(c, env.server, { key: K.all, clientId: 'alice' });
  const ch = alice.channels.get(name);
  const col = collector(ch);
  await withTimeout(col.subscribed, 5000, 'attach');
  const { serials: [serial] } = await ch.publish('m', 'x');
  await expectError(ch.updateMessage({ serial, data: 'y' }, { clientId: 'mallory' }), 40012, 400, 'alice as mallory');
  const u = await ch.updateMessage({ serial, data: 'y' }, { description: 'no clientId given' });
  const msgs = await col.until(2, 5000);
  assert.equal(msgs[1].version?.serial, u.versionSerial);
  assert.equal(msgs[1].version?.clientId, 'alice');
  const rest = c.rest(env.server, { key: K.all });
  const anonToken = await rest.auth.requestToken({ capability: { 'mut:*': ['*'] } });
  const anon = await connected(c, env.server, { token: anonToken.token });
  await expectError(anon.channels.get(name).updateMessage({ serial, data: 'z' }, { clientId: 'someone' }), 40012, 400, 'anonymous token naming a clientId');
});

bothProtocols('RSL15/RTL32 a delete is a shallow mixin like an update (Ably\'s soft delete): deleteMessage({serial, data: {}}) carries {} live and in getMessage; a delete without data keeps the data (ably-js "Should delete a message")', async (t, binary) => {
  const c = clients(t);
  const name = mutName('mut-del');
  const client = await connected(c, env.server, { key: K.all, binary });
  const ch = client.channels.get(name);
  const col = collector(ch);
  await withTimeout(col.subscribed, 5000, 'attach');
  const rest = c.rest(env.server, { key: K.all, binary: !binary });
  const { serials: [s1] } = await ch.publish('message-to-delete', { value: 'will be deleted' });
  const d1 = await ch.deleteMessage({ serial: s1, data: {} }, { clientId: 'rt-deleter-client', description: 'Realtime delete operation' });
  const msgs = await col.until(2, 5000);
  assert.equal(msgs[1].action, 'message.delete');
  assert.deepEqual(msgs[1].data, {}, 'the delete carries the data it gave');
  assert.equal(msgs[1].name, 'message-to-delete');
  assert.equal(msgs[1].version?.serial, d1.versionSerial);
  const g1 = await rest.channels.get(name).getMessage(s1);
  assert.equal(g1.action, 'message.delete');
  assert.deepEqual(g1.data, {});
  const { serials: [s2] } = await ch.publish('kept', 'still here');
  await ch.deleteMessage({ serial: s2 });
  const g2 = await rest.channels.get(name).getMessage(s2);
  assert.equal(g2.action, 'message.delete');
  assert.equal(g2.data, 'still here', 'fields the delete does not give stay');
});

bothProtocols('RSL14 getMessageVersions lists the original message.create with the changes (ably-js "Should retrieve all versions of a message"); a message never changed has its create alone', async (t, binary) => {
  const c = clients(t);
  const name = mutName('mut-versions');
  const rest = c.rest(env.server, { key: K.all, binary });
  const rch = rest.channels.get(name);
  const { serials: [serial] } = await rch.publish('versioned-message', { value: 'version-1' });
  const only = await rch.getMessageVersions(serial);
  assert.deepEqual(only.items.map((m) => [m.action, m.serial, m.data]), [['message.create', serial, { value: 'version-1' }]]);
  const u = await rch.updateMessage({ serial, data: { value: 'version-2' } });
  const a = await rch.updateMessage({ serial, data: { value: 'version-3' } });
  const vers = await rch.getMessageVersions(serial);
  assert.deepEqual(vers.items.map((m) => [m.action, m.data?.value]), [
    ['message.update', 'version-3'],
    ['message.update', 'version-2'],
    ['message.create', 'version-1'],
  ]);
  assert.deepEqual(vers.items.slice(0, 2).map((m) => m.version.serial), [a.versionSerial, u.versionSerial]);
  assert.equal(vers.items[2].version.serial, serial, 'TM2s1 the create\'s version serial is its serial');
  const fwd = await rch.getMessageVersions(serial, { direction: 'forwards', limit: 1 });
  assert.equal(fwd.items[0].action, 'message.create');
  const p2 = await fwd.next();
  assert.deepEqual(p2.items.map((m) => m.data.value), ['version-2']);
  // Appends: the create is kept too, and the folded head stays whole.
  const { serials: [s2] } = await rch.publish('stream', 'Hel');
  await rch.appendMessage({ serial: s2, data: 'lo' });
  await rch.appendMessage({ serial: s2, data: '!' });
  const av = await rch.getMessageVersions(s2, { direction: 'forwards' });
  assert.deepEqual(av.items.map((m) => [m.action, m.data]), [['message.create', 'Hel'], ['message.append', 'lo'], ['message.append', '!']]);
  assert.equal((await rch.getMessage(s2)).data, 'Hello!');
});

// ably-js "Should append to a message over realtime" (updates-deletes):
// the live message.append carries the message's name with the fragment and
// the operation's version; a rewind afterwards gives the whole message.
bothProtocols('RTL32/TM2g/TM2s a live message.append carries the message name, the fragment and the version (clientId, description, metadata); after it a rewind=1 attach gives the message.update with the whole data and the same name', async (t, binary) => {
  const c = clients(t);
  const name = mutName('mut-append-name');
  const [writer, sub] = await Promise.all([
    connected(c, env.server, { key: K.all, binary }),
    connected(c, env.server, { key: K.all, binary: !binary }),
  ]);
  const col = collector(sub.channels.get(name));
  await withTimeout(col.subscribed, 5000, 'subscriber attach');
  const ch = writer.channels.get(name);
  const { serials: [serial] } = await withTimeout(ch.publish('original-message', 'Hello'), 5000, 'publish');
  const op = { clientId: 'rt-appender-client', description: 'Realtime append operation', metadata: { reason: 'testing' } };
  const { versionSerial } = await withTimeout(ch.appendMessage({ serial, data: ' World' }, op), 5000, 'append');
  const [, app] = await col.until(2);
  assert.equal(app.action, 'message.append');
  assert.equal(app.serial, serial);
  assert.equal(app.name, 'original-message', 'the append carries the message name');
  assert.equal(app.data, ' World');
  assert.equal(app.version.serial, versionSerial);
  assert.equal(app.version.clientId, op.clientId);
  assert.equal(app.version.description, op.description);
  assert.deepEqual(app.version.metadata, op.metadata);

  const rcol = collector(sub.channels.get(`[?rewind=1]${name}`));
  const [head] = await rcol.until(1);
  assert.equal(head.action, 'message.update');
  assert.equal(head.name, 'original-message');
  assert.equal(head.data, 'Hello World');
  assert.equal(head.version.serial, versionSerial);
  assert.equal(head.version.clientId, op.clientId);
});
