// Capabilities and identities with tokens (issue 3): one user's token cannot
// reach another user's channel (RSA9f/TK2b, 40160 on attach, publish and
// history), the test app's key capabilities give exactly Ably's access
// (attach, publish, history), identified clients (RSA7, RSA8f, RSA15),
// clientId mismatches (40102 on connect, 40012 on publish) and the
// `identified` namespace rule (40161).
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
  createApp,
  waitForConnectionState,
  ACTION,
  test,
} from './lib/server.mjs';
import { ablyJwt, mintToken, wsConnect, wsConnected, wsAttach, wsPublish, expectWsError } from './lib/auth.mjs';

const env = useServer({ label: 'auth-capability' });
const key = (i) => env.app.keys[i];

// ---------------------------------------------------------------------------
// One user's token, another user's channel
// ---------------------------------------------------------------------------

const USER1_CAP = { 'conversations:user-1': ['publish', 'subscribe', 'history'] };

async function tokenFor(kind, k, params) {
  if (kind === 'jwt') return ablyJwt(k, { capability: params.capability, clientId: params.clientId });
  return (await mintToken(env.server, k, { capability: params.capability, clientId: params.clientId })).token;
}

bothProtocols('RSA9f/TK2b a user token for conversations:user-1 cannot attach to, publish on or read history of conversations:user-2 (40160 each); its own channel works', { timeout: 20_000 }, async (t, binary) => {
  const c = clients(t);
  for (const kind of ['jwt', 'token']) {
    const token = await tokenFor(kind, key(0), { capability: USER1_CAP, clientId: 'user-1' });
    const rt = await connected(c, env.server, { token, binary });
    const rest = c.rest(env.server, { token, binary });
    const own = rt.channels.get('conversations:user-1');
    const col = collector(own);
    await withTimeout(col.subscribed, 5000, `${kind}: attach own channel`);
    const data = `${kind}-${binary}-${Date.now()}`;
    await withTimeout(own.publish('m', data), 5000, `${kind}: publish on own channel`);
    await col.until(1);
    assert.equal(col.messages[0].clientId, 'user-1');
    const hist = await withTimeout(own.history(), 5000, `${kind}: own history`);
    assert.ok(hist.items.some((m) => m.data === data), `${kind}: own history has the message`);
    const restHist = await rest.channels.get('conversations:user-1').history();
    assert.ok(restHist.items.some((m) => m.data === data), `${kind}: own history over REST`);

    const other = rt.channels.get('conversations:user-2');
    const pub = await settle(other.publish('m', 'intrusion'));
    assert.equal(pub.ok, false, `${kind}: publish on user-2 refused`);
    assert.equal(pub.error.code, 40160);
    assert.equal(pub.error.statusCode, 401);
    const att = await settle(other.attach());
    assert.equal(att.ok, false, `${kind}: attach to user-2 refused`);
    assert.equal(att.error.code, 40160);
    assert.equal(other.state, 'failed');
    const h = await settle(rest.channels.get('conversations:user-2').history());
    assert.equal(h.ok, false, `${kind}: history of user-2 refused`);
    assert.equal(h.error.code, 40160);
    assert.equal(h.error.statusCode, 401);
    const rp = await settle(rest.channels.get('conversations:user-2').publish('m', 'intrusion'));
    assert.equal(rp.ok, false, `${kind}: REST publish on user-2 refused`);
    assert.equal(rp.error.code, 40160);
    assert.equal(rt.connection.state, 'connected', `${kind}: the connection stays`);
    // Nothing reached user-2's channel.
    const u2 = await c.rest(env.server, { key: key(0).keyStr, binary }).channels.get('conversations:user-2').history();
    assert.equal(u2.items.filter((m) => m.data === 'intrusion').length, 0, `${kind}: nothing published on user-2`);
  }
});

// ---------------------------------------------------------------------------
// The test app's key capabilities (tests/fixtures/app-setup.json)
// ---------------------------------------------------------------------------

// [key index, channel, {attach, publish, history}] with `true` = allowed.
// Unique suffixes keep wildcard rows independent of each other.
const u = () => uniqueChannel('cap');
const TABLE = () => [
  // key 0: no capability = everything
  [0, u(), { attach: true, publish: true, history: true }],
  // key 1
  [1, `readers:${u()}`, { attach: true, publish: false, history: false }],
  [1, `readers:a:${u()}`, { attach: true, publish: false, history: false }],
  [1, 'readers', { attach: false, publish: false, history: false }],
  [1, `writers:${u()}`, { attach: true, publish: true, history: false }],
  [1, 'writers:lobby', { attach: true, publish: true, history: false }],
  [1, `devices:${u()}`, { attach: true, publish: true, history: false }],
  [1, `devices:admin:${u()}`, { attach: true, publish: true, history: false }],
  [1, u(), { attach: false, publish: false, history: false }],
  // key 2
  [2, 'pub-1', { attach: true, publish: true, history: false }],
  [2, 'pub-2', { attach: true, publish: true, history: false }],
  [2, 'pub-sub', { attach: true, publish: true, history: false }],
  [2, 'sub-only', { attach: true, publish: false, history: false }],
  [2, 'members', { attach: true, publish: true, history: false }],
  [2, 'presence-only', { attach: true, publish: false, history: false }],
  [2, 'all-ops', { attach: true, publish: true, history: true }],
  [2, 'unlisted', { attach: false, publish: false, history: false }],
  [2, 'pub-1:sub', { attach: false, publish: false, history: false }],
  [2, 'All-ops', { attach: false, publish: false, history: false }],
  // key 3: {"*":["subscribe"]}
  [3, u(), { attach: true, publish: false, history: false }],
  [3, `ns:a:${u()}`, { attach: true, publish: false, history: false }],
  // key 4: revocableTokens, no capability = everything
  [4, u(), { attach: true, publish: true, history: true }],
  // key 5: {"[*]*":["*"]}
  [5, u(), { attach: true, publish: true, history: true }],
  [5, `ns:${u()}`, { attach: true, publish: true, history: true }],
];

bothProtocols('RSA9f/TK2b test-app key capabilities give exactly Ably\'s access: a table of (key, channel, attach/publish/history)', { timeout: 30_000 }, async (t, binary) => {
  const c = clients(t);
  const rts = new Map();
  const rests = new Map();
  const failures = [];
  for (const [ki, channel, expect] of TABLE()) {
    const i = Number(ki);
    if (!rts.has(i)) {
      rts.set(i, await connected(c, env.server, { key: key(i).keyStr, binary }));
      rests.set(i, c.rest(env.server, { key: key(i).keyStr, binary }));
    }
    const rt = rts.get(i);
    const ch = rt.channels.get(channel);
    const outcome = {};
    const codes = {};
    // publish first: it needs no attachment, and a failed attach would fail the channel.
    const p = await withTimeout(settle(ch.publish('m', 'x')), 5000, `key ${i} publish ${channel}`);
    const a = await withTimeout(settle(ch.attach()), 5000, `key ${i} attach ${channel}`);
    const h = await withTimeout(settle(rests.get(i).channels.get(channel).history()), 5000, `key ${i} history ${channel}`);
    for (const [op, r] of [['publish', p], ['attach', a], ['history', h]]) {
      outcome[op] = r.ok;
      if (!r.ok) codes[op] = `${r.error.code}/${r.error.statusCode}`;
    }
    for (const op of ['attach', 'publish', 'history']) {
      if (outcome[op] !== expect[op]) failures.push(`key ${i} ${op} ${channel}: expected ${expect[op] ? 'allowed' : 'denied'}, got ${outcome[op] ? 'allowed' : `denied ${codes[op]}`}`);
      else if (!outcome[op] && codes[op] !== '40160/401') failures.push(`key ${i} ${op} ${channel}: denied with ${codes[op]}, expected 40160/401`);
    }
    if (rt.connection.state !== 'connected') failures.push(`key ${i}: connection ${rt.connection.state} after ${channel}`);
    if (!expect.attach) ch.detach().catch(() => {});
    rt.channels.release?.(channel);
  }
  assert.deepEqual(failures, []);
});

// ---------------------------------------------------------------------------
// Identified clients
// ---------------------------------------------------------------------------

bothProtocols('RSA15b/RSA7b4/RSA8f3/RSA8f4 wildcard token: with the clientId option the client is that clientId; without, it may publish as anyone', { timeout: 15_000 }, async (t, binary) => {
  const c = clients(t);
  const wild = () => ablyJwt(key(0), { clientId: '*' });
  const named = await connected(c, env.server, { authCallback: (_p, cb) => cb(null, wild()), clientId: 'carol', binary });
  assert.equal(named.connection.connectionManager.connectionDetails.clientId, 'carol', 'connectionDetails.clientId');
  assert.equal(named.auth.clientId, 'carol');
  const name = uniqueChannel('wild');
  const col = collector(named.channels.get(name));
  await col.subscribed;
  await named.channels.get(name).publish('m', 'by-carol');
  const anyone = await connected(c, env.server, { authCallback: (_p, cb) => cb(null, wild()), binary });
  assert.equal(anyone.connection.connectionManager.connectionDetails.clientId, '*', 'wildcard connection');
  await anyone.channels.get(name).publish('m', 'unnamed');
  await anyone.channels.get(name).publish({ name: 'm', data: 'as-dave', clientId: 'dave' });
  await col.until(3);
  assert.deepEqual(
    col.messages.map((m) => [m.data, m.clientId]),
    [['by-carol', 'carol'], ['unnamed', undefined], ['as-dave', 'dave']],
  );
  // carol is identified: publishing as someone else is refused.
  const spoof = await settle(named.channels.get(name).publish({ name: 'm', data: 'x', clientId: 'eve' }));
  assert.equal(spoof.ok, false);
  assert.equal(spoof.error.code, 40012);
});

bothProtocols('RSA8f1/RSA8f2 anonymous token: messages carry no clientId; publishing with a clientId is refused (40012)', { timeout: 15_000 }, async (t, binary) => {
  const c = clients(t);
  const td = await mintToken(env.server, key(0), {});
  const client = await connected(c, env.server, { token: td.token, binary });
  assert.ok(client.auth.clientId == null, `RSA12a auth.clientId is null (got ${client.auth.clientId})`);
  const name = uniqueChannel('anon');
  const col = collector(client.channels.get(name));
  await col.subscribed;
  await client.channels.get(name).publish('m', 'plain');
  const r = await settle(client.channels.get(name).publish({ name: 'm', data: 'claimed', clientId: 'zed' }));
  assert.equal(r.ok, false, 'an anonymous token client cannot claim a clientId');
  assert.equal(r.error.code, 40012);
  await col.until(1);
  await sleep(200);
  assert.deepEqual(col.messages.map((m) => [m.data, m.clientId]), [['plain', undefined]]);
  assert.equal(client.connection.state, 'connected');
});

bothProtocols('RSA15a/RSA15c connect with a clientId the token does not allow: 40102, connection FAILED', { timeout: 15_000 }, async (t, binary) => {
  const c = clients(t);
  // A JWT string: the SDK cannot see its clientId, so the server decides.
  const client = c.realtime(env.server, { token: ablyJwt(key(0), { clientId: 'alice' }), clientId: 'bob', binary });
  await waitForConnectionState(client, 'failed', { timeoutMs: 5000 });
  assert.equal(client.connection.errorReason?.code, 40102);
  assert.equal(client.connection.errorReason?.statusCode, 401);
});

test('RSA15a/RSA8f2 raw: clientId param incompatible with the token -> ERROR 40102; anonymous token + clientId -> 40102; wildcard token + clientId -> CONNECTED', { timeout: 10_000 }, async () => {
  const td = await mintToken(env.server, key(0), { clientId: 'alice' });
  for (const [label, token, clientId, code] of [
    ['jwt alice as bob', ablyJwt(key(0), { clientId: 'alice' }), 'bob', 40102],
    ['ably token alice as bob', td.token, 'bob', 40102],
    ['anonymous jwt as bob', ablyJwt(key(0)), 'bob', 40102],
    ['jwt alice as alice', ablyJwt(key(0), { clientId: 'alice' }), 'alice', 0],
    ['wildcard jwt as bob', ablyJwt(key(0), { clientId: '*' }), 'bob', 0],
  ]) {
    const { frame } = await wsConnect(env.server, { access_token: token, clientId });
    if (code) expectWsError(assert, frame, code, 401, label);
    else {
      assert.equal(frame.action, ACTION.CONNECTED, `${label}: ${JSON.stringify(frame)}`);
      assert.equal(frame.connectionDetails.clientId, clientId, label);
    }
  }
});

test('RTL6g/RSA7a1 raw: an identified client publishing with another clientId gets NACK 40012 and nothing is delivered; its own clientId or none is accepted and stamped', { timeout: 10_000 }, async () => {
  const name = uniqueChannel('spoof');
  const { sock: watcher } = await wsConnected(assert, env.server, { key: key(0).keyStr });
  try {
    assert.equal((await wsAttach(watcher, name)).action, ACTION.ATTACHED);
    const identities = [
      ['token alice', { access_token: ablyJwt(key(0), { clientId: 'alice' }) }],
      ['key + clientId alice', { key: key(0).keyStr, clientId: 'alice' }],
    ];
    let serial = 0;
    for (const [label, query] of identities) {
      const { sock } = await wsConnected(assert, env.server, query);
      try {
        const nack = await wsPublish(sock, name, 0, [{ name: 'm', data: `spoof-${label}`, clientId: 'mallory' }]);
        assert.equal(nack.action, ACTION.NACK, `${label}: ${JSON.stringify(nack)}`);
        assert.equal(nack.error?.code, 40012, `${label}: NACK code`);
        assert.equal(nack.error?.statusCode, 400);
        const ack1 = await wsPublish(sock, name, 1, [{ name: 'm', data: `own-${label}`, clientId: 'alice' }]);
        const ack2 = await wsPublish(sock, name, 2, [{ name: 'm', data: `none-${label}` }]);
        assert.equal(ack1.action, ACTION.ACK, `${label}: own clientId accepted`);
        assert.equal(ack2.action, ACTION.ACK, `${label}: no clientId accepted`);
        serial += 2;
      } finally {
        sock.close();
      }
    }
    await watcher.next((f) => f.action === ACTION.MESSAGE && f.messages?.some((m) => m.data === 'none-key + clientId alice'), 3000, 'last message');
    await sleep(200);
    const got = watcher.frames.filter((f) => f.action === ACTION.MESSAGE).flatMap((f) => f.messages.map((m) => [m.data, m.clientId]));
    assert.equal(got.length, serial);
    assert.deepEqual(got, [
      ['own-token alice', 'alice'],
      ['none-token alice', 'alice'],
      ['own-key + clientId alice', 'alice'],
      ['none-key + clientId alice', 'alice'],
    ]);
  } finally {
    watcher.close();
  }
});

test('RSA8f2 raw: an anonymous token client publishing with a clientId gets NACK 40012; a key client may (RTL6e1)', { timeout: 10_000 }, async () => {
  const name = uniqueChannel('anon-raw');
  const { sock } = await wsConnected(assert, env.server, { access_token: ablyJwt(key(0)) });
  try {
    const nack = await wsPublish(sock, name, 0, [{ name: 'm', data: 'x', clientId: 'zed' }]);
    assert.equal(nack.action, ACTION.NACK, JSON.stringify(nack));
    assert.equal(nack.error?.code, 40012);
  } finally {
    sock.close();
  }
  const { sock: k } = await wsConnected(assert, env.server, { key: key(0).keyStr });
  try {
    const ack = await wsPublish(k, name, 0, [{ name: 'm', data: 'x', clientId: 'zed' }]);
    assert.equal(ack.action, ACTION.ACK, JSON.stringify(ack));
  } finally {
    k.close();
  }
});

bothProtocols('identified namespace: attach without a clientId (key, anonymous or wildcard token) -> channel FAILED 40161, connection stays; with a clientId it attaches', { timeout: 20_000 }, async (t, binary) => {
  const c = clients(t);
  if (!env.identApp) {
    env.identApp = await createApp(env.server, { keys: [{}], namespaces: [{ id: 'ident', identified: true }] });
  }
  const k = env.identApp.keys[0];
  const ch = uniqueChannel('ident:room');
  const cases = [
    ['key', { key: k.keyStr }, false],
    ['anonymous token', { token: ablyJwt(k) }, false],
    ['wildcard token', { token: ablyJwt(k, { clientId: '*' }) }, false],
    ['key + clientId', { key: k.keyStr, clientId: 'ided' }, true],
    ['token with clientId', { token: ablyJwt(k, { clientId: 'ided' }) }, true],
    ['wildcard token + clientId', { authCallback: (_p, cb) => cb(null, ablyJwt(k, { clientId: '*' })), clientId: 'ided' }, true],
  ];
  for (const [label, opts, allowed] of cases) {
    const client = await connected(c, env.server, { ...opts, binary });
    const r = await withTimeout(settle(client.channels.get(ch).attach()), 5000, `${label}: attach`);
    assert.equal(r.ok, allowed, `${label}: attach ${allowed ? 'allowed' : 'refused'} (${r.error?.code} ${r.error?.message})`);
    if (!allowed) {
      assert.equal(r.error.code, 40161, `${label}: code`);
      assert.equal(r.error.statusCode, 401);
      assert.equal(client.channels.get(ch).state, 'failed');
      // Outside the namespace the same client is fine.
      const other = await settle(client.channels.get(uniqueChannel('open')).attach());
      assert.equal(other.ok, true, `${label}: other namespaces unaffected`);
    }
    assert.equal(client.connection.state, 'connected', `${label}: connection stays`);
  }
});
