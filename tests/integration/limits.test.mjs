// Bounds on everything a client can make the server keep (issue 11, "Must
// have 1"): each is checked before anything is allocated and refused with
// the error Ably sends for it.
//
// msgSerial gaps (finding 1): a connection may skip msgSerials (recover
// continues the client's numbering), and a skipped run must cost nothing:
// 0, then 10^6, then 2^53-1 on MESSAGE, on PRESENCE, with a subscribe-only
// token (NACKed), on OBJECT and ANNOTATION. The server's RSS must stay flat
// and a real SDK client must keep being served during the attack. Resends
// after resume are still answered from the ACK memo across a gap (RTN19a2).
//
// Every other bound is tested on a second server whose limits are set low in
// its config file (so that reaching them is cheap), and the defaults Ably
// publishes (200 channels per connection, 200 presence members per channel,
// history limit 1000) on the default server.
//
// Raw `ws` sockets are used where ably-js cannot produce the input (it never
// skips msgSerials, nor sends many publishes in one TCP write).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after } from 'node:test';
import {
  useServer,
  startServer,
  createApp,
  clients,
  connected,
  collector,
  uniqueChannel,
  withTimeout,
  settle,
  sleep,
  http,
  waitForChannelState,
  ACTION,
  test,
} from './lib/server.mjs';
import {
  ablyJwt,
  wsConnected,
  wsAttach,
  writeConfig,
  signedTokenRequest,
  requestTokenRaw,
  revokeRaw,
  expectRestError,
} from './lib/auth.mjs';

const env = useServer({ label: 'limits' });
const key = (i = 0) => env.app.keys[i];

const MAX_SAFE = Number.MAX_SAFE_INTEGER; // 2^53 - 1, the largest msgSerial ably-js can send
const OBJECT = 19;
const ANNOTATION = 21;
// The server may grow a little (the test's own connections, allocator
// caches), never by anything proportional to a gap of 10^6 (~275 MB before
// the fix) or 2^53.
const RSS_SLACK_KB = 48 * 1024;

function rssKb(server) {
  const status = readFileSync(`/proc/${server.proc.pid}/status`, 'utf8');
  const m = /VmRSS:\s+(\d+)\s+kB/.exec(status);
  assert.ok(m, 'VmRSS in /proc/PID/status');
  return Number(m[1]);
}

/** The ACK or NACK that answers msgSerial (a NACK may cover a run: count). */
function answerFor(sock, serial, ms = 5000) {
  return sock.next(
    (f) =>
      (f.action === ACTION.ACK || f.action === ACTION.NACK) &&
      f.msgSerial <= serial &&
      serial < f.msgSerial + (f.count ?? 1),
    ms,
    `ACK/NACK for msgSerial ${serial}`,
  );
}

/** A real SDK client publishes and receives its own message within ms. */
async function roundTrip(sdk, name, label, ms = 5000) {
  const ch = sdk.channels.get(name);
  const col = collector(ch);
  await withTimeout(col.subscribed, ms, `${label}: attach`);
  const data = `${label}-${Date.now()}`;
  await withTimeout(ch.publish('probe', data), ms, `${label}: publish ACKed`);
  const deadline = Date.now() + ms;
  while (!col.messages.some((m) => m.data === data)) {
    await col.until(col.messages.length + 1, Math.max(1, deadline - Date.now()));
  }
  col.stop();
}

/**
 * Sends `frame(serial)` for msgSerial 0, 10^6 and 2^53-1 in turn and checks
 * each is answered (ACK, or NACK with nackCode), that a real SDK client is
 * served between them, and that the server's RSS stays flat.
 */
async function gapAttack(t, { query, channel, frame, nackCode }) {
  const c = clients(t);
  const bystander = await connected(c, env.server, { key: key().keyStr });
  const probe = uniqueChannel('bystander');
  await roundTrip(bystander, probe, 'before');
  const { sock } = await wsConnected(assert, env.server, query);
  t.after(() => sock.close());
  const att = await wsAttach(sock, channel);
  assert.equal(att.action, ACTION.ATTACHED, JSON.stringify(att));
  const before = rssKb(env.server);
  for (const serial of [0, 1_000_000, MAX_SAFE]) {
    sock.send(frame(serial));
    const a = await answerFor(sock, serial, 10_000);
    if (nackCode) {
      assert.equal(a.action, ACTION.NACK, `msgSerial ${serial}: ${JSON.stringify(a)}`);
      assert.equal(a.error?.code, nackCode, `msgSerial ${serial}: ${JSON.stringify(a)}`);
    } else {
      assert.equal(a.action, ACTION.ACK, `msgSerial ${serial}: ${JSON.stringify(a)}`);
    }
    const grown = rssKb(env.server) - before;
    assert.ok(grown < RSS_SLACK_KB, `server RSS grew by ${grown} kB up to msgSerial ${serial}`);
    await roundTrip(bystander, probe, `after msgSerial ${serial}`);
  }
  return sock;
}

test('RTN7/RTN19a2 MESSAGE with msgSerial 0, 10^6, 2^53-1: each ACKed, no memory per skipped serial, others served', { timeout: 60_000 }, async (t) => {
  const channel = uniqueChannel('gap-msg');
  const sock = await gapAttack(t, {
    query: { key: key().keyStr },
    channel,
    frame: (msgSerial) => ({ action: ACTION.MESSAGE, channel, msgSerial, messages: [{ name: 'n', data: `d${msgSerial}` }] }),
  });
  // RTN19a2: a resend of an answered publish is answered again from the
  // memo, not republished, on either side of the gaps.
  for (const serial of [0, 1_000_000]) {
    const first = sock.frames.find((f) => f.action === ACTION.ACK && f.msgSerial === serial);
    const seen = sock.frames.length;
    sock.send({ action: ACTION.MESSAGE, channel, msgSerial: serial, messages: [{ name: 'n', data: `d${serial}` }] });
    const again = await sock.next(
      (f, i = sock.frames.indexOf(f)) => i >= seen && f.action === ACTION.ACK && f.msgSerial === serial,
      5000,
      `re-ACK of resent msgSerial ${serial}`,
    );
    assert.equal(again.res?.[0]?.serials?.length, 1, JSON.stringify(again));
    // The same serials as the first ACK (the memo keeps a copy of them).
    assert.deepEqual(again.res, first?.res, JSON.stringify({ first, again }));
  }
  // A new publish after the largest serial ably-js can send is refused: the
  // numbering cannot go on (and the server's counter must not overflow).
  sock.send({ action: ACTION.MESSAGE, channel, msgSerial: 2 ** 62, messages: [{ data: 'x' }] });
  const err = await sock.next((f) => f.action === ACTION.ERROR, 5000, 'ERROR for msgSerial past 2^53-1');
  assert.equal(err.error?.code, 40003, JSON.stringify(err));
});

test('RTN7 MESSAGE gaps with a subscribe-only token: NACK 40160 each time, and still no memory per skipped serial', { timeout: 60_000 }, async (t) => {
  const channel = uniqueChannel('gap-subonly');
  const token = ablyJwt(key(), { capability: { '*': ['subscribe'] } });
  await gapAttack(t, {
    query: { accessToken: token },
    channel,
    frame: (msgSerial) => ({ action: ACTION.MESSAGE, channel, msgSerial, messages: [{ data: 'x' }] }),
    nackCode: 40160,
  });
});

test('RTP PRESENCE with msgSerial 0, 10^6, 2^53-1: each ACKed, no memory per skipped serial', { timeout: 60_000 }, async (t) => {
  const channel = uniqueChannel('gap-presence');
  const actions = { 0: 2, 1_000_000: 4, [MAX_SAFE]: 3 }; // ENTER, UPDATE, LEAVE
  await gapAttack(t, {
    query: { key: key().keyStr, clientId: 'gapper' },
    channel,
    frame: (msgSerial) => ({
      action: ACTION.PRESENCE,
      channel,
      msgSerial,
      presence: [{ action: actions[msgSerial], clientId: 'gapper', data: `p${msgSerial}` }],
    }),
  });
});

test('OBJECT (unsupported) with msgSerial 0, 10^6, 2^53-1: NACK 40000 each, no memory per skipped serial', { timeout: 60_000 }, async (t) => {
  const channel = uniqueChannel('gap-object');
  await gapAttack(t, {
    query: { key: key().keyStr },
    channel,
    frame: (msgSerial) => ({ action: OBJECT, channel, msgSerial, state: [] }),
    nackCode: 40000,
  });
});

test('RTAN ANNOTATION with msgSerial 0, 10^6, 2^53-1 on a channel without annotations: NACK 93002 each, no memory per skipped serial', { timeout: 60_000 }, async (t) => {
  const channel = uniqueChannel('gap-annotation');
  await gapAttack(t, {
    query: { key: key().keyStr },
    channel,
    frame: (msgSerial) => ({
      action: ANNOTATION,
      channel,
      msgSerial,
      annotations: [{ type: 'reaction:distinct.v1', name: 'x', messageSerial: '0000000000000001' }],
    }),
    nackCode: 93002,
  });
});

// ---------------------------------------------------------------------------
// A server with every new limit set low
// ---------------------------------------------------------------------------

const SMALL = {
  maxPendingPublishes: 2,
  maxChannelsPerConnection: 3,
  maxPresenceMembers: 3,
  maxPresenceMembersPerConnection: 4,
  maxIdempotencyIds: 5,
  maxMessageIdLength: 32,
  maxTokenRequestNonces: 2,
  maxRevocations: 3,
  maxChannelParams: 2,
  maxRewind: 5,
};
let small;
async function smallServer() {
  if (!small) {
    small = (async () => {
      const cfg = writeConfig({ limits: SMALL });
      const server = await startServer({ label: 'limits-small', extraArgs: ['--config', cfg.file] });
      const app = await createApp(server);
      return { server, app, cfg };
    })();
  }
  return small;
}
after(async () => {
  if (!small) return;
  const s = await small;
  await s.server.stop();
  s.cfg.cleanup();
});

const answers = (sock) => sock.frames.filter((f) => f.action === ACTION.ACK || f.action === ACTION.NACK);

test('RTN7 maxPendingPublishes: a burst over the bound is NACKed 42911, every publish answered once and in msgSerial order', { timeout: 30_000 }, async (t) => {
  const { server, app } = await smallServer();
  const channel = uniqueChannel('pending');
  const { sock } = await wsConnected(assert, server, { key: app.keys[0].keyStr });
  t.after(() => sock.close());
  assert.equal((await wsAttach(sock, channel)).action, ACTION.ATTACHED);
  const N = 60;
  // One TCP write: the server reads the whole burst before any store
  // completion can answer the first publishes.
  sock.ws._socket.cork();
  for (let i = 0; i < N; i++) sock.send({ action: ACTION.MESSAGE, channel, msgSerial: i, messages: [{ data: `m${i}` }] });
  sock.ws._socket.uncork();
  await answerFor(sock, N - 1, 10_000);
  const got = answers(sock);
  let next = 0;
  for (const f of got) {
    assert.equal(f.msgSerial, next, `answers in msgSerial order, each once: ${JSON.stringify(got.map((a) => [a.action, a.msgSerial, a.count]))}`);
    next += f.count ?? 1;
    if (f.action === ACTION.NACK) {
      assert.equal(f.error?.code, 42911, JSON.stringify(f));
      assert.equal(f.error?.statusCode, 429, JSON.stringify(f));
    }
  }
  assert.equal(next, N, 'every msgSerial answered');
  assert.ok(got.some((f) => f.action === ACTION.ACK), 'the first publishes are accepted');
  assert.ok(got.some((f) => f.action === ACTION.NACK), 'publishes over the bound are refused');
  // Once answered, the bound is free again.
  sock.send({ action: ACTION.MESSAGE, channel, msgSerial: N, messages: [{ data: 'after' }] });
  assert.equal((await answerFor(sock, N)).action, ACTION.ACK);
});

test('RTL4 maxChannelsPerConnection: the attach beyond it fails 90010 (channel FAILED); a re-attach or an attach after a detach works', { timeout: 30_000 }, async (t) => {
  const { server, app } = await smallServer();
  const c = clients(t);
  const client = await connected(c, server, { key: app.keys[0].keyStr });
  const names = [0, 1, 2, 3].map(() => uniqueChannel('per-conn'));
  for (const n of names.slice(0, 3)) await withTimeout(client.channels.get(n).attach(), 5000, `attach ${n}`);
  const over = await settle(withTimeout(client.channels.get(names[3]).attach(), 5000, 'attach over the limit'));
  assert.equal(over.ok, false, 'the fourth attach is refused');
  assert.equal(over.error?.code, 90010, JSON.stringify(over.error));
  assert.equal(over.error?.statusCode, 400, JSON.stringify(over.error));
  assert.equal(client.channels.get(names[3]).state, 'failed');
  assert.equal(client.connection.state, 'connected', 'only the channel fails');
  // Raw: a second ATTACH of an attached channel adds nothing.
  const { sock } = await wsConnected(assert, server, { key: app.keys[0].keyStr });
  t.after(() => sock.close());
  for (const n of names.slice(0, 3)) assert.equal((await wsAttach(sock, n)).action, ACTION.ATTACHED);
  sock.frames.length = 0;
  assert.equal((await wsAttach(sock, names[0])).action, ACTION.ATTACHED, 're-attach of an attached channel');
  const err = await wsAttach(sock, names[3]);
  assert.equal(err.action, ACTION.ERROR);
  assert.equal(err.error?.code, 90010, JSON.stringify(err));
  sock.send({ action: ACTION.DETACH, channel: names[1] });
  await sock.next((f) => f.action === ACTION.DETACHED && f.channel === names[1], 5000, 'DETACHED');
  sock.frames.length = 0;
  assert.equal((await wsAttach(sock, names[3])).action, ACTION.ATTACHED, 'room again after a detach');
});

test('RTL4 default maxChannelsPerConnection is Ably\'s 200: the 201st attach fails 90010', { timeout: 60_000 }, async (t) => {
  const { sock } = await wsConnected(assert, env.server, { key: key().keyStr });
  t.after(() => sock.close());
  const base = uniqueChannel('two-hundred');
  for (let i = 0; i < 200; i++) sock.send({ action: ACTION.ATTACH, channel: `${base}-${i}` });
  await sock.next((f) => f.action === ACTION.ATTACHED && f.channel === `${base}-199`, 20_000, '200th ATTACHED');
  assert.equal(sock.frames.filter((f) => f.action === ACTION.ATTACHED).length, 200);
  const err = await wsAttach(sock, `${base}-200`);
  assert.equal(err.action, ACTION.ERROR, JSON.stringify(err));
  assert.equal(err.error?.code, 90010, JSON.stringify(err));
  assert.match(err.error?.message ?? '', /200/);
});

test('RTP8 maxPresenceMembers per channel (91003) and maxPresenceMembersPerConnection (91003); a leave makes room', { timeout: 30_000 }, async (t) => {
  const { server, app } = await smallServer();
  const c = clients(t);
  const k = app.keys[0];
  const token = ablyJwt(k, { clientId: '*' });
  const client = await connected(c, server, { token });
  const [a, b] = [uniqueChannel('members-a'), uniqueChannel('members-b')];
  const pa = client.channels.get(a).presence;
  const pb = client.channels.get(b).presence;
  for (const id of ['c1', 'c2', 'c3']) await withTimeout(pa.enterClient(id, 'x'), 5000, `enter ${id}`);
  // The channel is full: another client (another connection) cannot enter.
  const other = await connected(c, server, { key: k.keyStr, clientId: 'outsider' });
  const full = await settle(withTimeout(other.channels.get(a).presence.enter('x'), 5000, 'enter a full channel'));
  assert.equal(full.ok, false);
  assert.equal(full.error?.code, 91003, JSON.stringify(full.error));
  assert.equal(full.error?.statusCode, 400, JSON.stringify(full.error));
  // An update of a present member is no new member.
  await withTimeout(pa.updateClient('c1', 'y'), 5000, 'update c1');
  // The connection holds 3 members; 4 is its limit.
  await withTimeout(pb.enterClient('d1', 'x'), 5000, 'enter d1 on b');
  const mine = await settle(withTimeout(pb.enterClient('d2', 'x'), 5000, 'enter d2 on b'));
  assert.equal(mine.ok, false);
  assert.equal(mine.error?.code, 91003, JSON.stringify(mine.error));
  assert.match(mine.error?.message ?? '', /connection/);
  // A leave frees a place on the channel and on the connection.
  await withTimeout(pa.leaveClient('c1'), 5000, 'leave c1');
  await withTimeout(pb.enterClient('d2', 'x'), 5000, 'enter d2 after a leave');
});

test('RTP8 default maxPresenceMembers is Ably\'s 200: the 201st member gets NACK 91003', { timeout: 30_000 }, async (t) => {
  const channel = uniqueChannel('members-200');
  const token = ablyJwt(key(), { clientId: '*' });
  const { sock } = await wsConnected(assert, env.server, { accessToken: token });
  t.after(() => sock.close());
  assert.equal((await wsAttach(sock, channel)).action, ACTION.ATTACHED);
  const presence = Array.from({ length: 200 }, (_, i) => ({ action: 2, clientId: `m${i}` }));
  sock.send({ action: ACTION.PRESENCE, channel, msgSerial: 0, presence });
  assert.equal((await answerFor(sock, 0, 10_000)).action, ACTION.ACK);
  sock.send({ action: ACTION.PRESENCE, channel, msgSerial: 1, presence: [{ action: 2, clientId: 'one-more' }] });
  const nack = await answerFor(sock, 1);
  assert.equal(nack.action, ACTION.NACK);
  assert.equal(nack.error?.code, 91003, JSON.stringify(nack));
  assert.match(nack.error?.message ?? '', /maximum number of 200 members exceeded/);
});

test('RSL1k maxIdempotencyIds per channel (42913) and maxMessageIdLength (40031) over REST; a duplicate of a kept id is still accepted', { timeout: 30_000 }, async () => {
  const { server, app } = await smallServer();
  const k = app.keys[0].keyStr;
  const name = uniqueChannel('ids');
  const post = (body) => http(server, 'POST', `/channels/${name}/messages`, { body, key: k });
  for (let i = 0; i < 5; i++) assert.equal((await post({ id: `id-${i}`, data: `d${i}` })).status, 201);
  expectRestError(assert, await post({ id: 'id-5', data: 'd5' }), 42913, 429, 'a sixth id within two minutes');
  const dup = await post({ id: 'id-0', data: 'd0' });
  assert.equal(dup.status, 201, `a resend of a kept id is acknowledged: ${dup.text}`);
  assert.equal((await post({ data: 'server-made id' })).status, 201, 'publishes without ids are not limited');
  expectRestError(assert, await post({ id: 'x'.repeat(33), data: 'd' }), 40031, 400, 'a 33-byte id');
  const hist = await http(server, 'GET', `/channels/${name}/messages?limit=100`, { key: k });
  assert.equal(hist.body.length, 6, `5 ids + 1 without: ${hist.text}`);
});

test('RSL1k maxIdempotencyIds over realtime: NACK 42913', { timeout: 30_000 }, async (t) => {
  const { server, app } = await smallServer();
  const channel = uniqueChannel('ids-rt');
  const { sock } = await wsConnected(assert, server, { key: app.keys[0].keyStr });
  t.after(() => sock.close());
  assert.equal((await wsAttach(sock, channel)).action, ACTION.ATTACHED);
  sock.send({ action: ACTION.MESSAGE, channel, msgSerial: 0, messages: [1, 2, 3, 4, 5].map((i) => ({ id: `r${i}`, data: `d${i}` })) });
  assert.equal((await answerFor(sock, 0)).action, ACTION.ACK);
  sock.send({ action: ACTION.MESSAGE, channel, msgSerial: 1, messages: [{ id: 'r6', data: 'd6' }] });
  const nack = await answerFor(sock, 1);
  assert.equal(nack.action, ACTION.NACK);
  assert.equal(nack.error?.code, 42913, JSON.stringify(nack));
});

test('RSA9 maxTokenRequestNonces: a full replay cache refuses 42910; a nonce over 256 characters is 40003', { timeout: 30_000 }, async () => {
  const { server, app } = await smallServer();
  const k = app.keys[0];
  for (let i = 0; i < 2; i++) {
    const res = await requestTokenRaw(server, k.keyName, signedTokenRequest(k));
    assert.equal(res.status, 200, res.text);
  }
  expectRestError(assert, await requestTokenRaw(server, k.keyName, signedTokenRequest(k)), 42910, 429, 'cache full');
  const long = await requestTokenRaw(server, k.keyName, signedTokenRequest(k, { nonce: 'n'.repeat(257) }));
  expectRestError(assert, long, 40003, 400, 'nonce of 257 characters');
});

test('RSA17 maxRevocations: targets beyond the bound fail 42910 alone; repeating a revocation does not grow the list; an over-long target is 40003', { timeout: 30_000 }, async () => {
  const { server, app } = await smallServer();
  const k = app.keys.find((x) => x.revocableTokens) ?? app.keys[4];
  const revoke = (targets) => revokeRaw(server, k.keyName, { targets }, { key: k.keyStr });
  const first = await revoke(['clientId:a', 'clientId:b', 'clientId:c', 'clientId:d']);
  assert.equal(first.status, 201, first.text);
  assert.equal(first.body.successCount, 3, first.text);
  assert.equal(first.body.failureCount, 1, first.text);
  const d = first.body.results.find((r) => r.target === 'clientId:d');
  assert.equal(d.error?.code, 42910, JSON.stringify(d));
  assert.equal(d.error?.statusCode, 429, JSON.stringify(d));
  const again = await revoke(['clientId:a', 'clientId:b']);
  assert.equal(again.body.successCount, 2, `a repeated revocation replaces the old rule: ${again.text}`);
  const long = await revoke([`channel:${'x'.repeat(2049)}`]);
  assert.equal(long.body.failureCount, 1, long.text);
  assert.equal(long.body.results[0].error?.code, 40003, long.text);
});

test('RTL4k maxChannelParams: too many or too long params are refused 40003, in ATTACH params and in the [?...] qualifier', { timeout: 30_000 }, async (t) => {
  const { server, app } = await smallServer();
  const { sock } = await wsConnected(assert, server, { key: app.keys[0].keyStr });
  t.after(() => sock.close());
  const refused = async (frame, what) => {
    sock.send({ action: ACTION.ATTACH, ...frame });
    const f = await sock.next((x) => x.channel === frame.channel && (x.action === ACTION.ERROR || x.action === ACTION.ATTACHED), 5000, what);
    assert.equal(f.action, ACTION.ERROR, `${what}: ${JSON.stringify(f)}`);
    assert.equal(f.error?.code, 40003, `${what}: ${JSON.stringify(f)}`);
  };
  const n = () => uniqueChannel('params');
  await refused({ channel: n(), params: { a: '1', b: '2', c: '3' } }, 'three params');
  await refused({ channel: `[?a=1&b=2&c=3]${n()}` }, 'three params in the qualifier');
  await refused({ channel: n(), params: { a: 'v'.repeat(257) } }, 'a 257-byte value');
  await refused({ channel: `[?${'k'.repeat(65)}=1]${n()}` }, 'a 65-byte name in the qualifier');
  const ok = n();
  sock.send({ action: ACTION.ATTACH, channel: ok, params: { a: '1', rewind: '1' } });
  const att = await sock.next((x) => x.channel === ok, 5000, 'ATTACHED');
  assert.equal(att.action, ACTION.ATTACHED, JSON.stringify(att));
  assert.deepEqual(att.params, { rewind: '1' }, 'RTL4k1: an unknown param counts against the limit but is not echoed');
});

test('RTL4 rewind is bounded: a count beyond maxRewind, a duration (also a huge one) and rewindLimit send at most maxRewind, the latest', { timeout: 30_000 }, async (t) => {
  const { server, app } = await smallServer();
  const k = app.keys[0].keyStr;
  const name = uniqueChannel('rewind');
  for (let i = 0; i < 8; i++) {
    const r = await http(server, 'POST', `/channels/${name}/messages`, { body: { data: `m${i}` }, key: k });
    assert.equal(r.status, 201);
  }
  const c = clients(t);
  const sub = await connected(c, server, { key: k });
  const rewound = async (params, want) => {
    const ch = sub.channels.get(`[?${new URLSearchParams(params)}]${name}`);
    const col = collector(ch);
    await withTimeout(col.subscribed, 5000, `attach ${JSON.stringify(params)}`);
    await col.until(want.length, 5000);
    await sleep(300); // nothing more arrives
    assert.deepEqual(col.messages.map((m) => m.data), want, JSON.stringify(params));
    await ch.detach();
  };
  const last = (n) => Array.from({ length: n }, (_, i) => `m${8 - n + i}`);
  await rewound({ rewind: '50' }, last(5));
  await rewound({ rewind: '1m' }, last(5));
  await rewound({ rewind: '2m', rewindLimit: '3' }, last(3));
  await rewound({ rewind: '99999999999999999999999m' }, last(5));
  await rewound({ rewind: '2' }, last(2));
  await rewound({ rewind: '0s' }, []);
  await rewound({ rewind: '1m', rewindLimit: '0' }, []);
});

test('RTL4 a time rewind on the default server sends at most Ably\'s 100 messages, the latest', { timeout: 30_000 }, async (t) => {
  const k = key().keyStr;
  const name = uniqueChannel('rewind-100');
  const body = Array.from({ length: 110 }, (_, i) => ({ data: `m${i}` }));
  assert.equal((await http(env.server, 'POST', `/channels/${name}/messages`, { body, key: k })).status, 201);
  const c = clients(t);
  const sub = await connected(c, env.server, { key: k });
  const col = collector(sub.channels.get(`[?rewind=1m]${name}`));
  await withTimeout(col.subscribed, 5000, 'attach with rewind=1m');
  await col.until(100, 5000);
  await sleep(300);
  assert.equal(col.messages.length, 100);
  assert.equal(col.messages[0].data, 'm10');
  assert.equal(col.messages[99].data, 'm109');
});

test('RSL2b3 REST paging: limit above 1000 is 40003, 1000 is fine; an over-long from_serial or cursor is 40003, not ignored', { timeout: 30_000 }, async () => {
  const k = key().keyStr;
  const name = uniqueChannel('paging');
  const get = (q) => http(env.server, 'GET', `/channels/${name}/messages?${q}`, { key: k });
  expectRestError(assert, await get('limit=1001'), 40003, 400, 'limit 1001');
  assert.equal((await get('limit=1000')).status, 200);
  expectRestError(assert, await get(`from_serial=${'0'.repeat(40)}`), 40003, 400, '40-character from_serial');
  expectRestError(assert, await get(`cursor=${'0'.repeat(40)}`), 40003, 400, '40-character cursor');
  expectRestError(assert, await get(`limit=${'9'.repeat(40)}`), 40003, 400, '40-digit limit');
  expectRestError(assert, await get('start=99999999999999999999'), 40003, 400, 'start out of range');
});

test('TO3l8 extras count into maxMessageSize: a message (realtime and REST) and a presence message with 70 KB of extras are refused 40009', { timeout: 30_000 }, async (t) => {
  const channel = uniqueChannel('extras');
  const headers = { h: 'x'.repeat(70 * 1024) };
  const token = ablyJwt(key(), { clientId: 'big' });
  const { sock } = await wsConnected(assert, env.server, { accessToken: token });
  t.after(() => sock.close());
  assert.equal((await wsAttach(sock, channel)).action, ACTION.ATTACHED);
  sock.send({ action: ACTION.MESSAGE, channel, msgSerial: 0, messages: [{ data: 'small', extras: { headers } }] });
  const m = await answerFor(sock, 0);
  assert.equal(m.action, ACTION.NACK);
  assert.equal(m.error?.code, 40009, JSON.stringify(m));
  sock.send({ action: ACTION.PRESENCE, channel, msgSerial: 1, presence: [{ action: 2, clientId: 'big', data: 'small', extras: { headers } }] });
  const p = await answerFor(sock, 1);
  assert.equal(p.action, ACTION.NACK, JSON.stringify(p).slice(0, 300));
  assert.equal(p.error?.code, 40009, JSON.stringify(p));
  const rest = await http(env.server, 'POST', `/channels/${channel}/messages`, {
    body: { data: 'small', extras: { headers } },
    key: key().keyStr,
  });
  expectRestError(assert, rest, 40009, 400, 'REST publish with big extras');
});
