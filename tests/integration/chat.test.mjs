// Ably Chat with the npm @ably/chat SDK over the real ably SDK, against
// switchboard: rooms ("<room>::$chat" channels, capabilities on the room's
// name), messages (the Chat REST API: send, history, get, update, delete,
// versions; realtime message.created/updated/deleted), message reactions
// (annotations of reaction:*.v1 with their summaries, raw reactions),
// presence, typing and room reactions (ephemeral messages, not stored),
// and occupancy (the occupancy channel param and [meta]occupancy events,
// GET .../occupancy). Clients authenticate with JWTs shaped as Ably's Chat
// authentication docs show: {"<room>": [...]} or {"<ns>:*": [...]} with an
// x-ably-clientId.
import assert from 'node:assert/strict';
import { beforeEach } from 'node:test';
import { ChatClient, ChatMessageEventType, MessageReactionType, RoomStatus } from '@ably/chat';
import { useServer, clients, createApp, uniqueChannel, withTimeout, waitUntil, settle, sleep, test } from './lib/server.mjs';
import { ablyJwt } from './lib/auth.mjs';

const env = useServer({ label: 'chat' });
let key;
let appReady;
beforeEach(() => {
  appReady ??= (async () => {
    const app = await createApp(env.server, { keys: [{}] });
    key = app.keys[0];
  })();
  return appReady;
});

/** Everything a Chat user needs on a room (Ably's Chat auth docs, "Chat capabilities"). */
const USER_OPS = [
  'publish',
  'subscribe',
  'presence',
  'history',
  'message-update-own',
  'message-delete-own',
  'annotation-publish',
  'annotation-subscribe',
  'channel-metadata',
];

/** A ChatClient for clientId, authenticated by a JWT with capability (authCallback, as the docs do). */
function chatClient(c, clientId, capability, { binary = true } = {}) {
  const token = ablyJwt(key, { capability, clientId });
  const realtime = c.realtime(env.server, { binary, authCallback: (_params, cb) => cb(null, token) });
  return new ChatClient(realtime, { logLevel: 'silent' });
}

const roomName = (p) => uniqueChannel(p);
const within = (p, what, ms = 8000) => withTimeout(p, ms, what);

/** Collects events of a subscribe(listener) style API. */
function events(subscribe) {
  const got = [];
  const sub = subscribe((e) => got.push(e));
  return { got, sub, until: (n, what) => waitUntil(() => got.length >= n, 8000, what ?? `${n} events`) };
}

for (const binary of [true, false]) {
  const proto = binary ? 'msgpack' : 'json';

  test(`Chat rooms and messages: send, receive, history, get, update, delete, versions, with a room-scoped token [${proto}]`, { timeout: 40_000 }, async (t) => {
    const c = clients(t);
    const name = roomName('room');
    const cap = { [name]: USER_OPS };
    const alice = chatClient(c, 'alice', cap, { binary });
    const bob = chatClient(c, 'bob', cap, { binary: !binary });
    const aroom = await alice.rooms.get(name);
    const broom = await bob.rooms.get(name);
    const got = events((l) => broom.messages.subscribe(l));
    await within(aroom.attach(), 'alice attach');
    await within(broom.attach(), 'bob attach');
    assert.equal(aroom.status, RoomStatus.Attached);
    const sent = await within(aroom.messages.send({ text: 'hello', metadata: { n: 1 }, headers: { h: 'x' } }), 'send');
    assert.equal(sent.text, 'hello');
    assert.equal(sent.clientId, 'alice');
    assert.deepEqual(sent.metadata, { n: 1 });
    assert.deepEqual(sent.headers, { h: 'x' });
    assert.ok(sent.serial);
    await got.until(1, 'bob receives the message');
    assert.equal(got.got[0].type, ChatMessageEventType.Created);
    assert.equal(got.got[0].message.text, 'hello');
    assert.equal(got.got[0].message.serial, sent.serial);
    assert.deepEqual(got.got[0].message.headers, { h: 'x' });
    const second = await aroom.messages.send({ text: 'second' });
    await got.until(2, 'second message');
    // History through the Chat REST API, newest first by default.
    const hist = await aroom.messages.history({ limit: 10 });
    assert.deepEqual(hist.items.map((m) => m.text), ['second', 'hello']);
    const one = await broom.messages.get(sent.serial);
    assert.equal(one.text, 'hello');
    assert.equal(one.clientId, 'alice');
    // Update and delete (message-update-own / message-delete-own).
    const upd = await aroom.messages.update(sent.serial, { text: 'hello, edited', metadata: { n: 2 } }, { description: 'typo' });
    assert.equal(upd.text, 'hello, edited');
    assert.equal(upd.action, 'message.update');
    assert.equal(upd.version.description, 'typo');
    assert.equal(upd.version.clientId, 'alice');
    await got.until(3, 'bob receives the update');
    assert.equal(got.got[2].type, ChatMessageEventType.Updated);
    assert.equal(got.got[2].message.text, 'hello, edited');
    assert.equal(got.got[2].message.serial, sent.serial);
    const del = await aroom.messages.delete(second.serial, { description: 'gone' });
    assert.equal(del.action, 'message.delete');
    await got.until(4, 'bob receives the delete');
    assert.equal(got.got[3].type, ChatMessageEventType.Deleted);
    const vers = await aroom.messages.getVersions(sent.serial);
    // RSL14: the versions list the original message.create too, newest first.
    assert.deepEqual(vers.items.map((m) => m.text), ['hello, edited', 'hello']);
    // Bob may not update or delete Alice's message with -own rights.
    const r = await settle(broom.messages.update(sent.serial, { text: 'hijack' }));
    assert.equal(r.ok, false);
    assert.equal(r.error.code, 40160);
    const after = await broom.messages.history({ limit: 10 });
    // A delete is soft (RSL15, and Chat's docs print a deleted message's text): the text stays.
    assert.deepEqual(after.items.map((m) => [m.text, m.action]), [['second', 'message.delete'], ['hello, edited', 'message.update']]);
  });
}

test('Chat message reactions: distinct, unique and multiple summaries live and in history, raw reactions, deletes, clientReactions', { timeout: 40_000 }, async (t) => {
  const c = clients(t);
  const name = roomName('react');
  const cap = { [name]: USER_OPS };
  const opts = { messages: { rawMessageReactions: true } };
  const alice = chatClient(c, 'alice', cap);
  const bob = chatClient(c, 'bob', cap, { binary: false });
  const aroom = await alice.rooms.get(name, opts);
  const broom = await bob.rooms.get(name, opts);
  const summaries = events((l) => broom.messages.reactions.subscribe(l));
  const raw = events((l) => broom.messages.reactions.subscribeRaw(l));
  await within(Promise.all([aroom.attach(), broom.attach()]), 'attach');
  const msg = await aroom.messages.send({ text: 'react to me' });
  await aroom.messages.reactions.send(msg.serial, { name: '👍' }); // distinct by default
  await broom.messages.reactions.send(msg.serial, { name: '👍' });
  await aroom.messages.reactions.send(msg.serial, { name: '❤️', type: MessageReactionType.Unique });
  await aroom.messages.reactions.send(msg.serial, { name: '🎉', type: MessageReactionType.Unique }); // moves alice
  await broom.messages.reactions.send(msg.serial, { name: '⭐', type: MessageReactionType.Multiple, count: 3 });
  await summaries.until(5, 'five summaries');
  await raw.until(5, 'five raw reactions');
  assert.deepEqual(raw.got.map((e) => [e.type, e.reaction.name, e.reaction.clientId]), [
    ['reaction.create', '👍', 'alice'],
    ['reaction.create', '👍', 'bob'],
    ['reaction.create', '❤️', 'alice'],
    ['reaction.create', '🎉', 'alice'],
    ['reaction.create', '⭐', 'bob'],
  ]);
  const last = summaries.got.at(-1);
  assert.equal(last.messageSerial, msg.serial);
  assert.deepEqual(last.reactions.distinct, { '👍': { total: 2, clientIds: ['alice', 'bob'], clipped: false } });
  assert.deepEqual(last.reactions.unique, { '🎉': { total: 1, clientIds: ['alice'], clipped: false } });
  assert.deepEqual(last.reactions.multiple, {
    '⭐': { total: 3, clientIds: { bob: 3 }, totalUnidentified: 0, clipped: false, totalClientIds: 1 },
  });
  // A message applies summary events to itself (Message.with).
  const withSummary = msg.with(last);
  assert.equal(withSummary.reactions.distinct['👍'].total, 2);
  // Deletes: distinct by name, unique without one.
  await broom.messages.reactions.delete(msg.serial, { name: '👍' });
  await aroom.messages.reactions.delete(msg.serial, { type: MessageReactionType.Unique });
  await summaries.until(7, 'summaries after the deletes');
  const final = summaries.got.at(-1);
  assert.deepEqual(final.reactions.distinct, { '👍': { total: 1, clientIds: ['alice'], clipped: false } });
  assert.deepEqual(final.reactions.unique, {});
  assert.equal(raw.got[5].type, 'reaction.delete');
  // History and get carry the summaries.
  const hist = await broom.messages.history({ limit: 1 });
  assert.deepEqual(hist.items[0].reactions.distinct, final.reactions.distinct);
  assert.equal(hist.items[0].reactions.multiple['⭐'].total, 3);
  const mine = await broom.messages.reactions.clientReactions(msg.serial);
  assert.deepEqual(Object.keys(mine.distinct), []);
  assert.deepEqual(mine.multiple['⭐'].clientIds, { bob: 3 });
  const hers = await broom.messages.reactions.clientReactions(msg.serial, 'alice');
  assert.deepEqual(hers.distinct['👍'].clientIds, ['alice']);
});

test('Chat presence, typing and room reactions; typing and room reactions are ephemeral (extras.ephemeral: not stored, not replayed)', { timeout: 40_000 }, async (t) => {
  const c = clients(t);
  const name = roomName('live');
  const cap = { [name]: USER_OPS };
  const alice = chatClient(c, 'alice', cap);
  const bob = chatClient(c, 'bob', cap, { binary: false });
  const aroom = await alice.rooms.get(name, { typing: { heartbeatThrottleMs: 1000 } });
  const broom = await bob.rooms.get(name);
  const presence = events((l) => broom.presence.subscribe(l));
  const typing = events((l) => broom.typing.subscribe(l));
  const reactions = events((l) => broom.reactions.subscribe(l));
  await within(Promise.all([aroom.attach(), broom.attach()]), 'attach');
  // Presence.
  await aroom.presence.enter({ status: 'here' });
  await presence.until(1, 'presence enter');
  assert.equal(presence.got[0].type, 'enter');
  assert.equal(presence.got[0].member.clientId, 'alice');
  assert.deepEqual(presence.got[0].member.data, { status: 'here' });
  assert.equal(await broom.presence.isUserPresent('alice'), true);
  const members = await broom.presence.get();
  assert.deepEqual(members.map((m) => m.clientId), ['alice']);
  await aroom.presence.update({ status: 'busy' });
  await presence.until(2, 'presence update');
  assert.equal(presence.got[1].type, 'update');
  // Typing: keystroke, then stop.
  await aroom.typing.keystroke();
  await typing.until(1, 'typing started');
  assert.deepEqual([...typing.got[0].currentlyTyping], ['alice']);
  assert.equal(typing.got[0].change.type, 'typing.started');
  await aroom.typing.stop();
  await typing.until(2, 'typing stopped');
  assert.deepEqual([...typing.got[1].currentlyTyping], []);
  // Room reactions.
  await aroom.reactions.send({ name: '🎉', metadata: { big: true } });
  await reactions.until(1, 'room reaction');
  assert.equal(reactions.got[0].reaction.name, '🎉');
  assert.equal(reactions.got[0].reaction.clientId, 'alice');
  assert.deepEqual(reactions.got[0].reaction.metadata, { big: true });
  await aroom.presence.leave();
  await presence.until(3, 'presence leave');
  assert.equal(presence.got[2].type, 'leave');
  // None of the ephemeral messages is in the channel's history, nor in a rewind.
  await aroom.messages.send({ text: 'kept' });
  const rest = c.rest(env.server, { key: key.keyStr });
  const hist = await rest.channels.get(`${name}::$chat`).history();
  assert.deepEqual(hist.items.map((m) => m.name), ['chat.message']);
  const late = c.realtime(env.server, { key: key.keyStr });
  const lch = late.channels.get(`${name}::$chat`, { params: { rewind: '10' } });
  const seen = [];
  await lch.subscribe((m) => seen.push(m.name));
  await waitUntil(() => seen.length >= 1, 5000, 'rewind');
  await sleep(300);
  assert.deepEqual(seen, ['chat.message']);
});

test('extras.ephemeral messages (any channel): delivered live without a serial or channelSerial, acknowledged, never stored', { timeout: 30_000 }, async (t) => {
  const c = clients(t);
  const name = uniqueChannel('eph');
  const a = c.realtime(env.server, { key: key.keyStr });
  const b = c.realtime(env.server, { key: key.keyStr, useBinaryProtocol: false });
  const bch = b.channels.get(name);
  const seen = [];
  await bch.subscribe((m) => seen.push(m));
  await bch.attach();
  const before = bch.properties.channelSerial;
  const ach = a.channels.get(name);
  const res = await ach.publish({ name: 'blip', data: 'x', extras: { ephemeral: true } });
  assert.deepEqual(res.serials, [null], 'no serial for an ephemeral message');
  await ach.publish('kept', 'y');
  await waitUntil(() => seen.length === 2, 5000, 'both messages');
  assert.equal(seen[0].name, 'blip');
  assert.equal(seen[0].serial, undefined);
  assert.equal(seen[0].extras.ephemeral, true);
  assert.ok(bch.properties.channelSerial > before, 'the stored message moves channelSerial');
  const hist = await c.rest(env.server, { key: key.keyStr }).channels.get(name).history();
  assert.deepEqual(hist.items.map((m) => m.name), ['kept']);
});

test('Chat occupancy: [meta]occupancy events with the occupancy param (channel-metadata), occupancy.get() over REST, current', { timeout: 40_000 }, async (t) => {
  const c = clients(t);
  const name = roomName('occ');
  const cap = { [name]: USER_OPS };
  const alice = chatClient(c, 'alice', cap);
  const bob = chatClient(c, 'bob', cap, { binary: false });
  const aroom = await alice.rooms.get(name, { occupancy: { enableEvents: true } });
  const occ = events((l) => aroom.occupancy.subscribe(l));
  await within(aroom.attach(), 'alice attach');
  await occ.until(1, 'occupancy on attach');
  assert.equal(occ.got[0].occupancy.connections, 1);
  assert.equal(occ.got[0].occupancy.presenceMembers, 0);
  const broom = await bob.rooms.get(name);
  await within(broom.attach(), 'bob attach');
  await broom.presence.enter();
  await waitUntil(
    () => occ.got.some((e) => e.occupancy.connections === 2 && e.occupancy.presenceMembers === 1),
    8000,
    'occupancy with bob present',
  );
  assert.deepEqual(aroom.occupancy.current, { connections: 2, presenceMembers: 1 });
  assert.deepEqual(await broom.occupancy.get(), { connections: 2, presenceMembers: 1 });
  await broom.detach();
  await waitUntil(() => occ.got.at(-1).occupancy.connections === 1, 8000, 'occupancy after bob left');
  assert.equal(occ.got.at(-1).occupancy.presenceMembers, 0);
  // Without channel-metadata: no events, and the REST call is refused.
  const noMeta = chatClient(c, 'carol', { [name]: ['publish', 'subscribe', 'presence', 'history'] });
  const croom = await noMeta.rooms.get(name, { occupancy: { enableEvents: true } });
  const cocc = events((l) => croom.occupancy.subscribe(l));
  await within(croom.attach(), 'carol attach');
  const r = await settle(croom.occupancy.get());
  assert.equal(r.ok, false);
  assert.equal(r.error.code, 40160);
  await sleep(1500);
  assert.equal(cocc.got.length, 0, 'no occupancy events without channel-metadata');
});

test('[meta]occupancy with the plain SDK: occupancy=metrics gives every metric, metrics.<name> only that one', { timeout: 30_000 }, async (t) => {
  const c = clients(t);
  const name = uniqueChannel('occ');
  const a = c.realtime(env.server, { key: key.keyStr });
  const all = a.channels.get(name, { params: { occupancy: 'metrics' } });
  const one = c.realtime(env.server, { key: key.keyStr, useBinaryProtocol: false }).channels.get(name, {
    params: { occupancy: 'metrics.subscribers' },
  });
  const gotAll = [];
  const gotOne = [];
  await all.subscribe('[meta]occupancy', (m) => gotAll.push(m));
  await one.subscribe('[meta]occupancy', (m) => gotOne.push(m));
  await waitUntil(() => gotAll.some((m) => m.data.metrics.connections === 2) && gotOne.length, 8000, 'events');
  const m = gotAll.find((x) => x.data.metrics.connections === 2);
  assert.deepEqual(Object.keys(m.data.metrics).sort(), [
    'connections', 'objectPublishers', 'objectSubscribers', 'presenceConnections', 'presenceMembers',
    'presenceSubscribers', 'publishers', 'subscribers',
  ]);
  assert.equal(m.serial, undefined, 'not a stored message');
  assert.deepEqual(Object.keys(gotOne.at(-1).data.metrics), ['subscribers']);
  const hist = await c.rest(env.server, { key: key.keyStr }).channels.get(name).history();
  assert.equal(hist.items.length, 0);
});

test('Chat tokens as Ably\'s docs show them: {"<room>": [...]}, {"dms:*": [...]}, {"*": [...]} work on "<room>::$chat"; other rooms get 40160', { timeout: 40_000 }, async (t) => {
  const c = clients(t);
  const dm = `dms:${uniqueChannel('pair')}`;
  const shapes = [
    ['room-scoped', 'lobby', { lobby: USER_OPS }],
    ['namespace', dm, { 'dms:*': USER_OPS }],
    ['all rooms', uniqueChannel('any'), { '*': USER_OPS }],
  ];
  for (const [label, room, cap] of shapes) {
    const client = chatClient(c, `u-${label}`, cap);
    const r = await client.rooms.get(room);
    await within(r.attach(), `${label}: attach`);
    const m = await within(r.messages.send({ text: label }), `${label}: send`);
    const h = await r.messages.history({ limit: 1 });
    assert.equal(h.items[0].serial, m.serial, `${label}: history`);
  }
  // A room the token does not name: the attach and the REST calls are refused.
  const scoped = chatClient(c, 'scoped', { lobby: USER_OPS });
  const other = await scoped.rooms.get('elsewhere');
  const att = await settle(other.attach());
  assert.equal(att.ok, false);
  assert.equal(att.error.code, 40160);
  const send = await settle(other.messages.send({ text: 'no' }));
  assert.equal(send.ok, false);
  assert.equal(send.error.code, 40160);
  // The plain SDK: a token for "lobby" attaches "lobby::$chat" (capabilities match the name
  // without its "::$" suffix), not "lobby:x" nor "lobbyx::$chat".
  const token = ablyJwt(key, { capability: { lobby: ['subscribe'] }, clientId: 'plain' });
  const rt = c.realtime(env.server, { authCallback: (_p, cb) => cb(null, token) });
  await within(rt.channels.get('lobby::$chat').attach(), 'lobby::$chat attach');
  for (const refused of ['lobbyx::$chat', 'lobby:x']) {
    const r = await settle(rt.channels.get(refused).attach());
    assert.equal(r.ok, false, refused);
    assert.equal(r.error.code, 40160, refused);
  }
});

test('Chat history pages (next) and historyBeforeSubscribe (fromSerial: the attach point)', { timeout: 40_000 }, async (t) => {
  const c = clients(t);
  const name = roomName('pages');
  const cap = { [name]: USER_OPS };
  const alice = chatClient(c, 'alice', cap);
  const aroom = await alice.rooms.get(name);
  for (let i = 0; i < 5; i++) await aroom.messages.send({ text: `m${i}` });
  let page = await aroom.messages.history({ limit: 2 });
  const texts = [];
  for (;;) {
    texts.push(...page.items.map((m) => m.text));
    if (!page.hasNext()) break;
    page = await page.next();
  }
  assert.deepEqual(texts, ['m4', 'm3', 'm2', 'm1', 'm0']);
  const fwd = await aroom.messages.history({ orderBy: 'oldestFirst', limit: 3 });
  assert.deepEqual(fwd.items.map((m) => m.text), ['m0', 'm1', 'm2']);
  // A subscriber's history before its subscription point excludes later messages.
  const bob = chatClient(c, 'bob', cap, { binary: false });
  const broom = await bob.rooms.get(name);
  const sub = broom.messages.subscribe(() => {});
  await within(broom.attach(), 'bob attach');
  await aroom.messages.send({ text: 'after' });
  const before = await sub.historyBeforeSubscribe({ limit: 10 });
  assert.deepEqual(before.items.map((m) => m.text), ['m4', 'm3', 'm2', 'm1', 'm0']);
});
