// Token lifetime (issue 3): RTN22 server-requested re-authentication before
// expiry, RTC8 in-band AUTH (authorize(): capability upgrade, downgrade,
// clientId change refused), RTN22a/RTN15h DISCONNECTED 40142 at expiry and
// renewal + resume (RTN15c6) with a new token, RSA4c failing authCallback.
//
// The long scenarios run the msgpack and the JSON client side by side in one
// test (instead of bothProtocols) to keep the file fast.
import assert from 'node:assert/strict';
import {
  useServer,
  bothProtocols,
  clients,
  connected,
  collector,
  uniqueChannel,
  withTimeout,
  settle,
  sleep,
  waitUntil,
  waitForConnectionState,
  waitForChannelState,
  ACTION,
  test,
} from './lib/server.mjs';
import {
  ablyJwt,
  decodeJwt,
  mintToken,
  wsConnect,
  wsConnected,
  wsAttach,
  expectWsError,
  recordStates,
  nextUpdate,
} from './lib/auth.mjs';

const env = useServer({ label: 'auth-renewal' });
const k0 = () => env.app.keys[0];

/** Publishes on `client`/`name`, waits for `col` to see it. */
async function assertRoundTrip(client, name, col, label) {
  const before = col.messages.length;
  const data = `${label}-${Date.now()}`;
  await withTimeout(client.channels.get(name).publish('rt', data), 5000, `${label}: publish`);
  await col.until(before + 1, 5000);
  assert.equal(col.messages.at(-1).data, data, `${label}: round trip`);
}

test('RTN22/RTC8a/RTC8a1 headline: connections stay up across >= 3 renewals of 8 s JWTs (authCallback) while 10 msg/s flow; none lost or duplicated, same connection id', { timeout: 50_000 }, async (t) => {
  const c = clients(t);
  const X = uniqueChannel('renew-x'); // key publisher -> renewing subscribers
  const Y = uniqueChannel('renew-y'); // renewing publisher -> key subscriber
  const issued = { msgpack: [], json: [] }; // {at, exp} per authCallback call
  const renewing = {};
  for (const [label, binary] of [['msgpack', true], ['json', false]]) {
    const authCallback = (_params, cb) => {
      const token = ablyJwt(k0(), { ttlSec: 8, clientId: `renew-${label}` });
      issued[label].push({ at: Date.now(), exp: decodeJwt(token).payload.exp * 1000 });
      cb(null, token);
    };
    renewing[label] = c.realtime(env.server, { authCallback, binary });
  }
  const pub = c.realtime(env.server, { key: k0().keyStr, binary: true });
  await Promise.all([pub, ...Object.values(renewing)].map((cl) => waitForConnectionState(cl, 'connected')));
  const ids = Object.fromEntries(Object.entries(renewing).map(([l, cl]) => [l, cl.connection.id]));
  const states = Object.fromEntries(Object.entries(renewing).map(([l, cl]) => [l, recordStates(cl)]));
  const updates = { msgpack: 0, json: 0 };
  for (const [l, cl] of Object.entries(renewing)) cl.connection.on('update', () => (updates[l] += 1));
  const colX = Object.fromEntries(Object.entries(renewing).map(([l, cl]) => [l, collector(cl.channels.get(X))]));
  const colY = collector(pub.channels.get(Y));
  await withTimeout(Promise.all([...Object.values(colX).map((x) => x.subscribed), colY.subscribed]), 5000, 'attach');

  // 10 msg/s from the key client on X; 5 msg/s from the msgpack renewing client on Y.
  const pubPromises = [];
  // settle() at once so a rejection is never unhandled; asserted below.
  let nx = 0;
  let ny = 0;
  const ix = setInterval(() => pubPromises.push(settle(pub.channels.get(X).publish('seq', String(nx++)))), 100);
  const iy = setInterval(() => pubPromises.push(settle(renewing.msgpack.channels.get(Y).publish('seq', String(ny++)))), 200);
  try {
    await waitUntil(() => issued.msgpack.length >= 4 && issued.json.length >= 4, 30_000, '3 renewals on both clients');
    await sleep(300);
  } finally {
    clearInterval(ix);
    clearInterval(iy);
  }
  const results = await withTimeout(Promise.all(pubPromises), 8000, 'all publishes to settle');
  const failed = results.filter((r) => !r.ok);
  assert.equal(failed.length, 0, `every publish ACKed: ${failed.map((r) => r.error?.message).join('; ')}`);
  assert.ok(nx >= 80, `messages flowed throughout the renewals (got ${nx})`);
  const want = (n) => Array.from({ length: n }, (_, i) => String(i));
  for (const l of ['msgpack', 'json']) {
    await colX[l].until(nx, 8000);
  }
  await colY.until(ny, 8000);
  await sleep(300);
  for (const l of ['msgpack', 'json']) {
    assert.deepEqual(colX[l].messages.map((m) => m.data), want(nx), `${l}: every message once, in order`);
    assert.equal(renewing[l].connection.id, ids[l], `${l}: same connection id throughout`);
    assert.equal(renewing[l].connection.state, 'connected');
    const nonUpdate = states[l].changes.filter((s) => !(s.previous === 'connected' && s.current === 'connected'));
    assert.deepEqual(nonUpdate.map((s) => `${s.previous}->${s.current} ${s.reason?.code ?? ''}`), [], `${l}: never left CONNECTED`);
    assert.ok(updates[l] >= 3, `${l}: RTN24 an update event per renewal (got ${updates[l]})`);
    // RTN22: each renewal was asked for before the previous token expired, at
    // about expiry - ttl/3 (8 s tokens: ~2.7 s before). A token with 5.5 s
    // or less to live is not asked (Ably's rule), so these are 8 s tokens.
    const iss = issued[l];
    for (let i = 1; i < iss.length; i++) {
      const lead = iss[i - 1].exp - iss[i].at;
      assert.ok(lead > 1900 && lead < 3600, `${l}: renewal ${i} came ${lead} ms before expiry (want ~2667)`);
    }
  }
  assert.deepEqual(colY.messages.map((m) => m.data), want(ny), 'publishes from the renewing client: every one once, in order');
  assert.ok(colY.messages.every((m) => m.clientId === 'renew-msgpack'), 'stamped with the JWT clientId');
});

test('RTN22/RTC8a raw: AUTH at expiry - ttl/3; answering AUTH with a new token keeps the connection (same id) past the old expiry', { timeout: 20_000 }, async () => {
  // Both token kinds at once (they are independent) to keep the file fast.
  await Promise.all(['jwt', 'token'].map(async (kind) => {
    const ttlMs = 8000; // over the 5.5 s below which no AUTH is sent
    let token;
    let expires;
    if (kind === 'jwt') {
      token = ablyJwt(k0(), { ttlSec: ttlMs / 1000, clientId: 'raw-renew' });
      expires = decodeJwt(token).payload.exp * 1000;
    } else {
      const td = await mintToken(env.server, k0(), { ttl: ttlMs, clientId: 'raw-renew' });
      token = td.token;
      expires = td.expires;
    }
    const { sock, connected: cf } = await wsConnected(assert, env.server, { access_token: token });
    try {
      const ttl = kind === 'jwt' ? expires - decodeJwt(token).payload.iat * 1000 : ttlMs;
      const auth = await sock.next((f) => f.action === ACTION.AUTH, ttlMs + 1000, `${kind}: AUTH`);
      const lead = expires - auth.__at;
      assert.ok(lead > ttl / 3 - 400 && lead <= ttl / 3 + 50, `${kind}: AUTH ${lead} ms before expiry (want ${ttl / 3})`);
      assert.equal(auth.error, undefined);
      const fresh = kind === 'jwt' ? ablyJwt(k0(), { ttlSec: 60, clientId: 'raw-renew' }) : (await mintToken(env.server, k0(), { ttl: 60_000, clientId: 'raw-renew' })).token;
      sock.send({ action: ACTION.AUTH, auth: { accessToken: fresh } });
      const again = await sock.next((f) => f.action === ACTION.CONNECTED && f !== sock.frames[0], 3000, `${kind}: CONNECTED after AUTH`);
      assert.equal(again.connectionId, cf.connectionId, `${kind}: RTC8a1 same connectionId`);
      assert.equal(again.connectionDetails?.clientId, 'raw-renew');
      await sleep(Math.max(0, expires - Date.now()) + 700);
      const bad = sock.frames.find((f) => f.action === ACTION.DISCONNECTED || f.action === ACTION.ERROR);
      assert.equal(bad, undefined, `${kind}: no DISCONNECTED/ERROR after a successful reauth: ${JSON.stringify(bad)}`);
      const att = await wsAttach(sock, uniqueChannel('after-reauth'));
      assert.equal(att.action, ACTION.ATTACHED, `${kind}: connection usable past the old expiry`);
    } finally {
      sock.close();
    }
  }));
});

test('RTN22 raw: a long-lived token is asked to reauthenticate 30 s before expiry (min(30 s, ttl/3))', { timeout: 10_000 }, async () => {
  // A JWT issued 100 s ago that expires in 31 s: ttl 131 s, so AUTH is due at exp - 30 s, about 1 s from now.
  const token = ablyJwt(k0(), { iatOffsetSec: -100, ttlSec: 131 });
  const exp = decodeJwt(token).payload.exp * 1000;
  const { sock } = await wsConnected(assert, env.server, { access_token: token });
  try {
    const auth = await sock.next((f) => f.action === ACTION.AUTH, 4000, 'AUTH');
    const lead = exp - auth.__at;
    assert.ok(lead > 29_600 && lead <= 30_050, `AUTH ${lead} ms before expiry (want 30000)`);
  } finally {
    sock.close();
  }
});

bothProtocols('RTN22a/RSA4b1/RSA4a2 a token adopted with 5 s or less to live is not asked to renew: DISCONNECTED 40142 at expiry, then FAILED 40171 for a client that cannot renew (ably-js auth_token_expires)', { timeout: 20_000 }, async (t, binary) => {
  const c = clients(t);
  const td = await mintToken(env.server, k0(), { ttl: 5000, clientId: 'short-lived' });
  const client = c.realtime(env.server, { tokenDetails: td, binary });
  await waitForConnectionState(client, 'connected');
  const rec = recordStates(client);
  const failed = await waitForConnectionState(client, 'failed', { timeoutMs: td.expires - Date.now() + 5000, failOn: [] });
  const seen = rec.changes.map((s) => `${s.current} ${s.reason?.code ?? ''}`.trim());
  assert.equal(rec.changes[0]?.current, 'disconnected', `first change at expiry, not a failed renewal: ${seen.join(', ')}`);
  assert.equal(rec.changes[0].reason?.code, 40142, `RTN22a 40142: ${seen.join(', ')}`);
  assert.equal(rec.changes[0].reason?.statusCode, 401);
  assert.ok(rec.changes[0].at >= td.expires - 300, `disconnected at expiry (${td.expires - rec.changes[0].at} ms early)`);
  assert.equal(failed.reason?.code, 40171, `RSA4a2 no means to renew: ${seen.join(', ')}`);
});

test('RTN22 raw: no AUTH for a token adopted with 5.5 s or less to live, on connect and on in-band AUTH; a longer one is asked (at exp - ttl/3)', { timeout: 20_000 }, async () => {
  const short = await mintToken(env.server, k0(), { ttl: 5000, clientId: 'adopt' });
  const { sock } = await wsConnected(assert, env.server, { access_token: short.token });
  try {
    const disc = await sock.next((f) => f.action === ACTION.DISCONNECTED || f.action === ACTION.AUTH, 8000, 'first frame');
    assert.equal(disc.action, ACTION.DISCONNECTED, `no AUTH before expiry: ${JSON.stringify(disc)}`);
    expectWsError(assert, disc, 40142, 401, 'expiry', ACTION.DISCONNECTED);
  } finally {
    sock.close();
  }
  // A token adopted by an in-band AUTH follows the same rule: a long one
  // replaced by a 4 s one is left to expire.
  const { sock: s2 } = await wsConnected(assert, env.server, { access_token: ablyJwt(k0(), { ttlSec: 600, clientId: 'adopt' }) });
  try {
    s2.send({ action: ACTION.AUTH, auth: { accessToken: (await mintToken(env.server, k0(), { ttl: 4000, clientId: 'adopt' })).token } });
    const f = await s2.next((x) => x.action === ACTION.DISCONNECTED || x.action === ACTION.AUTH || x.action === ACTION.ERROR, 8000, 'after AUTH');
    assert.equal(f.action, ACTION.DISCONNECTED, `no AUTH for the short token: ${JSON.stringify(f)}`);
    expectWsError(assert, f, 40142, 401, 'expiry after AUTH', ACTION.DISCONNECTED);
  } finally {
    s2.close();
  }
  const long = await mintToken(env.server, k0(), { ttl: 8000, clientId: 'adopt' });
  const { sock: s3 } = await wsConnected(assert, env.server, { access_token: long.token });
  try {
    const f = await s3.next((x) => x.action === ACTION.DISCONNECTED || x.action === ACTION.AUTH, 8000, 'AUTH');
    assert.equal(f.action, ACTION.AUTH, `an 8 s token is asked to renew: ${JSON.stringify(f)}`);
    const lead = long.expires - f.__at;
    assert.ok(lead > 8000 / 3 - 500 && lead <= 8000 / 3 + 50, `AUTH ${lead} ms before expiry (want ${Math.round(8000 / 3)})`);
  } finally {
    s3.close();
  }
});

test('RTN22a/RTN15h raw: not reauthenticated -> DISCONNECTED 40142/401 at expiry, socket closed; RTN15c6 resume with a new token keeps the connection id; another clientId -> 40102', { timeout: 15_000 }, async () => {
  // Both token kinds at once (they are independent) to keep the file fast.
  await Promise.all(['jwt', 'token'].map(async (kind) => {
    let token;
    let expires;
    if (kind === 'jwt') {
      token = ablyJwt(k0(), { ttlSec: 2, clientId: 'exp-user' });
      expires = decodeJwt(token).payload.exp * 1000;
    } else {
      const td = await mintToken(env.server, k0(), { ttl: 2000, clientId: 'exp-user' });
      token = td.token;
      expires = td.expires;
    }
    const { sock, connected: cf } = await wsConnected(assert, env.server, { access_token: token });
    try {
      const disc = await sock.next((f) => f.action === ACTION.DISCONNECTED, 4000, `${kind}: DISCONNECTED`);
      expectWsError(assert, disc, 40142, 401, `${kind}: expiry`, ACTION.DISCONNECTED);
      assert.ok(disc.__at >= expires - 50 && disc.__at < expires + 700, `${kind}: DISCONNECTED ${disc.__at - expires} ms after expiry`);
      await withTimeout(sock.closed, 2000, `${kind}: server closes the socket after DISCONNECTED`);
    } finally {
      sock.close();
    }
    const key = cf.connectionDetails.connectionKey;
    // An expired token is refused on a resume too (a JWT only beyond the
    // 30 s clock-skew leeway, so use one expired 100 s ago).
    const expired = kind === 'jwt' ? ablyJwt(k0(), { ttlSec: 2, iatOffsetSec: -100, clientId: 'exp-user' }) : token;
    const stale = await wsConnect(env.server, { access_token: expired, resume: key });
    expectWsError(assert, stale.frame, 40142, 401, `${kind}: resume with an expired token`);
    // Another identity may not take the connection over.
    const other = await wsConnect(env.server, { access_token: ablyJwt(k0(), { clientId: 'someone-else' }), resume: key });
    expectWsError(assert, other.frame, 40102, 401, `${kind}: resume with another clientId`);
    // A new token for the same clientId resumes it.
    const { frame } = await wsConnect(env.server, { access_token: ablyJwt(k0(), { clientId: 'exp-user' }), resume: key });
    assert.equal(frame.action, ACTION.CONNECTED, `${kind}: ${JSON.stringify(frame)}`);
    assert.equal(frame.connectionId, cf.connectionId, `${kind}: RTN15c6 same connectionId`);
    assert.equal(frame.error, undefined, `${kind}: resumed without error`);
  }));
});

test('RSA4c/RTN15h2 renewal callback starts failing: CONNECTED through the failed reauth (RSA4c3), DISCONNECTED 40142 at expiry, 80019 while it fails (RSA4c1), then resume with the same connection id and no message lost', { timeout: 30_000 }, async (t) => {
  const c = clients(t);
  const pub = await connected(c, env.server, { key: k0().keyStr, binary: true });
  const scenario = async (binary) => {
    const label = binary ? 'msgpack' : 'json';
    let failing = false;
    const tokens = [];
    const authCallback = (_p, cb) => {
      if (failing) return cb(new Error('auth server down'), null);
      const tok = ablyJwt(k0(), { ttlSec: 7, clientId: `failing-${label}` });
      tokens.push({ at: Date.now(), exp: decodeJwt(tok).payload.exp * 1000 });
      return cb(null, tok);
    };
    const client = c.realtime(env.server, { authCallback, binary, disconnectedRetryTimeout: 500 });
    await waitForConnectionState(client, 'connected');
    const id = client.connection.id;
    const name = uniqueChannel(`failing-${label}`);
    const col = collector(client.channels.get(name));
    await withTimeout(col.subscribed, 5000, 'attach');
    const rec = recordStates(client);
    failing = true;
    const exp = tokens[0].exp;
    await pub.channels.get(name).publish('m', 'before-expiry');
    // Expired: the server's DISCONNECTED 40142 reaches the SDK.
    const first = await withTimeout(
      new Promise((resolve) => client.connection.once('disconnected', resolve)),
      exp - Date.now() + 3000,
      `${label}: disconnected`,
    );
    assert.equal(first.reason?.code, 40142, `${label}: disconnected by the server's token expiry`);
    assert.equal(first.reason?.statusCode, 401);
    assert.ok(Date.now() >= exp - 100, `${label}: stayed CONNECTED until expiry despite the failed reauth`);
    assert.deepEqual(rec.changes.slice(0, 1).map((s) => s.previous), ['connected']);
    await pub.channels.get(name).publish('m', 'during-outage');
    // Renewal keeps failing: the SDK reports 80019 (RSA4c1) and stays away.
    await waitUntil(() => rec.changes.some((s) => s.current === 'disconnected' && s.reason?.code === 80019), 4000, `${label}: 80019`);
    const e = rec.changes.find((s) => s.reason?.code === 80019).reason;
    assert.equal(e.statusCode, 401);
    failing = false;
    await waitForConnectionState(client, 'connected', { timeoutMs: 6000 });
    assert.equal(client.connection.id, id, `${label}: RTN15c6 resumed with the same connection id`);
    assert.equal(client.connection.errorReason, null, `${label}: no error after resume`);
    await col.until(2, 5000);
    await pub.channels.get(name).publish('m', 'after');
    await col.until(3, 5000);
    await sleep(200);
    assert.deepEqual(col.messages.map((m) => m.data), ['before-expiry', 'during-outage', 'after'], `${label}: nothing lost or duplicated`);
  };
  await Promise.all([scenario(true), scenario(false)]);
});

// ---------------------------------------------------------------------------
// RTC8 authorize(): in-band AUTH
// ---------------------------------------------------------------------------

/** An authCallback whose token kind and capability can change between calls. */
function controllable(kind, initialCap, clientId) {
  const ctl = { cap: initialCap, clientId, calls: 0 };
  ctl.authCallback = (_p, cb) => {
    ctl.calls += 1;
    if (kind === 'jwt') return cb(null, ablyJwt(k0(), { capability: ctl.cap, clientId: ctl.clientId, ttlSec: 600 }));
    return mintToken(env.server, k0(), { capability: ctl.cap, clientId: ctl.clientId, ttl: 600_000 }).then(
      (td) => cb(null, td.token),
      (err) => cb(err, null),
    );
  };
  return ctl;
}

bothProtocols('RTC8a/RTC8a4/RSA10 authorize() with an upgraded capability (JWT and Ably token): a channel denied before attaches without reconnecting (RTL4g)', { timeout: 20_000 }, async (t, binary) => {
  const c = clients(t);
  for (const kind of ['jwt', 'token']) {
    const A = uniqueChannel(`up-a-${kind}`);
    const B = uniqueChannel(`up-b-${kind}`);
    const ctl = controllable(kind, { [A]: ['*'] }, `up-${kind}`);
    const client = await connected(c, env.server, { authCallback: ctl.authCallback, binary });
    const id = client.connection.id;
    const chB = client.channels.get(B);
    const denied = await settle(chB.attach());
    assert.equal(denied.ok, false, `${kind}: B denied before`);
    assert.equal(denied.error.code, 40160);
    assert.equal(chB.state, 'failed');
    const rec = recordStates(client);
    ctl.cap = { [A]: ['*'], [B]: ['*'] };
    const upd = nextUpdate(client);
    const td = await withTimeout(client.auth.authorize(), 5000, `${kind}: authorize`);
    assert.ok(td.token, 'RSA10f authorize returns the token');
    await upd;
    assert.equal(client.connection.id, id, `${kind}: RTC8a1 same connection id`);
    assert.equal(client.connection.state, 'connected');
    assert.deepEqual(rec.changes.map((s) => s.current), ['connected'], `${kind}: only an update event (RTN24)`);
    const ok = await settle(chB.attach());
    assert.equal(ok.ok, true, `${kind}: B attaches after the upgrade: ${ok.error?.message}`);
    const col = collector(chB);
    await col.subscribed;
    await assertRoundTrip(client, B, col, `${kind} B`);
    assert.equal(col.messages.at(-1).clientId, `up-${kind}`);
  }
});

bothProtocols('RTC8a/RTL14 authorize() with a downgraded capability: the attached channel no longer permitted goes FAILED 40160, the connection stays CONNECTED', { timeout: 20_000 }, async (t, binary) => {
  const c = clients(t);
  for (const kind of ['jwt', 'token']) {
    const A = uniqueChannel(`down-a-${kind}`);
    const B = uniqueChannel(`down-b-${kind}`);
    const ctl = controllable(kind, { [A]: ['*'], [B]: ['*'] });
    const client = await connected(c, env.server, { authCallback: ctl.authCallback, binary });
    const id = client.connection.id;
    const colA = collector(client.channels.get(A));
    const colB = collector(client.channels.get(B));
    await withTimeout(Promise.all([colA.subscribed, colB.subscribed]), 5000, 'attach A and B');
    ctl.cap = { [A]: ['*'] };
    const failedB = waitForChannelState(client.channels.get(B), 'failed', { timeoutMs: 5000 });
    await withTimeout(client.auth.authorize(), 5000, `${kind}: authorize`);
    const sc = await failedB;
    assert.equal(sc.reason?.code, 40160, `${kind}: B failed with 40160`);
    assert.equal(sc.reason?.statusCode, 401);
    assert.equal(client.connection.state, 'connected', `${kind}: connection stays`);
    assert.equal(client.connection.id, id);
    assert.equal(client.channels.get(A).state, 'attached', `${kind}: A stays attached`);
    await assertRoundTrip(client, A, colA, `${kind} A`);
    const again = await settle(client.channels.get(B).attach());
    assert.equal(again.ok, false, `${kind}: B cannot be re-attached`);
    assert.equal(again.error.code, 40160);
  }
});

bothProtocols('RTC8a1 authorize() adding publish to an attached channel\'s capability lets it publish without re-attaching; removing it refuses publish 40160 (ably-js reauthCapabilityUpgradeAddPublish)', { timeout: 20_000 }, async (t, binary) => {
  const c = clients(t);
  for (const kind of ['jwt', 'token']) {
    const name = uniqueChannel(`addpub-${kind}`);
    const ctl = controllable(kind, { [name]: ['subscribe'] }, `addpub-${kind}`);
    const client = await connected(c, env.server, { authCallback: ctl.authCallback, binary });
    const ch = client.channels.get(name);
    await withTimeout(ch.attach(), 5000, 'attach');
    const before = await settle(ch.publish('x', 'no'));
    assert.equal(before.ok, false, `${kind}: publish refused before`);
    assert.equal(before.error.code, 40160, `${kind}: ${before.error.message}`);
    const rec = recordStates(client);
    ctl.cap = { [name]: ['subscribe', 'publish'] };
    await withTimeout(client.auth.authorize(), 5000, `${kind}: authorize`);
    assert.equal(ch.state, 'attached');
    const after = await settle(ch.publish('x', 'yes'));
    assert.equal(after.ok, true, `${kind}: publish after the upgrade: ${after.error?.code} ${after.error?.message}`);
    ctl.cap = { [name]: ['subscribe'] };
    await withTimeout(client.auth.authorize(), 5000, `${kind}: authorize (downgrade)`);
    const down = await settle(ch.publish('x', 'no again'));
    assert.equal(down.ok, false, `${kind}: publish refused after the downgrade`);
    assert.equal(down.error.code, 40160);
    assert.equal(ch.state, 'attached');
    assert.deepEqual(rec.changes.map((s) => s.current), ['connected', 'connected'], `${kind}: only update events`);
  }
});

bothProtocols('RTC8a2/RSA15c authorize() with a token for another clientId is refused by the server: 40102, connection FAILED', { timeout: 15_000 }, async (t, binary) => {
  const c = clients(t);
  let who = 'alice';
  const client = await connected(c, env.server, { authCallback: (_p, cb) => cb(null, ablyJwt(k0(), { clientId: who })), binary });
  assert.equal(client.auth.clientId, 'alice');
  who = 'bob';
  const r = await withTimeout(settle(client.auth.authorize()), 5000, 'authorize');
  assert.equal(r.ok, false, 'authorize rejects');
  assert.equal(r.error.code, 40102, `code ${r.error.code} ${r.error.message}`);
  await waitForConnectionState(client, 'failed', { timeoutMs: 3000 });
  assert.equal(client.connection.errorReason?.code, 40102);
});

test('RTC8a2 raw: AUTH with a token for another clientId or without one -> ERROR 40102/401; a malformed one -> 40144', { timeout: 10_000 }, async () => {
  const cases = [
    ['other clientId', ablyJwt(k0(), { clientId: 'mallory' }), 40102],
    ['anonymous token', ablyJwt(k0()), 40102],
    ['forged JWT', ablyJwt(k0(), { clientId: 'alice', secret: 'wrong-secret' }), 40144],
  ];
  for (const [label, token, code] of cases) {
    const { sock } = await wsConnected(assert, env.server, { access_token: ablyJwt(k0(), { clientId: 'alice' }) });
    try {
      sock.send({ action: ACTION.AUTH, auth: { accessToken: token } });
      const f = await sock.next((x) => x.action === ACTION.ERROR || (x.action === ACTION.CONNECTED && x !== sock.frames[0]), 3000, label);
      expectWsError(assert, f, code, 401, label);
    } finally {
      sock.close();
    }
  }
});
