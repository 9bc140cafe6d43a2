// Ably Tokens with large capabilities (issue 11, finding 7). A token carries
// its capability, so an ~19 KB capability sealed into the token gives a
// 25 KB token: more than an HTTP head may hold (16 KiB), and the WebSocket
// upgrade carries the token in its URL, so it was refused everywhere (431)
// and ably-js retried forever. Ably Tokens exist for capabilities too large
// for a JWT, so the server keeps such a token in its store and hands out a
// short reference ("sbr1." + 43 characters) instead: it works with the real
// ably SDK, survives a restart, and can be revoked (RSA17).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import {
  startServer,
  createApp,
  clients,
  http,
  uniqueChannel,
  waitForConnectionState,
  waitForChannelState,
  withTimeout,
  settle,
  fmtErr,
  ACTION,
  assert,
  test,
} from './lib/server.mjs';
import { mintToken, revokeRaw, bearer, expectRestError, wsConnect, expectWsError } from './lib/auth.mjs';

const T = { timeout: 60_000 };

/** A capability of about `bytes` of JSON: many rooms, plus the ones named. */
function bigCapability(named, bytes = 19 * 1024) {
  const cap = {};
  for (const n of named) cap[n] = ['publish', 'subscribe', 'history'];
  for (let i = 0; JSON.stringify(cap).length < bytes; i++) {
    cap[`room:${i}:${crypto.randomBytes(8).toString('hex')}`] = ['publish', 'subscribe', 'presence', 'history'];
  }
  return cap;
}

/** A realtime client whose authCallback hands out `td` (TokenDetails). */
function tokenClient(set, server, td) {
  return set.realtime(server, {
    binary: false,
    authCallback: (_params, cb) => cb(null, td),
    disconnectedRetryTimeout: 500,
  });
}

/** Attaches, publishes one message and receives it back on the same connection. */
async function publishAndReceive(client, name, data) {
  const ch = client.channels.get(name);
  await withTimeout(ch.attach(), 8000, `attach ${name}`);
  const got = new Promise((resolve) => ch.subscribe((m) => m.data === data && resolve(m)));
  await withTimeout(ch.publish('m', data), 8000, `publish on ${name}`);
  return withTimeout(got, 8000, `receive on ${name}`);
}

test('TK2b/RSA8 requestToken with a ~19 KB capability -> a short token that works with the ably SDK (connect, attach, publish where allowed, 40160 elsewhere), over a restart, and can be revoked (RSA17)', T, async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'switchboard-tokens-large-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  let server = await startServer({ data: dir, label: 'tokens-large' });
  try {
    const app = await createApp(server, { keys: [{ revocableTokens: true }] });
    const key = app.keys[0];
    const allowed = uniqueChannel('big-allowed');
    const capability = bigCapability([allowed]);
    assert.ok(JSON.stringify(capability).length >= 19 * 1024);

    // Issued through the SDK itself (createTokenRequest + POST requestToken).
    const rest = clients(t).rest(server, { key: key.keyStr, binary: false });
    const td = await rest.auth.requestToken({ capability, clientId: 'big-user' });
    assert.match(td.token, /^sbr1\.[A-Za-z0-9_-]{43}$/, `a short reference, not a ${td.token.length}-byte token`);
    assert.equal(td.clientId, 'big-user');
    assert.equal(JSON.parse(td.capability)[allowed].length, 3, 'the full granted capability is in TokenDetails');
    assert.ok(td.expires - td.issued <= 3600_000);
    // Small capabilities still get self-contained tokens.
    const small = await rest.auth.requestToken({ capability: { [allowed]: ['subscribe'] } });
    assert.match(small.token, /^sbt1\./);

    const set = clients(t);
    const rt = tokenClient(set, server, td);
    await waitForConnectionState(rt, 'connected');
    assert.equal(rt.auth.clientId, 'big-user');
    const m = await publishAndReceive(rt, allowed, 'hello-big');
    assert.equal(m.clientId, 'big-user');
    // A channel the capability does not name: refused (40160), the connection stays.
    const denied = rt.channels.get(uniqueChannel('big-denied'));
    const r = await settle(withTimeout(denied.attach(), 8000, 'attach denied'));
    assert.equal(r.ok, false, 'attach outside the capability is refused');
    assert.equal(r.error.code, 40160, fmtErr(r.error));
    assert.equal(rt.connection.state, 'connected');

    // REST with the token (ably-js sends Bearer base64(token)).
    const trest = set.rest(server, { token: td.token, binary: false });
    const page = await trest.channels.get(allowed).history();
    assert.deepEqual(page.items.map((x) => x.data), ['hello-big']);
    const rp = await settle(trest.channels.get(uniqueChannel('big-denied')).publish('m', 'x'));
    assert.equal(rp.ok, false);
    assert.equal(rp.error.code, 40160, fmtErr(rp.error));
    await set.closeAll();

    // The store keeps it over a restart (same data directory).
    await server.stop();
    server = await startServer({ data: dir, label: 'tokens-large-restart' });
    const set2 = clients(t);
    const rt2 = tokenClient(set2, server, td);
    await waitForConnectionState(rt2, 'connected');
    await publishAndReceive(rt2, allowed, 'after-restart');

    // Revocation by clientId: the live connection goes (40141), and the
    // token is refused on REST and on a new WebSocket.
    const lost = new Promise((resolve) =>
      rt2.connection.on((sc) => sc.reason?.code === 40141 && resolve(sc.reason)),
    );
    const rev = await revokeRaw(server, key.keyName, { targets: ['clientId:big-user'] }, { key: key.keyStr });
    assert.equal(rev.status, 201, rev.text);
    assert.equal((await withTimeout(lost, 8000, 'live connection revoked')).statusCode, 401);
    expectRestError(assert, await http(server, 'GET', `/channels/${allowed}/messages`, { headers: { authorization: bearer(td.token) } }), 40141, 401, 'REST after revocation');
    expectWsError(assert, (await wsConnect(server, { access_token: td.token })).frame, 40141, 401, 'WebSocket after revocation');
    await set2.closeAll();
  } finally {
    if (server.exit === null) await server.stop();
  }
});

test('RSA4b token references: a reference the server never issued -> 40143 (REST and WebSocket); a large token issued by signed TokenRequest is a reference too', T, async (t) => {
  const server = await startServer({ label: 'tokens-large-forged' });
  t.after(() => server.stop());
  const app = await createApp(server, { keys: [{}] });
  const key = app.keys[0];
  const forged = `sbr1.${crypto.randomBytes(32).toString('base64url')}`;
  expectRestError(assert, await http(server, 'GET', '/channels/x/messages', { headers: { authorization: bearer(forged) } }), 40143, 401, 'forged reference, REST');
  expectWsError(assert, (await wsConnect(server, { access_token: forged })).frame, 40143, 401, 'forged reference, WebSocket');
  // Not canonical base64url (43rd character with unused bits set): not a
  // reference at all; still refused with a token error.
  const bad = `${forged.slice(0, -1)}${forged.endsWith('B') ? 'C' : 'B'}`;
  const res = await http(server, 'GET', '/channels/x/messages', { headers: { authorization: bearer(bad) } });
  assert.equal(res.status, 401, res.text);

  const name = uniqueChannel('big-tr');
  const td = await mintToken(server, key, { capability: bigCapability([name]) });
  assert.match(td.token, /^sbr1\./);
  const { frame } = await wsConnect(server, { access_token: td.token });
  assert.equal(frame.action, ACTION.CONNECTED, JSON.stringify(frame).slice(0, 300));
});
