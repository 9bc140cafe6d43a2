// Token authentication, each credential path through ably-js's real code
// (issue 3): RSA8d authCallback returning a JWT, a TokenRequest
// (RSA9 createTokenRequest), a token string and TokenDetails; RSA8c authUrl
// (GET and POST, authParams/authHeaders, RSA8g JWT and Ably token); RSA7e
// key + clientId; RSA3 REST with tokens and JWTs (Bearer raw and base64,
// query params); TD TokenDetails from requestToken; RSA4b renewal after an
// expired JWT; an Ably token embedded in a customer JWT (x-ably-token);
// RSC16 GET /time without auth and RSA9d queryTime.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import {
  useServer,
  bothProtocols,
  clients,
  connected,
  collector,
  uniqueChannel,
  withTimeout,
  settle,
  http,
  waitForConnectionState,
  ACTION,
  Ably,
  test,
} from './lib/server.mjs';
import {
  ablyJwt,
  signedTokenRequest,
  requestTokenRaw,
  mintToken,
  bearer,
  bearerRaw,
  basicAuth,
  expectRestError,
  wsConnect,
  expectWsError,
  startAuthServer,
  jwt,
} from './lib/auth.mjs';

const env = useServer({ label: 'auth' });
const T = { timeout: 20_000 };
const k0 = () => env.app.keys[0]; // no capability: all access
const TOKEN_RE = /^sbt1\.[A-Za-z0-9_-]+$/;

/** Publishes on a fresh channel and returns the message the client itself receives. */
async function roundTrip(client, prefix = 'rt', publishArgs = ['m', 'hello']) {
  const name = uniqueChannel(prefix);
  const ch = client.channels.get(name);
  const col = collector(ch);
  await withTimeout(col.subscribed, 5000, `attach ${name}`);
  await withTimeout(ch.publish(...publishArgs), 5000, `publish on ${name}`);
  const [m] = await col.until(1, 5000);
  return m;
}

// ---------------------------------------------------------------------------
// RSA8d authCallback: JWT, TokenRequest, token string, TokenDetails
// ---------------------------------------------------------------------------

bothProtocols('RSA8d/RSA8g authCallback returning an Ably JWT: CONNECTED with the JWT clientId, messages stamped (RSA7a1)', T, async (t, binary) => {
  const c = clients(t);
  let calls = 0;
  let seenParams;
  const authCallback = (params, cb) => {
    calls += 1;
    seenParams = params;
    cb(null, ablyJwt(k0(), { clientId: 'jwt-user' }));
  };
  const client = await connected(c, env.server, { authCallback, binary });
  assert.equal(calls, 1, 'authCallback called once to connect');
  assert.equal(typeof seenParams, 'object', 'authCallback gets TokenParams');
  assert.equal(client.connection.connectionManager.connectionDetails.clientId, 'jwt-user', 'CD2a clientId from the JWT');
  assert.equal(client.auth.clientId, 'jwt-user', 'RSA7b3 auth.clientId');
  const m = await roundTrip(client, 'jwt');
  assert.equal(m.clientId, 'jwt-user', 'RSA7a1 messages are stamped with the token clientId');
  assert.equal(m.connectionId, client.connection.id);
});

bothProtocols('RSA8d/RSA9 authCallback returning a TokenRequest (createTokenRequest): TokenDetails from the server (TD2-TD6), capability enforced', T, async (t, binary) => {
  const c = clients(t);
  const signer = c.rest(env.server, { key: k0().keyStr, binary });
  let calls = 0;
  const authCallback = (params, cb) => {
    calls += 1;
    signer.auth
      .createTokenRequest({ clientId: 'tr-user', ttl: 600_000, capability: { 'tr:*': ['subscribe', 'publish'] } })
      .then((tr) => cb(null, tr), (e) => cb(e, null));
  };
  const client = await connected(c, env.server, { authCallback, binary });
  assert.equal(calls, 1);
  const td = client.auth.tokenDetails;
  assert.match(td.token, TOKEN_RE, 'TD2 token string');
  assert.equal(td.clientId, 'tr-user', 'TD6 clientId');
  assert.equal(td.expires - td.issued, 600_000, 'TD3/TD4 expires - issued = ttl');
  assert.ok(Math.abs(td.issued - Date.now()) < 10_000, 'issued is now');
  assert.equal(td.capability, '{"tr:*":["publish","subscribe"]}', 'TD5 canonical capability (ops sorted)');
  assert.equal(td.keyName, k0().keyName);
  assert.equal(client.connection.connectionManager.connectionDetails.clientId, 'tr-user');
  const m = await roundTrip(client, 'tr:ok');
  assert.equal(m.clientId, 'tr-user');
  const denied = await withTimeout(settle(client.channels.get(uniqueChannel('outside')).attach()), 5000, 'attach outside');
  assert.equal(denied.ok, false, 'attach outside the token capability is refused');
  assert.equal(denied.error.code, 40160);
  assert.equal(client.connection.state, 'connected');
});

bothProtocols('RSA8d/RSA8g authCallback returning an Ably token string: CONNECTED (RSA16b tokenDetails holds only the token)', T, async (t, binary) => {
  const c = clients(t);
  const td = await mintToken(env.server, k0(), { clientId: 'str-user' });
  assert.match(td.token, TOKEN_RE);
  const client = await connected(c, env.server, { authCallback: (_p, cb) => cb(null, td.token), binary });
  assert.equal(client.auth.tokenDetails.token, td.token);
  assert.equal(client.connection.connectionManager.connectionDetails.clientId, 'str-user', 'clientId from the token');
  const m = await roundTrip(client, 'str');
  assert.equal(m.clientId, 'str-user');
});

bothProtocols('RSA8d authCallback returning TokenDetails: CONNECTED, tokenDetails kept (RSA16a)', T, async (t, binary) => {
  const c = clients(t);
  const td = await mintToken(env.server, k0(), { ttl: 300_000, capability: { 'td:*': ['*'] } });
  const client = await connected(c, env.server, { authCallback: (_p, cb) => cb(null, td), binary });
  assert.deepEqual(
    { token: client.auth.tokenDetails.token, expires: client.auth.tokenDetails.expires },
    { token: td.token, expires: td.expires },
  );
  assert.equal(client.connection.connectionManager.connectionDetails.clientId, undefined, 'anonymous token: no clientId');
  const m = await roundTrip(client, 'td:x');
  assert.equal(m.clientId, undefined);
  const denied = await settle(client.channels.get(uniqueChannel('notd')).attach());
  assert.equal(denied.ok, false);
  assert.equal(denied.error.code, 40160);
});

// ---------------------------------------------------------------------------
// RSA8c authUrl
// ---------------------------------------------------------------------------

/** An auth endpoint that checks the X-App-Auth header and answers by `kind`. */
async function authEndpoint(t) {
  const srv = await startAuthServer(async (r) => {
    if (r.headers['x-app-auth'] !== 'let-me-in') return { status: 403, type: 'text/plain', body: 'no auth header' };
    const params = r.method === 'POST' ? r.form : r.query;
    const user = params.user;
    switch (params.kind) {
      case 'jwt':
        return { type: 'application/jwt', body: ablyJwt(k0(), { clientId: user }) };
      case 'token':
        return { type: 'text/plain', body: (await mintToken(env.server, k0(), { clientId: user })).token };
      case 'tokenrequest':
        return { body: signedTokenRequest(k0(), { clientId: user }) };
      case 'tokendetails':
        return { body: await mintToken(env.server, k0(), { clientId: user }) };
      default:
        return { status: 400, type: 'text/plain', body: 'bad kind' };
    }
  });
  t.after(() => srv.close());
  return srv;
}

bothProtocols('RSA8c/RSA8c1a/RSA8g authUrl GET: authParams and TokenParams in the query, authHeaders sent; JWT and Ably token string', T, async (t, binary) => {
  const c = clients(t);
  const srv = await authEndpoint(t);
  for (const kind of ['jwt', 'token']) {
    const user = `url-get-${kind}`;
    const client = await connected(c, env.server, {
      authUrl: `${srv.url}?preset=kept`,
      authParams: { kind, user },
      authHeaders: { 'X-App-Auth': 'let-me-in' },
      defaultTokenParams: { ttl: 120_000 },
      binary,
    });
    const req = srv.requests.at(-1);
    assert.equal(req.method, 'GET');
    assert.equal(req.query.kind, kind, 'authParams in the query string');
    assert.equal(req.query.user, user);
    assert.equal(req.query.preset, 'kept', 'RSA8c1c query params of the authUrl are kept');
    assert.equal(req.query.ttl, '120000', 'TokenParams in the query string');
    assert.equal(client.connection.connectionManager.connectionDetails.clientId, user, `${kind}: clientId from the token`);
    const m = await roundTrip(client, `url-${kind}`);
    assert.equal(m.clientId, user);
  }
});

bothProtocols('RSA8c1b authUrl POST: form-encoded authParams, authHeaders; TokenRequest and TokenDetails responses', T, async (t, binary) => {
  const c = clients(t);
  const srv = await authEndpoint(t);
  for (const kind of ['tokenrequest', 'tokendetails']) {
    const user = `url-post-${kind}`;
    const client = await connected(c, env.server, {
      authUrl: srv.url,
      authMethod: 'POST',
      authParams: { kind, user },
      authHeaders: { 'X-App-Auth': 'let-me-in' },
      binary,
    });
    const req = srv.requests.at(-1);
    assert.equal(req.method, 'POST');
    assert.match(req.headers['content-type'], /application\/x-www-form-urlencoded/);
    assert.equal(req.form.kind, kind, 'authParams in the form body');
    assert.equal(req.form.user, user);
    assert.deepEqual(req.query, {}, 'nothing in the query string');
    assert.equal(client.connection.connectionManager.connectionDetails.clientId, user);
    assert.match(client.auth.tokenDetails.token, TOKEN_RE);
    const m = await roundTrip(client, `post-${kind}`);
    assert.equal(m.clientId, user);
  }
});

// ---------------------------------------------------------------------------
// Keys with clientId, REST credentials
// ---------------------------------------------------------------------------

bothProtocols('RSA7e1/RTN2e key + clientId: connectionDetails.clientId, messages stamped; RTL6e1 a key-only client may name any clientId', T, async (t, binary) => {
  const c = clients(t);
  const ided = await connected(c, env.server, { key: k0().keyStr, clientId: 'key-user', binary });
  assert.equal(ided.connection.connectionManager.connectionDetails.clientId, 'key-user');
  assert.equal(ided.auth.clientId, 'key-user');
  assert.equal((await roundTrip(ided, 'keycid')).clientId, 'key-user');
  const anon = await connected(c, env.server, { key: k0().keyStr, binary });
  assert.equal(anon.connection.connectionManager.connectionDetails.clientId, undefined);
  const m = await roundTrip(anon, 'keyany', [{ name: 'm', data: 'x', clientId: 'someone-else' }]);
  assert.equal(m.clientId, 'someone-else', 'RTL6e1 message keeps the clientId given');
});

bothProtocols('RSA3b/RSA3d REST with an Ably token and with a JWT (ably-js Bearer base64): publish and history', T, async (t, binary) => {
  const c = clients(t);
  const td = await mintToken(env.server, k0(), {});
  for (const [label, token] of [['ably token', td.token], ['jwt', ablyJwt(k0())]]) {
    const rest = c.rest(env.server, { token, binary });
    const name = uniqueChannel(`rest-${label.replace(' ', '')}`);
    await withTimeout(rest.channels.get(name).publish('m', label), 5000, `${label} publish`);
    const page = await withTimeout(rest.channels.get(name).history(), 5000, `${label} history`);
    assert.deepEqual(page.items.map((m) => m.data), [label], `${label}: history`);
  }
});

test('RSA3b/RSA11 raw REST credentials: Bearer raw and base64 (token and JWT), ?access_token=, ?accessToken=, ?key=, Basic; none -> 40101', T, async () => {
  const name = uniqueChannel('rawcred');
  const pub = await http(env.server, 'POST', `/channels/${name}/messages`, { key: k0().keyStr, body: { name: 'n', data: 'd' } });
  assert.equal(pub.status, 201, `Basic publish: ${pub.text}`);
  const td = await mintToken(env.server, k0(), {});
  const j = ablyJwt(k0());
  const hist = `/channels/${name}/messages`;
  const cases = [
    ['Bearer base64(ably token)', hist, { authorization: bearer(td.token) }],
    ['Bearer raw ably token', hist, { authorization: bearerRaw(td.token) }],
    ['Bearer base64(jwt)', hist, { authorization: bearer(j) }],
    ['Bearer raw jwt', hist, { authorization: bearerRaw(j) }],
    ['?access_token=token', `${hist}?access_token=${encodeURIComponent(td.token)}`, {}],
    ['?accessToken=jwt', `${hist}?accessToken=${encodeURIComponent(j)}`, {}],
    ['?key=', `${hist}?key=${encodeURIComponent(k0().keyStr)}`, {}],
    ['Basic', hist, { authorization: basicAuth(k0().keyStr) }],
  ];
  for (const [label, p, headers] of cases) {
    const r = await http(env.server, 'GET', p, { headers });
    assert.equal(r.status, 200, `${label}: ${r.text}`);
    assert.deepEqual(r.body.map((m) => m.data), ['d'], `${label}: history body`);
  }
  expectRestError(assert, await http(env.server, 'GET', hist), 40101, 401, 'no credentials');
});

bothProtocols('RSA7e2 REST client with key + clientId sends X-Ably-ClientId: messages carry it', T, async (t, binary) => {
  const c = clients(t);
  const rest = c.rest(env.server, { key: k0().keyStr, clientId: 'rest-hdr-user', binary });
  const name = uniqueChannel('xclient');
  await rest.channels.get(name).publish('m', 'v');
  const page = await rest.channels.get(name).history();
  assert.equal(page.items[0].clientId, 'rest-hdr-user');
  const raw = await http(env.server, 'POST', `/channels/${name}/messages`, {
    key: k0().keyStr,
    headers: { 'x-ably-clientid': Buffer.from('raw-hdr-user').toString('base64') },
    body: { name: 'raw', data: 'w' },
  });
  assert.equal(raw.status, 201, raw.text);
  const page2 = await rest.channels.get(name).history({ direction: 'forwards' });
  assert.deepEqual(page2.items.map((m) => m.clientId), ['rest-hdr-user', 'raw-hdr-user']);
});

test('TD1-TD6/RSA5/RSA6 requestToken with Basic auth (unsigned params): TokenDetails fields, default ttl 1 h, canonical capability', T, async () => {
  const k = k0();
  const r = await requestTokenRaw(env.server, k.keyName, { capability: JSON.stringify({ b: ['subscribe', 'publish'], a: ['history'] }) }, { key: k.keyStr });
  assert.ok(r.status >= 200 && r.status < 300, `${r.status} ${r.text}`);
  const td = r.body;
  assert.match(td.token, TOKEN_RE);
  assert.equal(td.keyName, k.keyName);
  assert.equal(td.expires - td.issued, 3_600_000, 'RSA5 default ttl 60 minutes');
  assert.equal(td.capability, '{"a":["history"],"b":["publish","subscribe"]}', 'canonical capability');
  assert.equal('clientId' in td, false, 'no clientId when none requested');
  const none = await requestTokenRaw(env.server, k.keyName, {}, { key: env.app.keys[2].keyStr });
  expectRestError(assert, none, 40101, 401, 'unsigned params with another key\'s Basic auth');
  const anon = await requestTokenRaw(env.server, k.keyName, { ttl: 1000 });
  expectRestError(assert, anon, 40101, 401, 'unsigned params without auth');
  // RSA6: no capability requested -> the key's capability.
  const k2 = env.app.keys[2];
  const r2 = await requestTokenRaw(env.server, k2.keyName, signedTokenRequest(k2, { ttl: 123 }));
  assert.ok(r2.status < 300, r2.text);
  assert.deepEqual(JSON.parse(r2.body.capability), JSON.parse(k2.capability), 'token capability = key capability');
  assert.equal(r2.body.expires - r2.body.issued, 123, 'TK2a ttl in ms, exactly');
});

bothProtocols('RSA8e/RSA8a rest.auth.requestToken: TokenDetails with clientId and ttl; the token connects a realtime client', T, async (t, binary) => {
  const c = clients(t);
  const rest = c.rest(env.server, { key: k0().keyStr, binary });
  const td = await rest.auth.requestToken({ clientId: 'rt-user', ttl: 60_000, capability: { 'rq:*': ['*'] } });
  assert.match(td.token, TOKEN_RE);
  assert.equal(td.clientId, 'rt-user');
  assert.equal(td.expires - td.issued, 60_000);
  assert.equal(td.capability, '{"rq:*":["*"]}');
  const client = await connected(c, env.server, { tokenDetails: td, binary });
  assert.equal(client.auth.clientId, 'rt-user');
  assert.equal((await roundTrip(client, 'rq:a')).clientId, 'rt-user');
});

// ---------------------------------------------------------------------------
// Converted from the issue-3 TODO tests
// ---------------------------------------------------------------------------

bothProtocols('RSA4b/RTN14b expired JWT at connect: the server answers 40142 and the SDK renews once', T, async (t, binary) => {
  const c = clients(t);
  let calls = 0;
  const authCallback = (_params, cb) => {
    calls += 1;
    // First token is already expired; the renewed one is valid.
    cb(null, calls === 1 ? ablyJwt(k0(), { iatOffsetSec: -7200, ttlSec: 60 }) : ablyJwt(k0()));
  };
  const client = c.realtime(env.server, { authCallback, binary });
  await waitForConnectionState(client, 'connected', { timeoutMs: 8000 });
  assert.equal(calls, 2, 'exactly one renewal after the 40142 token error');
  // The server's answer, on a raw socket.
  const { frame } = await wsConnect(env.server, { access_token: ablyJwt(k0(), { iatOffsetSec: -7200, ttlSec: 60 }) });
  expectWsError(assert, frame, 40142, 401, 'expired JWT');
});

bothProtocols('RSA9/RSA10 JWT capability is intersected with the key: publish outside it -> 40160', T, async (t, binary) => {
  const c = clients(t);
  const token = ablyJwt(k0(), { capability: { 'jwtonly:*': ['subscribe'] } });
  const client = await connected(c, env.server, { token, binary });
  const sub = await settle(client.channels.get(`jwtonly:${uniqueChannel('a')}`).attach());
  assert.equal(sub.ok, true, `attach inside the JWT capability: ${sub.error?.message}`);
  const pub = await settle(client.channels.get(`jwtonly:${uniqueChannel('b')}`).publish('x', 'y'));
  assert.equal(pub.ok, false);
  assert.equal(pub.error.code, 40160);
  const other = await settle(client.channels.get(uniqueChannel('outside')).attach());
  assert.equal(other.ok, false);
  assert.equal(other.error.code, 40160);
  // Key 3 only has {"*":["subscribe"]}: a JWT asking for everything gets subscribe only.
  const k3 = env.app.keys[3];
  const narrow = await connected(c, env.server, { token: ablyJwt(k3, { capability: { '*': ['*'] } }), binary });
  const ch = narrow.channels.get(uniqueChannel('k3'));
  assert.equal((await settle(ch.attach())).ok, true);
  const p3 = await settle(ch.publish('x', 'y'));
  assert.equal(p3.ok, false, 'publish beyond the key');
  assert.equal(p3.error.code, 40160);
});

bothProtocols('RSA3/RSA4a2 REST with a JWT bearer token: history works; a JWT with a wrong secret -> server 40144/401, ably-js (token literal) 40171', T, async (t, binary) => {
  const c = clients(t);
  const k = k0();
  const rest = c.rest(env.server, { token: ablyJwt(k), binary });
  const name = uniqueChannel('jwt-rest');
  await rest.channels.get(name).publish('m', 'v');
  const page = await rest.channels.get(name).history();
  assert.deepEqual(page.items.map((m) => m.data), ['v']);
  const forged = ablyJwt(k, { secret: 'not-the-secret' });
  // The server's answer...
  const raw = await http(env.server, 'GET', `/channels/${name}/messages`, { headers: { authorization: bearer(forged) } });
  expectRestError(assert, raw, 40144, 401, 'JWT with a wrong secret');
  // ...is a token error, which the SDK cannot renew from a literal token (RSA4a2).
  const bad = c.rest(env.server, { token: forged, binary });
  const r = await settle(bad.channels.get(name).history());
  assert.equal(r.ok, false);
  assert.equal(r.error.code, 40171);
  assert.equal(r.error.statusCode, 403);
});

test('RTN2e/RSA3c token auth over a raw WebSocket: access_token and accessToken (JWT and Ably token) get CONNECTED', T, async () => {
  const td = await mintToken(env.server, k0(), { clientId: 'raw-user' });
  for (const [param, token, cid] of [
    ['access_token', ablyJwt(k0()), undefined],
    ['accessToken', ablyJwt(k0(), { clientId: 'raw-jwt' }), 'raw-jwt'],
    ['access_token', td.token, 'raw-user'],
    ['accessToken', td.token, 'raw-user'],
  ]) {
    for (const format of ['json', 'msgpack']) {
      const { frame } = await wsConnect(env.server, { [param]: token, format });
      assert.equal(frame.action, ACTION.CONNECTED, `${param} ${format}: ${JSON.stringify(frame).slice(0, 300)}`);
      assert.equal(frame.connectionDetails?.clientId, cid, `${param} ${format}: clientId`);
    }
  }
});

// ---------------------------------------------------------------------------
// Embedded Ably token (x-ably-token) in a customer-signed JWT
// ---------------------------------------------------------------------------

/** A JWT signed by "the customer's own system" (RS256, a key the server never sees) carrying `inner`. */
function customerJwt(inner, { where = 'header', exp, claims = {} }) {
  if (!customerJwt.key) customerJwt.key = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  const payload = { iat: Math.floor(Date.now() / 1000), exp, ...claims };
  const header = { typ: 'JWT' };
  if (where === 'header') header['x-ably-token'] = inner;
  else payload['x-ably-token'] = inner;
  return jwt.sign(payload, customerJwt.key, { algorithm: 'RS256', header });
}

bothProtocols('embedded token: an Ably token in x-ably-token (JOSE header or claim) of a customer JWT authenticates with the inner token\'s clientId and capability; outer claims grant nothing', T, async (t, binary) => {
  const c = clients(t);
  const inner = await mintToken(env.server, k0(), { clientId: 'emb-user', capability: { 'emb:*': ['*'] }, ttl: 600_000 });
  const exp = Math.floor(inner.expires / 1000) - 60;
  const outerClaims = { 'x-ably-capability': JSON.stringify({ '*': ['*'] }), 'x-ably-clientId': 'outer-admin' };
  for (const where of ['header', 'claim']) {
    const outer = customerJwt(inner.token, { where, exp, claims: outerClaims });
    const client = await connected(c, env.server, { authCallback: (_p, cb) => cb(null, outer), binary });
    assert.equal(client.connection.connectionManager.connectionDetails.clientId, 'emb-user', `${where}: inner clientId`);
    assert.equal((await roundTrip(client, 'emb:x')).clientId, 'emb-user');
    const denied = await settle(client.channels.get(uniqueChannel('not-emb')).attach());
    assert.equal(denied.ok, false, `${where}: the outer capability claim is ignored`);
    assert.equal(denied.error.code, 40160);
  }
});

test('embedded token: refused when the outer JWT outlives the inner token (40144), when the inner token is forged (40143/40145) or an embedded JWT is itself forged (40144)', T, async () => {
  const inner = await mintToken(env.server, k0(), { ttl: 600_000 });
  const late = customerJwt(inner.token, { exp: Math.floor(inner.expires / 1000) + 3600 });
  expectWsError(assert, (await wsConnect(env.server, { access_token: late })).frame, 40144, 401, 'outer exp after inner expiry');
  const body = inner.token.slice(5);
  const forged = customerJwt(`sbt1.${body.slice(0, 20)}${body[20] === 'A' ? 'B' : 'A'}${body.slice(21)}`, { exp: Math.floor(inner.expires / 1000) - 60 });
  const { frame } = await wsConnect(env.server, { access_token: forged });
  assert.equal(frame.action, ACTION.ERROR, JSON.stringify(frame));
  assert.ok([40143, 40145].includes(frame.error.code), `forged inner token: ${frame.error.code}`);
  assert.equal(frame.error.statusCode, 401);
  const innerJwt = ablyJwt(k0(), { secret: 'forged-secret', ttlSec: 600 });
  const viaJwt = customerJwt(innerJwt, { exp: Math.floor(Date.now() / 1000) + 300 });
  expectWsError(assert, (await wsConnect(env.server, { access_token: viaJwt })).frame, 40144, 401, 'forged inner JWT');
  const goodInnerJwt = customerJwt(ablyJwt(k0(), { ttlSec: 600, clientId: 'inner-jwt' }), { exp: Math.floor(Date.now() / 1000) + 300 });
  const ok = await wsConnect(env.server, { access_token: goodInnerJwt });
  assert.equal(ok.frame.action, ACTION.CONNECTED, JSON.stringify(ok.frame));
  assert.equal(ok.frame.connectionDetails.clientId, 'inner-jwt');
});

// ---------------------------------------------------------------------------
// RSC16 time, RSA9d queryTime
// ---------------------------------------------------------------------------

test('RSC16 GET /time needs no authentication: [ms] close to now', T, async () => {
  const before = Date.now();
  const res = await http(env.server, 'GET', '/time');
  const after = Date.now();
  assert.equal(res.status, 200, res.text);
  assert.ok(Array.isArray(res.body) && res.body.length === 1, res.text);
  assert.ok(res.body[0] >= before - 2000 && res.body[0] <= after + 2000, `time ${res.body[0]}`);
});

bothProtocols('RSA9d/RSA10k requestToken with queryTime: true uses the server time (a client clock 10 min off would get 40104)', T, async (t, binary) => {
  const c = clients(t);
  const Config = Ably.Rest.Platform.Config;
  const realNow = Config.now;
  const skew = -10 * 60 * 1000;
  try {
    Config.now = () => realNow.call(Config) + skew;
    // Without queryTime the TokenRequest timestamp is 10 minutes stale.
    const stale = c.rest(env.server, { key: k0().keyStr, binary });
    const r1 = await settle(stale.auth.requestToken());
    assert.equal(r1.ok, false, 'stale timestamp refused');
    assert.equal(r1.error.code, 40104, `code ${r1.error?.code} ${r1.error?.message}`);
    assert.equal(r1.error.statusCode, 401);
    // With queryTime the SDK asks GET /time and signs with the server's clock.
    const rest = c.rest(env.server, { key: k0().keyStr, binary });
    const td = await withTimeout(rest.auth.requestToken(null, { key: k0().keyStr, queryTime: true }), 5000, 'requestToken(queryTime)');
    assert.match(td.token, TOKEN_RE);
    assert.notEqual(rest.serverTimeOffset, null, 'GET /time was used');
    assert.ok(Math.abs(rest.serverTimeOffset + skew) < 5000, `offset ${rest.serverTimeOffset}`);
    assert.ok(Math.abs(td.issued - Date.now()) < 5000, 'issued by the server clock');
  } finally {
    Config.now = realNow;
  }
});
