// Presence (issue 4) with the real ably-js SDK and raw sockets: RTP8/RTP9/
// RTP10 enter, update, leave seen by other clients (RTP2, RTP6) and by
// get() (RTP11) across JSON and msgpack; RTP8h/RTP8i/RTP15f refusals (40160,
// 91000, 40012); RTP14/RTP15 enterClient of 250 members and RTP18 SYNC in
// pages of 100 ("<syncId>:<cursor>", empty cursor last), RTP1 HAS_PRESENCE
// only for a non-empty set; members leave on detach, on close and when a
// lost connection is not resumed within connectionStateTtl (2 s here), and
// stay when it resumes (RTN15c6); RSP3 REST presence with clientId /
// connectionId filters, RSP4 presence history (directions, pagination),
// CHM2 occupancy; the durable:roster members of the test app (tests/fixtures/app-setup.json).
import assert from 'node:assert/strict';
import {
  useServer,
  bothProtocols,
  clients,
  connected,
  uniqueChannel,
  withTimeout,
  waitForConnectionState,
  waitForChannelState,
  dropConnection,
  settle,
  sleep,
  rawWs,
  appSetup,
  startServer,
  makeTempDir,
  createApp,
  waitUntil,
  ACTION,
  test,
} from './lib/server.mjs';
import { writeConfig } from './lib/auth.mjs';

const TTL = 2000;
// 250 members on one channel: over Ably's (and our default) 200, raised here.
const cfg = writeConfig({ limits: { connectionStateTtl: TTL, maxPresenceMembers: 1000 } });
const env = useServer({ label: 'presence', extraArgs: ['--config', cfg.file] });
process.on('exit', () => cfg.cleanup());
const key = (i = 0) => env.app.keys[i].keyStr;

// PresenceMessage actions on the wire (TP2).
const PA = { ABSENT: 0, PRESENT: 1, ENTER: 2, LEAVE: 3, UPDATE: 4 };
const HAS_PRESENCE = 1 << 0;

/** Records presence events of `channel` ({action, clientId, connectionId, data, at}). */
async function presenceLog(channel) {
  const events = [];
  const waiters = [];
  await withTimeout(
    channel.presence.subscribe((p) => {
      events.push({ action: p.action, clientId: p.clientId, connectionId: p.connectionId, data: p.data, at: Date.now() });
      for (const w of [...waiters]) if (w.pred()) w.resolve();
    }),
    5000,
    `presence.subscribe on ${channel.name}`,
  );
  return {
    events,
    /** Resolves once an event with `action` for `clientId` arrived. */
    wait(action, clientId, ms = 5000) {
      const pred = () => events.some((e) => e.action === action && e.clientId === clientId);
      if (pred()) return Promise.resolve();
      const p = new Promise((resolve) => waiters.push({ pred, resolve }));
      return withTimeout(p, ms, `presence ${action} of ${clientId} on ${channel.name} (events: ${JSON.stringify(events.map((e) => [e.action, e.clientId]))})`);
    },
    of(clientId) {
      return events.filter((e) => e.clientId === clientId).map((e) => e.action);
    },
  };
}

const members = async (channel) =>
  (await withTimeout(channel.presence.get(), 5000, `presence.get on ${channel.name}`))
    .map((p) => ({ clientId: p.clientId, connectionId: p.connectionId, data: p.data, action: p.action }))
    .sort((a, b) => (a.clientId < b.clientId ? -1 : a.clientId > b.clientId ? 1 : 0));

/** A raw socket connected with `key` (and clientId); frames parsed in the chosen format. */
async function rawConnect({ binary, clientId, k = key() }) {
  const q = { key: k, v: '6', format: binary ? 'msgpack' : 'json' };
  if (clientId) q.clientId = clientId;
  const sock = rawWs(env.server, q);
  await withTimeout(sock.opened, 5000, 'raw WebSocket open');
  const connectedFrame = await sock.next((f) => f.action === ACTION.CONNECTED || f.action === ACTION.ERROR, 5000, 'CONNECTED');
  assert.equal(connectedFrame.action, ACTION.CONNECTED, `raw connect: ${JSON.stringify(connectedFrame)}`);
  const send = (o) => (binary ? sock.sendMsgpack(o) : sock.send(o));
  return { sock, send, connectionId: connectedFrame.connectionId };
}

/** Raw ATTACH; returns the ATTACHED frame and every SYNC frame up to the one ending the sync (if any). */
async function rawAttachWithSync(raw, name, { expectSync }) {
  raw.send({ action: ACTION.ATTACH, channel: name });
  const attached = await raw.sock.next((f) => f.channel === name && (f.action === ACTION.ATTACHED || f.action === ACTION.ERROR), 5000, `ATTACHED ${name}`);
  assert.equal(attached.action, ACTION.ATTACHED, `raw attach ${name}: ${JSON.stringify(attached)}`);
  if (expectSync) {
    await raw.sock.next((f) => f.action === ACTION.SYNC && f.channel === name && /:$/.test(f.channelSerial ?? ''), 5000, `last SYNC on ${name}`);
  } else {
    await sleep(300);
  }
  const syncs = raw.sock.frames.filter((f) => f.action === ACTION.SYNC && f.channel === name);
  return { attached, syncs };
}

// ---------------------------------------------------------------------------

bothProtocols('RTP8/RTP9/RTP10 enter, update, leave: another client (other format) gets RTP2 events and RTP11 get() returns the members as present', async (t, binary) => {
  const c = clients(t);
  const name = uniqueChannel('pres-basic');
  const [alice, watcher] = await Promise.all([
    connected(c, env.server, { key: key(), clientId: 'alice', binary }),
    connected(c, env.server, { key: key(), binary: !binary }),
  ]);
  const wch = watcher.channels.get(name);
  const log = await presenceLog(wch);
  const ach = alice.channels.get(name);
  const own = await presenceLog(ach);

  await withTimeout(ach.presence.enter({ mood: 'happy', n: 1 }), 5000, 'enter');
  await log.wait('enter', 'alice');
  const enter = log.events.find((e) => e.action === 'enter');
  assert.equal(enter.connectionId, alice.connection.id, 'enter carries the member connectionId');
  assert.deepEqual(enter.data, { mood: 'happy', n: 1 }, 'enter data (JSON object) crosses formats');
  await own.wait('enter', 'alice'); // RTP17a: own presence is echoed
  let m = await members(wch);
  assert.deepEqual(m, [{ clientId: 'alice', connectionId: alice.connection.id, data: { mood: 'happy', n: 1 }, action: 'present' }]);

  const bin = Buffer.from([0, 1, 2, 250, 255]);
  await withTimeout(ach.presence.update(bin), 5000, 'update');
  await log.wait('update', 'alice');
  const upd = log.events.find((e) => e.action === 'update');
  assert.ok(Buffer.isBuffer(upd.data) && upd.data.equals(bin), `update carries binary data across formats, got ${JSON.stringify(upd.data)}`);
  m = await members(wch);
  assert.equal(m.length, 1);
  assert.ok(Buffer.isBuffer(m[0].data) && m[0].data.equals(bin), 'get() shows the updated data');
  assert.equal(m[0].action, 'present');
  // A late attacher (other format) gets the binary data through the SYNC.
  const late = await connected(c, env.server, { key: key(), binary: !binary });
  const lm = await members(late.channels.get(name));
  assert.equal(lm.length, 1);
  assert.ok(Buffer.isBuffer(lm[0].data) && lm[0].data.equals(bin), `binary data through SYNC, got ${JSON.stringify(lm[0].data)}`);

  await withTimeout(ach.presence.leave('bye'), 5000, 'leave');
  await log.wait('leave', 'alice');
  const lv = log.events.find((e) => e.action === 'leave');
  assert.equal(lv.data, 'bye', 'leave carries its data');
  assert.deepEqual(log.of('alice'), ['enter', 'update', 'leave'], 'exactly one event per operation, in order');
  assert.deepEqual(await members(wch), [], 'no members after leave');
  assert.deepEqual(await members(ach), [], 'the leaver sees no members either');
});

bothProtocols('RTP8h/RTP8i/RTP15f presence refused: no presence capability 40160, anonymous 91000, another clientId 40012; the channel stays usable', async (t, binary) => {
  const c = clients(t);
  // Key 1: `writers:*` has only "publish".
  const noPresence = await connected(c, env.server, { key: key(1), binary });
  const npName = `writers:${uniqueChannel('pres-cap')}`;
  const npch = noPresence.channels.get(npName);
  await withTimeout(npch.attach(), 5000, 'attach with publish only');
  const r1 = await withTimeout(settle(npch.presence.enterClient('someone', 'x')), 5000, 'enterClient without presence capability');
  assert.equal(r1.ok, false, 'enter without the presence capability must fail');
  assert.equal(r1.error.code, 40160, `no presence capability: ${r1.error.code} ${r1.error.message}`);
  assert.equal(r1.error.statusCode, 401);

  const name = uniqueChannel('pres-refused');
  // Anonymous key connection: a PRESENCE without clientId (the SDK sends none when enterClient gets none).
  const anon = await connected(c, env.server, { key: key(), binary });
  const anch = anon.channels.get(name);
  await withTimeout(anch.attach(), 5000, 'anon attach');
  const r2 = await withTimeout(settle(anch.presence.enterClient(undefined, 'x')), 5000, 'anonymous enter');
  assert.equal(r2.ok, false, 'anonymous enter must be NACKed');
  assert.equal(r2.error.code, 91000, `anonymous: ${r2.error.code} ${r2.error.message}`);
  assert.equal(r2.error.statusCode, 400);

  // A connection identified as alice cannot enter as bob.
  const alice = await connected(c, env.server, { key: key(), clientId: 'alice', binary });
  const ach = alice.channels.get(name);
  await withTimeout(ach.attach(), 5000, 'alice attach');
  const r3 = await withTimeout(settle(ach.presence.enterClient('bob', 'x')), 5000, 'alice enters as bob');
  assert.equal(r3.ok, false, 'entering with another clientId must be NACKed');
  assert.equal(r3.error.code, 40012, `foreign clientId: ${r3.error.code} ${r3.error.message}`);

  for (const [label, client, ch] of [['no-capability', noPresence, npch], ['anonymous', anon, anch], ['alice', alice, ach]]) {
    assert.equal(client.connection.state, 'connected', `${label}: connection stays CONNECTED`);
    assert.equal(ch.state, 'attached', `${label}: channel stays ATTACHED`);
  }
  // Positive controls on the same channels: nothing was entered, and alice can enter as herself.
  const anonLog = await presenceLog(anch);
  await withTimeout(ach.presence.enter('me'), 5000, 'alice enters as alice');
  await anonLog.wait('enter', 'alice');
  assert.deepEqual((await members(anch)).map((p) => p.clientId), ['alice'], 'only alice is present (no member from the refused enters)');
  assert.deepEqual(anonLog.events.map((e) => `${e.action}:${e.clientId}`), ['enter:alice'], 'no presence event from the refused enters');
  await withTimeout(npch.publish('m', 'still works'), 5000, 'publish on the no-presence channel');
});

bothProtocols('RTP14/RTP15 250 members entered by 3 connections: a late attacher gets all 250 (RTP11); RTP18 SYNC pages of 100 with "<syncId>:<cursor>"; RTP1 HAS_PRESENCE', { timeout: 40_000 }, async (t, binary) => {
  const c = clients(t);
  const name = uniqueChannel('pres-big');
  const N = 250;
  const enterers = await Promise.all([0, 1, 2].map(() => connected(c, env.server, { key: key(), binary })));
  const owner = new Map(); // clientId -> connectionId
  await Promise.all(
    enterers.map(async (cl, k) => {
      const ch = cl.channels.get(name);
      await withTimeout(ch.attach(), 5000, 'enterer attach');
      const ids = [];
      for (let i = k; i < N; i += 3) ids.push(`member-${String(i).padStart(3, '0')}`);
      await withTimeout(Promise.all(ids.map((id) => ch.presence.enterClient(id, { who: id }))), 15_000, `connection ${k} enters ${ids.length}`);
      for (const id of ids) owner.set(id, cl.connection.id);
    }),
  );
  assert.equal(owner.size, N);

  // A late SDK attacher (other format) waits for the SYNC and gets every member.
  const late = await connected(c, env.server, { key: key(), binary: !binary });
  const got = await members(late.channels.get(name));
  assert.equal(got.length, N, `late attacher get() returns ${got.length} members, want ${N}`);
  for (const p of got) {
    assert.equal(p.action, 'present');
    assert.equal(p.connectionId, owner.get(p.clientId), `${p.clientId} is on the connection that entered it`);
    assert.deepEqual(p.data, { who: p.clientId });
  }
  assert.equal(new Set(got.map((p) => p.clientId)).size, N, 'no duplicate members');

  // On the wire: ATTACHED with HAS_PRESENCE, then SYNC pages of 100, 100, 50.
  const raw = await rawConnect({ binary });
  t.after(() => raw.sock.terminate());
  const { attached, syncs } = await rawAttachWithSync(raw, name, { expectSync: true });
  assert.ok((attached.flags ?? 0) & HAS_PRESENCE, `ATTACHED has HAS_PRESENCE, flags=${attached.flags}`);
  assert.deepEqual(syncs.map((s) => s.presence.length), [100, 100, 50], 'SYNC page sizes');
  const serials = syncs.map((s) => String(s.channelSerial));
  const syncIds = serials.map((s) => s.slice(0, s.indexOf(':')));
  assert.ok(syncIds[0].length > 0 && syncIds.every((id) => id === syncIds[0]), `one sync id for all pages: ${serials}`);
  const cursors = serials.map((s) => s.slice(s.indexOf(':') + 1));
  assert.ok(cursors[0] !== '' && cursors[1] !== '' && cursors[0] !== cursors[1], `non-empty, distinct cursors before the last page: ${serials}`);
  assert.equal(cursors[2], '', `the last page has an empty cursor: ${serials}`);
  const wire = syncs.flatMap((s) => s.presence);
  assert.ok(wire.every((p) => p.action === PA.PRESENT), 'SYNC members are PRESENT');
  assert.equal(new Set(wire.map((p) => p.clientId)).size, N, 'the SYNC pages hold 250 distinct members');
  assert.ok(wire.every((p) => p.connectionId === owner.get(p.clientId)), 'SYNC members carry their connectionId');

  // An empty channel: no HAS_PRESENCE and no SYNC.
  const emptyName = uniqueChannel('pres-empty');
  const empty = await rawAttachWithSync(raw, emptyName, { expectSync: false });
  assert.equal((empty.attached.flags ?? 0) & HAS_PRESENCE, 0, `ATTACHED on an empty channel has no HAS_PRESENCE, flags=${empty.attached.flags}`);
  assert.equal(empty.syncs.length, 0, 'no SYNC for an empty presence set');
});

bothProtocols('RTP5/RTL5 a member leaves when its connection detaches the channel; RTN12 and when it closes; RTP1 no HAS_PRESENCE once empty', async (t, binary) => {
  const c = clients(t);
  const name = uniqueChannel('pres-end');
  const [alice, bob, watcher] = await Promise.all([
    connected(c, env.server, { key: key(), clientId: 'alice', binary }),
    connected(c, env.server, { key: key(), clientId: 'bob', binary }),
    connected(c, env.server, { key: key(), binary: !binary }),
  ]);
  const wch = watcher.channels.get(name);
  const log = await presenceLog(wch);
  const ach = alice.channels.get(name);
  await withTimeout(Promise.all([ach.presence.enter('a'), bob.channels.get(name).presence.enter('b')]), 5000, 'enters');
  await Promise.all([log.wait('enter', 'alice'), log.wait('enter', 'bob')]);
  assert.deepEqual((await members(wch)).map((p) => p.clientId), ['alice', 'bob']);

  await withTimeout(ach.detach(), 5000, 'alice detaches');
  await log.wait('leave', 'alice');
  const la = log.events.find((e) => e.action === 'leave' && e.clientId === 'alice');
  assert.equal(la.connectionId, alice.connection.id);
  assert.equal(la.data, 'a', 'the server-made leave carries the member data');
  assert.deepEqual((await members(wch)).map((p) => p.clientId), ['bob']);
  assert.equal(alice.connection.state, 'connected', 'alice is still connected (only detached)');

  const bobConn = bob.connection.id;
  bob.close();
  await waitForConnectionState(bob, 'closed', { timeoutMs: 5000 });
  await log.wait('leave', 'bob');
  assert.equal(log.events.find((e) => e.action === 'leave' && e.clientId === 'bob').connectionId, bobConn);
  assert.deepEqual(await members(wch), []);
  assert.deepEqual(log.of('alice'), ['enter', 'leave']);
  assert.deepEqual(log.of('bob'), ['enter', 'leave']);
  const rest = c.rest(env.server, { key: key(), binary });
  const hist = (await rest.channels.get(name).presence.history({ direction: 'forwards' })).items;
  assert.deepEqual(hist.map((p) => `${p.action}:${p.clientId}`).slice(2), ['leave:alice', 'leave:bob'], 'RSP4 the server-made leaves are in presence history');

  const raw = await rawConnect({ binary });
  t.after(() => raw.sock.terminate());
  const { attached, syncs } = await rawAttachWithSync(raw, name, { expectSync: false });
  assert.equal((attached.flags ?? 0) & HAS_PRESENCE, 0, `no HAS_PRESENCE after everyone left, flags=${attached.flags}`);
  assert.equal(syncs.length, 0);
});

test('RTN15/RTP2h a lost connection that is not resumed: its member stays through connectionStateTtl, then leaves (msgpack and JSON watchers)', { timeout: 20_000 }, async (t) => {
  const c = clients(t);
  const name = uniqueChannel('pres-ttl');
  const [wm, wj] = await Promise.all([
    connected(c, env.server, { key: key(), binary: true }),
    connected(c, env.server, { key: key(), binary: false }),
  ]);
  const logs = await Promise.all([presenceLog(wm.channels.get(name)), presenceLog(wj.channels.get(name))]);

  // A raw client enters as "ghost", then its TCP connection just vanishes (no CLOSE, no resume).
  const raw = await rawConnect({ binary: false, clientId: 'ghost' });
  t.after(() => raw.sock.terminate());
  raw.send({ action: ACTION.ATTACH, channel: name });
  await raw.sock.next((f) => f.action === ACTION.ATTACHED && f.channel === name, 5000, 'ghost ATTACHED');
  raw.send({ action: ACTION.PRESENCE, channel: name, msgSerial: 0, presence: [{ action: PA.ENTER, data: 'boo' }] });
  const ack = await raw.sock.next((f) => (f.action === ACTION.ACK || f.action === ACTION.NACK) && f.msgSerial === 0, 5000, 'ghost ACK');
  assert.equal(ack.action, ACTION.ACK, `ghost enter: ${JSON.stringify(ack)}`);
  await Promise.all(logs.map((l) => l.wait('enter', 'ghost')));

  const cutAt = Date.now();
  raw.sock.terminate();
  await sleep(TTL / 2);
  for (const [label, w] of [['msgpack', wm], ['json', wj]]) {
    const m = await members(w.channels.get(name));
    assert.deepEqual(m.map((p) => [p.clientId, p.connectionId]), [['ghost', raw.connectionId]], `${label}: ghost still present ${Date.now() - cutAt} ms after the cut (within connectionStateTtl)`);
  }
  await Promise.all(logs.map((l) => l.wait('leave', 'ghost', TTL + 5000)));
  for (const [i, label] of [[0, 'msgpack'], [1, 'json']]) {
    const leave = logs[i].events.find((e) => e.action === 'leave' && e.clientId === 'ghost');
    const after = leave.at - cutAt;
    assert.ok(after >= TTL - 100, `${label}: leave ${after} ms after the cut, expected no earlier than connectionStateTtl ${TTL} ms`);
    assert.equal(leave.connectionId, raw.connectionId);
    assert.equal(leave.data, 'boo');
    assert.deepEqual(logs[i].of('ghost'), ['enter', 'leave'], `${label}: events`);
  }
  assert.deepEqual(await members(wm.channels.get(name)), []);
  const rest = c.rest(env.server, { key: key() });
  assert.deepEqual((await rest.channels.get(name).presence.get()).items, [], 'REST presence is empty after the leave');
});

test('RTN15c6/RTP17 a connection resumed within connectionStateTtl keeps its members: no leave (msgpack and JSON members)', { timeout: 20_000 }, async (t) => {
  const c = clients(t);
  const name = uniqueChannel('pres-resume');
  const [am, aj, watcher] = await Promise.all([
    connected(c, env.server, { key: key(), clientId: 'alice-m', binary: true }),
    connected(c, env.server, { key: key(), clientId: 'alice-j', binary: false }),
    connected(c, env.server, { key: key(), binary: true }),
  ]);
  const wch = watcher.channels.get(name);
  const log = await presenceLog(wch);
  await withTimeout(Promise.all([am.channels.get(name).presence.enter('m'), aj.channels.get(name).presence.enter('j')]), 5000, 'enters');
  await Promise.all([log.wait('enter', 'alice-m'), log.wait('enter', 'alice-j')]);
  const ids = [am.connection.id, aj.connection.id];

  const cutAt = Date.now();
  for (const cl of [am, aj]) assert.equal(dropConnection(cl), 'terminate');
  for (const cl of [am, aj]) {
    await waitForConnectionState(cl, 'disconnected', { timeoutMs: 3000 }).catch(() => {});
    await waitForConnectionState(cl, 'connected', { timeoutMs: 5000 });
    await waitForChannelState(cl.channels.get(name), 'attached', { timeoutMs: 5000 });
  }
  assert.deepEqual([am.connection.id, aj.connection.id], ids, 'both resumed their connections');
  // Past the ttl counted from the cut: a server that dropped the members on the cut would have left them by now.
  await sleep(Math.max(0, cutAt + TTL + 1200 - Date.now()));
  assert.deepEqual(log.of('alice-m').filter((a) => a === 'leave'), [], 'no leave for the resumed msgpack member');
  assert.deepEqual(log.of('alice-j').filter((a) => a === 'leave'), [], 'no leave for the resumed JSON member');
  const m = await members(wch);
  assert.deepEqual(m.map((p) => [p.clientId, p.connectionId, p.data]), [['alice-j', ids[1], 'j'], ['alice-m', ids[0], 'm']]);
  // The member is still live: an update from the resumed connection reaches the watcher.
  await withTimeout(am.channels.get(name).presence.update('m2'), 5000, 'update after resume');
  await log.wait('update', 'alice-m');
});

bothProtocols('RSP3 REST presence.get with clientId/connectionId filters; RSP4 presence history directions and pagination; CHM2 occupancy', async (t, binary) => {
  const c = clients(t);
  const name = uniqueChannel('pres-rest');
  const [a, b] = await Promise.all([
    connected(c, env.server, { key: key(), binary }),
    connected(c, env.server, { key: key(), clientId: 'b1', binary }),
  ]);
  const ach = a.channels.get(name);
  const bch = b.channels.get(name);
  await withTimeout(Promise.all([ach.attach(), bch.attach()]), 5000, 'attach');
  // Sequential, so history order is known.
  await ach.presence.enterClient('a1', 'a1-v1');
  await ach.presence.enterClient('a2', { n: 2 });
  await bch.presence.enter('b1-v1');
  const rest = c.rest(env.server, { key: key(), binary });
  const rch = rest.channels.get(name);
  const ids = async (params) => (await rch.presence.get(params)).items.map((p) => p.clientId).sort();

  const all = (await rch.presence.get()).items;
  assert.deepEqual(all.map((p) => p.clientId).sort(), ['a1', 'a2', 'b1']);
  assert.ok(all.every((p) => p.action === 'present'), `REST members are present: ${all.map((p) => p.action)}`);
  assert.deepEqual(all.find((p) => p.clientId === 'a2').data, { n: 2 });
  assert.deepEqual(await ids({ clientId: 'a2' }), ['a2'], 'RSP3a2 clientId filter');
  assert.deepEqual(await ids({ connectionId: a.connection.id }), ['a1', 'a2'], 'RSP3a3 connectionId filter');
  assert.deepEqual(await ids({ connectionId: b.connection.id }), ['b1']);
  assert.deepEqual(await ids({ clientId: 'nobody' }), []);
  assert.deepEqual(await ids({ limit: 2 }).then((x) => x.length), 2, 'RSP3a1 limit');

  await ach.presence.updateClient('a1', 'a1-v2');
  await ach.presence.leaveClient('a2');
  const now = (await rch.presence.get()).items;
  assert.deepEqual(now.map((p) => [p.clientId, p.data]).sort(), [['a1', 'a1-v2'], ['b1', 'b1-v1']]);

  const occ = (await rch.status()).status.occupancy.metrics;
  assert.equal(occ.presenceMembers, 2, `CHM2c presenceMembers: ${JSON.stringify(occ)}`);
  assert.equal(occ.presenceConnections, 2, `CHM2b presenceConnections: ${JSON.stringify(occ)}`);

  const ev = (p) => `${p.action}:${p.clientId}`;
  const expected = ['enter:a1', 'enter:a2', 'enter:b1', 'update:a1', 'leave:a2'];
  const back = await rch.presence.history();
  assert.deepEqual(back.items.map(ev), [...expected].reverse(), 'RSP4b2 backwards by default');
  const fwd1 = await rch.presence.history({ direction: 'forwards', limit: 2 });
  assert.deepEqual(fwd1.items.map(ev), expected.slice(0, 2));
  assert.ok(fwd1.hasNext(), 'page 1 has a next page');
  const fwd2 = await fwd1.next();
  assert.deepEqual(fwd2.items.map(ev), expected.slice(2, 4));
  const fwd3 = await fwd2.next();
  assert.deepEqual(fwd3.items.map(ev), expected.slice(4));
  assert.ok(fwd3.isLast(), 'page 3 is the last');
  const hUpd = back.items.find((p) => p.action === 'update');
  assert.equal(hUpd.data, 'a1-v2');
  assert.equal(hUpd.connectionId, a.connection.id);
  assert.ok(hUpd.timestamp > 0 && typeof hUpd.id === 'string', 'history items carry id and timestamp');
  const bwd = await rch.presence.history({ limit: 3 });
  assert.deepEqual(bwd.items.map(ev), ['leave:a2', 'update:a1', 'enter:b1']);
  assert.deepEqual((await bwd.next()).items.map(ev), ['enter:a2', 'enter:a1']);
});

bothProtocols('RSP3/RTP11 durable:roster holds the 6 fixture members (REST and realtime)', async (t, binary) => {
  const c = clients(t);
  const fixture = appSetup().channels[0];
  const want = fixture.presence.map((p) => p.clientId).sort();
  const rest = c.rest(env.server, { key: key(), binary });
  const page = await withTimeout(rest.channels.get(fixture.name).presence.get(), 5000, 'REST presence.get');
  assert.deepEqual(page.items.map((p) => p.clientId).sort(), want);
  const byId = Object.fromEntries(page.items.map((p) => [p.clientId, p]));
  assert.equal(byId['member-text'].data, 'a plain text member');
  assert.equal(byId['member-flag'].data, 'true');
  assert.equal(byId['member-json-text'].data, '{ "looks": "like JSON, stays text" }', 'text without an encoding stays text');
  const ada = { profile: { name: 'Ada', langs: ['C', 'JS'] } };
  assert.deepEqual(byId['member-json'].data, ada, 'json-encoded fixture data is decoded');

  const rt = await connected(c, env.server, { key: key(), binary });
  const m = await members(rt.channels.get(fixture.name));
  assert.deepEqual(m.map((p) => p.clientId), want, 'a realtime attacher gets the fixture members by SYNC');
  assert.deepEqual(m.find((p) => p.clientId === 'member-json').data, ada);
  const occ = (await rest.channels.get(fixture.name).status()).status.occupancy.metrics;
  assert.equal(occ.presenceMembers, 6, `CHM2c presenceMembers of the fixture channel: ${JSON.stringify(occ)}`);
});

bothProtocols('RSP3a REST presence.get pages through a set larger than one page (150 members: 100 + next page; limit=40: 4 pages)', async (t, binary) => {
  const c = clients(t);
  const name = uniqueChannel('pres-pages');
  const N = 150;
  const cl = await connected(c, env.server, { key: key(), binary });
  const ch = cl.channels.get(name);
  await withTimeout(ch.attach(), 5000, 'attach');
  await withTimeout(Promise.all(Array.from({ length: N }, (_, i) => ch.presence.enterClient(`p-${i}`, `d${i}`))), 10_000, 'enter 150');
  const rest = c.rest(env.server, { key: key(), binary });
  for (const [params, sizes] of [[undefined, [100, 50]], [{ limit: 40 }, [40, 40, 40, 30]]]) {
    const seen = [];
    const pageSizes = [];
    let page = await rest.channels.get(name).presence.get(params);
    for (;;) {
      pageSizes.push(page.items.length);
      seen.push(...page.items.map((p) => p.clientId));
      if (!page.hasNext() || pageSizes.length > 10) break;
      page = await page.next();
    }
    assert.deepEqual(pageSizes, sizes, `page sizes with ${JSON.stringify(params)}`);
    assert.equal(new Set(seen).size, N, `every member once across the pages with ${JSON.stringify(params)}`);
  }
});

bothProtocols('RTP19 a client-sent SYNC (ably-js channel.sync()) is answered with the member set, not a fatal ERROR; an empty set gets one empty SYNC page; the connection stays', async (t, binary) => {
  const c = clients(t);
  const name = uniqueChannel('client-sync');
  const [member, client] = await Promise.all([
    connected(c, env.server, { key: key(), clientId: 'm1', binary }),
    connected(c, env.server, { key: key(), binary }),
  ]);
  const ch = client.channels.get(name);
  await withTimeout(ch.attach(), 5000, 'attach');
  // Empty set: the sync still completes.
  ch.sync();
  const none = await withTimeout(ch.presence.get({ waitForSync: true }), 5000, 'get after sync (empty)');
  assert.deepEqual(none, []);
  await withTimeout(member.channels.get(name).presence.enter('here'), 5000, 'enter');
  await sleep(200);
  ch.sync();
  const members = await withTimeout(ch.presence.get({ waitForSync: true }), 5000, 'get after sync');
  assert.deepEqual(members.map((m) => [m.clientId, m.data]), [['m1', 'here']]);
  await sleep(200);
  assert.equal(client.connection.state, 'connected');
  assert.equal(ch.state, 'attached');
});

test('RTP19 raw: SYNC on an attached channel gets SYNC pages ending with an empty cursor; on a channel not attached nothing; no ERROR', async () => {
  const ws = rawWs(env.server, { key: key(), v: '6', format: 'json' });
  try {
    await ws.next((f) => f.action === ACTION.CONNECTED, 5000, 'CONNECTED');
    const name = uniqueChannel('raw-sync');
    ws.send({ action: ACTION.SYNC, channel: uniqueChannel('not-attached') });
    ws.send({ action: ACTION.ATTACH, channel: name });
    await ws.next((f) => f.action === ACTION.ATTACHED, 5000, 'ATTACHED');
    ws.send({ action: ACTION.SYNC, channel: name });
    const sync = await ws.next((f) => f.action === ACTION.SYNC, 5000, 'SYNC');
    assert.equal(sync.channel, name);
    assert.match(sync.channelSerial, /^[^:]+:$/, 'one page: empty cursor');
    await sleep(200);
    assert.equal(ws.frames.some((f) => f.action === ACTION.ERROR || f.action === ACTION.DISCONNECTED), false, JSON.stringify(ws.frames));
  } finally {
    ws.terminate();
  }
});

test('RTP17i/remainPresentFor: the members of a connection whose transport is lost leave after its remainPresentFor (ms), although it stays resumable; when it resumes, its channel re-attaches without RESUMED and ably-js enters them again (ably-js presence_auto_reenter_different_connid)', { timeout: 40_000 }, async (t) => {
  // A server with Ably's connectionStateTtl (2 min), so the leave comes from remainPresentFor.
  const server = await startServer({ label: 'presence-remain' });
  t.after(() => server.stop());
  const app = await createApp(server);
  const k = app.keys[0].keyStr;
  const c = clients(t);
  const name = uniqueChannel('remain');
  const observer = await connected(c, server, { key: k });
  const och = observer.channels.get(name);
  const events = [];
  await withTimeout(och.presence.subscribe((p) => events.push({ action: p.action, clientId: p.clientId, connectionId: p.connectionId, at: Date.now() })), 5000, 'observer attach');
  const client = await connected(c, server, { key: k, clientId: 'stayer', transportParams: { remainPresentFor: 1000 }, suspendedRetryTimeout: 60_000 });
  const id = client.connection.id;
  const ch = client.channels.get(name);
  await withTimeout(ch.presence.enter('x'), 5000, 'enter');
  await waitUntil(() => events.some((e) => e.action === 'enter'), 5000, 'enter seen');
  const states = [];
  ch.on((sc) => states.push(sc));
  // Keep the client away (SUSPENDED: no retry) until the leave, then let it resume.
  const cm = client.connection.connectionManager;
  client.connection.once('disconnected', () => cm.notifyState({ state: 'suspended' }));
  const lost = Date.now();
  dropConnection(client);
  await waitForConnectionState(client, 'suspended', { timeoutMs: 5000, failOn: ['failed'] });
  await waitUntil(() => events.some((e) => e.action === 'leave'), 8000, 'leave after remainPresentFor');
  const leave = events.find((e) => e.action === 'leave');
  assert.equal(leave.connectionId, id);
  assert.ok(leave.at - lost < 3500, `left ${leave.at - lost} ms after the loss (remainPresentFor 1000)`);
  // The client comes back (resume, same connection) and enters again.
  client.connection.connect();
  await waitForConnectionState(client, 'connected', { timeoutMs: 10_000 });
  assert.equal(client.connection.id, id, 'the connection was still resumable');
  await waitUntil(() => events.filter((e) => e.action === 'enter').length >= 2, 8000, 're-entered');
  const attached = states.find((s) => s.current === 'attached' || (s.current === 'attached' && s.previous === 'attached'));
  assert.equal(attached?.resumed ?? false, false, `re-attached without RESUMED: ${JSON.stringify(states.map((s) => [s.previous, s.current, s.resumed]))}`);
  const members = await och.presence.get();
  assert.deepEqual(members.map((m) => [m.clientId, m.connectionId]), [['stayer', id]]);
});

test('remainPresentFor: without it a lost connection\'s members stay present for Ably\'s 15 s (here: still present after 3 s)', { timeout: 20_000 }, async (t) => {
  const server = await startServer({ label: 'presence-remain-default' });
  t.after(() => server.stop());
  const app = await createApp(server);
  const k = app.keys[0].keyStr;
  const c = clients(t);
  const name = uniqueChannel('remain-default');
  const observer = await connected(c, server, { key: k });
  const client = await connected(c, server, { key: k, clientId: 'default', disconnectedRetryTimeout: 10_000 });
  await withTimeout(client.channels.get(name).presence.enter(), 5000, 'enter');
  const och = observer.channels.get(name);
  await waitUntil(async () => (await och.presence.get()).length === 1, 5000, 'member seen');
  dropConnection(client);
  await sleep(3000);
  assert.deepEqual((await och.presence.get()).map((m) => m.clientId), ['default']);
});

// ably-js rest/presence "Presence history simple" reads the presence
// history of persisted:presence_fixtures right after POST /apps and counts
// the 6 fixture members, each as an ENTER. A new app here, so that its
// history is read straight after the 201 (the ENTERs are durable by then).
bothProtocols('RSP4/TP2 the fixture members of a new app (POST /apps `channels`) are in presence history at once, as ENTER events with their data decoded; attaching and loading the channel again adds none, and no ENTER is broadcast to an attacher', async (t, binary) => {
  const c = clients(t);
  const fixture = appSetup().channels[0];
  const app = await createApp(env.server, appSetup());
  const appKey = app.keys[0].keyStr;
  const rest = c.rest(env.server, { key: appKey, binary });
  const ch = rest.channels.get(fixture.name);
  const hist = await withTimeout(ch.presence.history(), 5000, 'presence history');
  assert.equal(hist.items.length, fixture.presence.length, JSON.stringify(hist.items));
  assert.deepEqual(hist.items.map((p) => p.clientId).sort(), fixture.presence.map((p) => p.clientId).sort());
  assert.ok(hist.items.every((p) => p.action === 'enter'), `every item an ENTER: ${hist.items.map((p) => p.action)}`);
  const byId = Object.fromEntries(hist.items.map((p) => [p.clientId, p]));
  assert.equal(byId['member-flag'].data, 'true');
  assert.deepEqual(byId['member-json'].data, { profile: { name: 'Ada', langs: ['C', 'JS'] } });
  assert.equal((await ch.presence.get()).items.every((p) => p.action === 'present'), true, 'the set holds them as PRESENT');

  const rt = await connected(c, env.server, { key: appKey, binary });
  const rch = rt.channels.get(fixture.name);
  const seen = [];
  await withTimeout(rch.presence.subscribe((p) => seen.push(p)), 5000, 'presence subscribe');
  const m = await withTimeout(rch.presence.get(), 5000, 'realtime presence.get');
  assert.equal(m.length, fixture.presence.length);
  await sleep(300);
  // The SYNC shows them as present; an ENTER would be a broadcast.
  assert.deepEqual(seen.filter((p) => p.action !== 'present').map((p) => `${p.action}:${p.clientId}`), [], 'no ENTER broadcast for the fixture members');
  const again = await ch.presence.history();
  assert.equal(again.items.length, fixture.presence.length, 'no second set of ENTERs');
});

test('RSP4 fixture ENTERs are recorded once: after a restart with --data the reloaded channel has the same 6, none added', { timeout: 40_000 }, async (t) => {
  const tmp = makeTempDir();
  t.after(() => tmp.cleanup());
  let server = await startServer({ data: tmp.dir, label: 'pres-fixture-1' });
  let live = server;
  t.after(async () => {
    if (live) await live.stop({ allowAlreadyExited: true }).catch(() => {});
  });
  const fixture = appSetup().channels[0];
  const app = await createApp(server, appSetup());
  const appKey = app.keys[0].keyStr;
  const ids = async (srv) => {
    const c = clients(t);
    const h = await withTimeout(c.rest(srv, { key: appKey }).channels.get(fixture.name).presence.history(), 5000, 'history');
    return h.items.map((p) => `${p.action}:${p.clientId}`).sort();
  };
  const before = await ids(server);
  assert.equal(before.length, fixture.presence.length);
  await server.stop();
  server = live = await startServer({ data: tmp.dir, label: 'pres-fixture-2' });
  const c2 = clients(t);
  const members = (await c2.rest(server, { key: appKey }).channels.get(fixture.name).presence.get()).items;
  assert.equal(members.length, fixture.presence.length, 'the set is loaded again');
  assert.deepEqual(await ids(server), before, 'no second set of ENTERs');
});
