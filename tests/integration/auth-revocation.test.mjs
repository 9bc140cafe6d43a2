// Token revocation (RSA17, issue 3): POST /keys/{keyName}/revokeTokens by
// clientId, by revocationKey (JWT x-ably-revocation-key) and by channel; only
// the matching live connections get DISCONNECTED 40141 (the SDK renews through
// its callback and resumes), others on the same key stay; revoked tokens are
// refused afterwards (40141), also after a restart with --data; the endpoint's
// error codes (40162, 40133, 40163) and allowReauthMargin.
//
// Test-app key 4 has revocableTokens.
import assert from 'node:assert/strict';
import {
  useServer,
  clients,
  connected,
  uniqueChannel,
  withTimeout,
  settle,
  sleep,
  waitUntil,
  http,
  startServer,
  createApp,
  makeTempDir,
  waitForConnectionState,
  ACTION,
  test,
} from './lib/server.mjs';
import {
  ablyJwt,
  mintToken,
  revokeRaw,
  bearer,
  expectRestError,
  wsConnect,
  wsConnected,
  wsAttach,
  expectWsError,
  recordStates,
} from './lib/auth.mjs';

const env = useServer({ label: 'auth-revocation' });
const key = (i) => env.app.keys[i];
const REV = () => key(4); // revocableTokens: true
const T = { timeout: 15_000 };

/** POST revokeTokens with key 4's Basic auth; asserts 201 and returns the body. */
async function revoke(body, k = REV()) {
  const t0 = Date.now();
  const res = await revokeRaw(env.server, k.keyName, body, { key: k.keyStr });
  assert.equal(res.status, 201, `revokeTokens ${JSON.stringify(body)}: ${res.status} ${res.text}`);
  return { body: res.body, t0, t1: Date.now() };
}

/** Asserts the raw socket got DISCONNECTED 40141 soon after `since`, then was closed. */
async function expectRevoked(sock, since, label) {
  const f = await sock.next((x) => x.action === ACTION.DISCONNECTED || x.action === ACTION.ERROR, 2000, `${label}: DISCONNECTED`);
  expectWsError(assert, f, 40141, 401, label, ACTION.DISCONNECTED);
  assert.ok(f.__at - since < 600, `${label}: dropped ${f.__at - since} ms after the revocation (want ~250)`);
  await withTimeout(sock.closed, 2000, `${label}: socket closed`);
}

/** Asserts the raw socket got no DISCONNECTED/ERROR and can still attach. */
async function expectAlive(sock, label) {
  const bad = sock.frames.find((x) => x.action === ACTION.DISCONNECTED || x.action === ACTION.ERROR);
  assert.equal(bad, undefined, `${label}: must stay connected, got ${JSON.stringify(bad)}`);
  const a = await wsAttach(sock, uniqueChannel('alive'));
  assert.equal(a.action, ACTION.ATTACHED, `${label}: still usable`);
}

/** An authCallback minting key-4 Ably tokens (ms `issued`) for clientId. */
function renewingCallback(clientId, counter) {
  return (_p, cb) => {
    counter.calls += 1;
    mintToken(env.server, REV(), { clientId, ttl: 600_000 }).then((td) => cb(null, td), (e) => cb(e, null));
  };
}

test('RSA17b/RSA17c revoke by clientId: only that clientId\'s token connections get DISCONNECTED 40141; the SDK renews and resumes; other clients and API-key connections stay', { timeout: 20_000 }, async (t) => {
  const c = clients(t);
  const a = `rev-a-${Date.now()}`;
  const b = `rev-b-${Date.now()}`;
  const tokA = (await mintToken(env.server, REV(), { clientId: a, ttl: 600_000 })).token;
  const tokB = (await mintToken(env.server, REV(), { clientId: b, ttl: 600_000 })).token;
  const jwtA = ablyJwt(REV(), { clientId: a, ttlSec: 600 });
  const socks = {
    tokA: (await wsConnected(assert, env.server, { access_token: tokA })).sock,
    jwtA: (await wsConnected(assert, env.server, { access_token: jwtA })).sock,
    tokB: (await wsConnected(assert, env.server, { access_token: tokB })).sock,
    keyA: (await wsConnected(assert, env.server, { key: REV().keyStr, clientId: a })).sock,
  };
  t.after(() => Object.values(socks).forEach((s) => s.close()));
  const sa = { calls: 0 };
  const sb = { calls: 0 };
  const sdkA = await connected(c, env.server, { authCallback: renewingCallback(a, sa), binary: true });
  const sdkB = await connected(c, env.server, { authCallback: renewingCallback(b, sb), binary: false });
  const idA = sdkA.connection.id;
  const idB = sdkB.connection.id;
  const recA = recordStates(sdkA);
  const recB = recordStates(sdkB);

  const { body, t0, t1 } = await revoke({ targets: [`clientId:${a}`] });
  assert.equal(body.successCount, 1);
  assert.equal(body.failureCount, 0);
  assert.equal(body.results.length, 1);
  const r = body.results[0];
  assert.equal(r.target, `clientId:${a}`);
  assert.ok(r.issuedBefore >= t0 - 1000 && r.issuedBefore <= t1 + 1000, `issuedBefore ${r.issuedBefore} is now`);
  assert.ok(r.appliesAt >= t0 - 1000 && r.appliesAt <= t1 + 1000, `appliesAt ${r.appliesAt} is now`);

  await expectRevoked(socks.tokA, t1, 'Ably token of a');
  await expectRevoked(socks.jwtA, t1, 'JWT of a');
  // The SDK client of a: DISCONNECTED 40141, renews through its callback, resumes.
  await waitUntil(() => recA.changes.some((s) => s.reason?.code === 40141), 3000, 'sdk a sees 40141');
  await waitForConnectionState(sdkA, 'connected', { timeoutMs: 5000 });
  assert.equal(sdkA.connection.id, idA, 'sdk a resumed: same connection id');
  assert.ok(sa.calls >= 2, 'sdk a renewed its token');
  assert.equal(recA.changes.find((s) => s.reason?.code === 40141).reason.statusCode, 401);

  await sleep(300);
  await expectAlive(socks.tokB, 'token of b');
  await expectAlive(socks.keyA, 'API key with clientId a');
  assert.deepEqual(recB.changes, [], 'sdk b untouched');
  assert.equal(sdkB.connection.id, idB);
  assert.equal(sb.calls, 1);

  // The revoked tokens are refused from now on; new ones for a are fine.
  for (const [label, tok] of [['Ably token', tokA], ['JWT', jwtA]]) {
    const { frame } = await wsConnect(env.server, { access_token: tok });
    expectWsError(assert, frame, 40141, 401, `${label} of a on connect`);
    const rest = await http(env.server, 'GET', `/channels/${uniqueChannel('x')}/messages`, { headers: { authorization: bearer(tok) } });
    expectRestError(assert, rest, 40141, 401, `${label} of a over REST`);
  }
  const fresh = await mintToken(env.server, REV(), { clientId: a });
  assert.equal((await wsConnect(env.server, { access_token: fresh.token })).frame.action, ACTION.CONNECTED, 'a token issued after the revocation works');
});

test('RSA17b revoke by revocationKey (JWT x-ably-revocation-key): every JWT with that key drops, others stay', T, async (t) => {
  const rk = `grp-${Date.now()}`;
  const mk = (cid, revocationKey) => ablyJwt(REV(), { clientId: cid, revocationKey, ttlSec: 600 });
  const j1 = mk('rk-1', rk);
  const j2 = mk('rk-2', rk);
  const j3 = mk('rk-3', `${rk}-other`);
  const j4 = mk('rk-1'); // same clientId, no revocation key
  const s = [];
  for (const j of [j1, j2, j3, j4]) s.push((await wsConnected(assert, env.server, { access_token: j })).sock);
  t.after(() => s.forEach((x) => x.close()));
  const { body, t1 } = await revoke({ targets: [`revocationKey:${rk}`] });
  assert.equal(body.successCount, 1);
  assert.equal(body.results[0].target, `revocationKey:${rk}`);
  await expectRevoked(s[0], t1, 'JWT 1 with the revocation key');
  await expectRevoked(s[1], t1, 'JWT 2 with the revocation key');
  await sleep(300);
  await expectAlive(s[2], 'JWT with another revocation key');
  await expectAlive(s[3], 'JWT without a revocation key');
  expectWsError(assert, (await wsConnect(env.server, { access_token: j1 })).frame, 40141, 401, 'revoked JWT on connect');
  // iat has 1 s resolution: a JWT issued a second later is after issuedBefore.
  const later = ablyJwt(REV(), { clientId: 'rk-1', revocationKey: rk, iatOffsetSec: 1 });
  assert.equal((await wsConnect(env.server, { access_token: later })).frame.action, ACTION.CONNECTED, 'a JWT issued after the revocation works');
});

test('RSA17b revoke by channel: tokens whose capability names that channel drop, others stay', T, async (t) => {
  const chan = `rev-chan:${Date.now()}`;
  const other = `rev-other:${Date.now()}`;
  const t1tok = (await mintToken(env.server, REV(), { capability: { [chan]: ['*'] }, ttl: 600_000 })).token;
  const t2tok = ablyJwt(REV(), { capability: { [chan]: ['subscribe'], [other]: ['*'] } });
  const t3tok = (await mintToken(env.server, REV(), { capability: { [other]: ['*'] }, ttl: 600_000 })).token;
  const s = [];
  for (const tok of [t1tok, t2tok, t3tok]) s.push((await wsConnected(assert, env.server, { access_token: tok })).sock);
  t.after(() => s.forEach((x) => x.close()));
  const { body, t1 } = await revoke({ targets: [`channel:${chan}`] });
  assert.equal(body.successCount, 1);
  await expectRevoked(s[0], t1, 'Ably token for the channel');
  await expectRevoked(s[1], t1, 'JWT naming the channel');
  await sleep(300);
  const bad = s[2].frames.find((x) => x.action === ACTION.DISCONNECTED);
  assert.equal(bad, undefined, 'token for another channel stays');
  const a = await wsAttach(s[2], other);
  assert.equal(a.action, ACTION.ATTACHED);
});

test('RSA17d/RSA17g revokeTokens endpoint errors: token auth -> 40162, another key -> 40133, key without revocableTokens -> 40163, no auth -> 40101, bad body -> 400; unknown target type is a per-target failure', T, async () => {
  const k4 = REV();
  const body = { targets: ['clientId:nobody'] };
  const tok = (await mintToken(env.server, k4, {})).token;
  expectRestError(assert, await revokeRaw(env.server, k4.keyName, body, { authorization: bearer(tok) }), 40162, 401, 'token auth');
  expectRestError(assert, await revokeRaw(env.server, k4.keyName, body, { authorization: bearer(ablyJwt(k4)) }), 40162, 401, 'JWT auth');
  expectRestError(assert, await revokeRaw(env.server, k4.keyName, body, { key: key(0).keyStr }), 40133, 401, 'another key');
  expectRestError(assert, await revokeRaw(env.server, key(0).keyName, body, { key: key(0).keyStr }), 40163, 401, 'non-revocable key');
  expectRestError(assert, await revokeRaw(env.server, k4.keyName, body), 40101, 401, 'no credentials');
  for (const bad of [{}, { targets: [] }, { targets: 'clientId:x' }]) {
    const r = await revokeRaw(env.server, k4.keyName, bad, { key: k4.keyStr });
    assert.equal(r.status, 400, `${JSON.stringify(bad)}: ${r.text}`);
    assert.ok(r.body?.error?.code >= 40000 && r.body.error.code < 40100, `${JSON.stringify(bad)}: code ${r.body?.error?.code}`);
  }
  const mixed = await revokeRaw(env.server, k4.keyName, { targets: ['clientId:nobody-2', 'device:xyz'] }, { key: k4.keyStr });
  assert.equal(mixed.status, 201, mixed.text);
  assert.equal(mixed.body.successCount, 1);
  assert.equal(mixed.body.failureCount, 1);
  assert.equal(mixed.body.results[0].target, 'clientId:nobody-2');
  assert.equal(mixed.body.results[1].target, 'device:xyz');
  assert.equal(mixed.body.results[1].error?.code, 40000);
  assert.equal(mixed.body.results[1].error?.statusCode, 400);
});

test('RSA17e/RSA17g/RSA17c ably-js rest.auth.revokeTokens: BatchResult with issuedBefore as given', T, async (t) => {
  const c = clients(t);
  const rest = c.rest(env.server, { key: REV().keyStr, binary: false });
  const issuedBefore = Date.now() - 60_000;
  const res = await withTimeout(rest.auth.revokeTokens([{ type: 'clientId', value: 'sdk-target' }, { type: 'revocationKey', value: 'sdk-rk' }], { issuedBefore }), 5000, 'revokeTokens');
  assert.equal(res.successCount, 2);
  assert.equal(res.failureCount, 0);
  assert.deepEqual(res.results.map((r) => [r.target, r.issuedBefore]), [
    ['clientId:sdk-target', issuedBefore],
    ['revocationKey:sdk-rk', issuedBefore],
  ]);
  const tokenRest = c.rest(env.server, { token: (await mintToken(env.server, REV(), {})).token, binary: false });
  const r = await settle(tokenRest.auth.revokeTokens([{ type: 'clientId', value: 'x' }]));
  assert.equal(r.ok, false);
  assert.equal(r.error.code, 40162, `RSA17d: ${r.error.code} ${r.error.message}`);
  assert.equal(r.error.statusCode, 401);
});

test('RSA17f allowReauthMargin: appliesAt = now + 30 s, affected connections get AUTH and stay connected; the SDK reauths in band (same connection id)', T, async (t) => {
  const c = clients(t);
  const cid = `margin-${Date.now()}`;
  const tok = (await mintToken(env.server, REV(), { clientId: cid, ttl: 600_000 })).token;
  const { sock } = await wsConnected(assert, env.server, { access_token: tok });
  t.after(() => sock.close());
  const counter = { calls: 0 };
  const sdk = await connected(c, env.server, { authCallback: renewingCallback(cid, counter), binary: true });
  const id = sdk.connection.id;
  const rec = recordStates(sdk);
  const { body, t0, t1 } = await revoke({ targets: [`clientId:${cid}`], allowReauthMargin: true });
  const r = body.results[0];
  assert.ok(r.appliesAt >= t0 + 29_000 && r.appliesAt <= t1 + 31_000, `appliesAt ${r.appliesAt - t1} ms after now (want 30000)`);
  assert.ok(r.issuedBefore <= t1 + 1000 && r.issuedBefore >= t0 - 1000, 'issuedBefore is now');
  const auth = await sock.next((f) => f.action === ACTION.AUTH, 2000, 'AUTH hint');
  assert.equal(auth.action, ACTION.AUTH);
  await waitUntil(() => counter.calls >= 2, 3000, 'the SDK renews on the AUTH hint');
  await sleep(700);
  await expectAlive(sock, 'raw connection within the margin');
  assert.equal(sdk.connection.state, 'connected');
  assert.equal(sdk.connection.id, id);
  assert.deepEqual(rec.changes.map((s) => `${s.previous}->${s.current}`).filter((s) => s !== 'connected->connected'), [], 'the SDK never left CONNECTED');
  // The old token still connects until appliesAt.
  assert.equal((await wsConnect(env.server, { access_token: tok })).frame.action, ACTION.CONNECTED, 'old token accepted within the margin');
});

test('RSA17 revocations survive a restart with --data; so do unrevoked tokens (sbt1 tokens and JWTs)', { timeout: 30_000 }, async (t) => {
  const tmp = makeTempDir('switchboard-auth-rev-');
  t.after(() => tmp.cleanup());
  let srv = await startServer({ data: tmp.dir, label: 'auth-rev-data-1' });
  let stopped = false;
  t.after(async () => {
    if (!stopped) await srv.stop({ allowAlreadyExited: true }).catch(() => {});
  });
  const app = await createApp(srv, { keys: [{ revocableTokens: true }] });
  const k = app.keys[0];
  const keep = (await mintToken(srv, k, { clientId: 'keep', ttl: 600_000 })).token;
  const gone = (await mintToken(srv, k, { clientId: 'gone', ttl: 600_000 })).token;
  const goneJwt = ablyJwt(k, { clientId: 'other', revocationKey: 'rk-gone' });
  const keepJwt = ablyJwt(k, { clientId: 'other', revocationKey: 'rk-keep' });
  const res = await revokeRaw(srv, k.keyName, { targets: ['clientId:gone', 'revocationKey:rk-gone'] }, { key: k.keyStr });
  assert.equal(res.status, 201, res.text);
  await srv.stop();
  srv = await startServer({ data: tmp.dir, label: 'auth-rev-data-2' });
  try {
    for (const [label, tok] of [['unrevoked token', keep], ['unrevoked JWT', keepJwt]]) {
      const { frame } = await wsConnect(srv, { access_token: tok });
      assert.equal(frame.action, ACTION.CONNECTED, `${label} after restart: ${JSON.stringify(frame)}`);
    }
    for (const [label, tok] of [['revoked token', gone], ['revoked JWT', goneJwt]]) {
      const { frame } = await wsConnect(srv, { access_token: tok });
      expectWsError(assert, frame, 40141, 401, `${label} after restart`);
      const rest = await http(srv, 'GET', '/channels/x/messages', { headers: { authorization: bearer(tok) } });
      expectRestError(assert, rest, 40141, 401, `${label} over REST after restart`);
    }
  } finally {
    stopped = true;
    await srv.stop();
  }
});
