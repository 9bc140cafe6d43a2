// Bounds on everything a client can make the server keep (issue 11, "Must
// have 1"): each is checked before anything is allocated and refused with
// the error Ably sends for it.
//
// msgSerial gaps (finding 1): a connection may skip msgSerials (recover
// continues the client's numbering), and a skipped run must cost nothing:
// 0, then 10^6, then 2^53-1 on MESSAGE, on PRESENCE, with a subscribe-only
// token (NACKed), on OBJECT. The server's RSS must stay flat and a real SDK
// client must keep being served during the attack. Resends after resume are
// still answered from the ACK memo across a gap (RTN19a2).
//
// Raw `ws` sockets are used where ably-js cannot produce the input (it never
// skips msgSerials).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  useServer,
  startServer,
  createApp,
  clients,
  connected,
  collector,
  uniqueChannel,
  withTimeout,
  ACTION,
  test,
} from './lib/server.mjs';
import { ablyJwt, wsConnected, wsAttach, writeConfig } from './lib/auth.mjs';

const env = useServer({ label: 'limits' });
const key = (i = 0) => env.app.keys[i];

const MAX_SAFE = Number.MAX_SAFE_INTEGER; // 2^53 - 1, the largest msgSerial ably-js can send
const OBJECT = 19;
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
    const seen = sock.frames.length;
    sock.send({ action: ACTION.MESSAGE, channel, msgSerial: serial, messages: [{ name: 'n', data: `d${serial}` }] });
    const again = await sock.next(
      (f, i = sock.frames.indexOf(f)) => i >= seen && f.action === ACTION.ACK && f.msgSerial === serial,
      5000,
      `re-ACK of resent msgSerial ${serial}`,
    );
    assert.equal(again.res?.[0]?.serials?.length, 1, JSON.stringify(again));
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
