// Auth configuration (`--config`, issue 3): {"auth":{"cookie":"NAME"}} lets a
// browser session cookie carry the token (raw WebSocket and REST), and
// {"auth":{"basicOverHttp":"deny"}} refuses Basic auth over plain HTTP with
// 40103/401 (RSA1/RSC18: Ably refuses Basic auth without TLS), while token
// auth keeps working (RSA3a) and signed TokenRequests need no Basic auth.
import assert from 'node:assert/strict';
import {
  useServer,
  clients,
  connected,
  uniqueChannel,
  settle,
  http,
  ACTION,
  test,
} from './lib/server.mjs';
import {
  ablyJwt,
  mintToken,
  signedTokenRequest,
  requestTokenRaw,
  bearer,
  basicAuth,
  expectRestError,
  wsConnect,
  expectWsError,
  writeConfig,
} from './lib/auth.mjs';

const COOKIE = 'sb_session';
const cfg = writeConfig({ auth: { cookie: COOKIE, basicOverHttp: 'deny' } });
const env = useServer({ label: 'auth-config', extraArgs: ['--config', cfg.file] });
process.on('exit', () => cfg.cleanup());
const key = (i) => env.app.keys[i];
const T = { timeout: 15_000 };

const cookieHeader = (token, name = COOKIE) => ({ cookie: `theme=dark; ${name}=${encodeURIComponent(token)}; other=1` });

test('cookie auth: a raw WebSocket with the configured cookie holding an Ably token or a JWT gets CONNECTED with its clientId', T, async () => {
  const td = await mintToken(env.server, key(0), { clientId: 'cookie-user' });
  for (const [label, token, cid] of [
    ['Ably token', td.token, 'cookie-user'],
    ['JWT', ablyJwt(key(0), { clientId: 'cookie-jwt' }), 'cookie-jwt'],
  ]) {
    const { frame } = await wsConnect(env.server, {}, { headers: cookieHeader(token) });
    assert.equal(frame.action, ACTION.CONNECTED, `${label}: ${JSON.stringify(frame)}`);
    assert.equal(frame.connectionDetails.clientId, cid, `${label}: clientId from the cookie token`);
  }
  // Another cookie name carries nothing; a forged or expired token is refused like any other.
  expectWsError(assert, (await wsConnect(env.server, {}, { headers: cookieHeader(td.token, 'not_the_cookie') })).frame, 40101, 401, 'cookie with another name');
  expectWsError(assert, (await wsConnect(env.server, {}, { headers: cookieHeader(ablyJwt(key(0), { secret: 'forged' })) })).frame, 40144, 401, 'forged JWT in the cookie');
  expectWsError(assert, (await wsConnect(env.server, {}, { headers: cookieHeader(ablyJwt(key(0), { iatOffsetSec: -7200, ttlSec: 60 })) })).frame, 40142, 401, 'expired JWT in the cookie');
});

test('cookie auth over REST: history and publish with the cookie token; the token capability applies (40160)', T, async () => {
  const name = `ck:${uniqueChannel('c')}`;
  const token = ablyJwt(key(0), { clientId: 'cookie-rest', capability: { 'ck:*': ['publish', 'history'] } });
  const pub = await http(env.server, 'POST', `/channels/${encodeURIComponent(name)}/messages`, { headers: cookieHeader(token), body: { name: 'm', data: 'via-cookie' } });
  assert.equal(pub.status, 201, pub.text);
  const hist = await http(env.server, 'GET', `/channels/${encodeURIComponent(name)}/messages`, { headers: cookieHeader(token) });
  assert.equal(hist.status, 200, hist.text);
  assert.deepEqual(hist.body.map((m) => [m.data, m.clientId]), [['via-cookie', 'cookie-rest']]);
  expectRestError(assert, await http(env.server, 'GET', `/channels/${uniqueChannel('nock')}/messages`, { headers: cookieHeader(token) }), 40160, 401, 'cookie token outside its capability');
  expectRestError(assert, await http(env.server, 'GET', `/channels/${encodeURIComponent(name)}/messages`, { headers: cookieHeader(token, 'other_cookie') }), 40101, 401, 'no credentials');
});

test('malformed token cookie (bad percent-encoding): the same 40005/400 on the WebSocket and on REST', T, async () => {
  // errors.json 40005 invalid_credential: "a key or token ... could not be
  // read because it was not in the expected form". A fresh token from the
  // SDK cannot fix a cookie, so a non-token code (the SDK gives up) is right.
  const malformed = { cookie: `theme=dark; ${COOKIE}=sbt1.%zz; other=1` };
  expectWsError(assert, (await wsConnect(env.server, {}, { headers: malformed })).frame, 40005, 400, 'ws malformed cookie');
  const p = `/channels/${uniqueChannel('ckbad')}/messages`;
  expectRestError(assert, await http(env.server, 'GET', p, { headers: malformed }), 40005, 400, 'REST malformed cookie');
});

test('RSA1/RSC18 basicOverHttp "deny": Basic auth over plain HTTP -> 40103/401 on REST (Authorization and ?key=) and on the WebSocket (key=)', T, async () => {
  const k = key(0);
  const p = `/channels/${uniqueChannel('basic')}/messages`;
  expectRestError(assert, await http(env.server, 'GET', p, { headers: { authorization: basicAuth(k.keyStr) } }), 40103, 401, 'REST Basic');
  expectRestError(assert, await http(env.server, 'GET', `${p}?key=${encodeURIComponent(k.keyStr)}`), 40103, 401, 'REST ?key=');
  expectRestError(assert, await http(env.server, 'POST', p, { headers: { authorization: basicAuth(k.keyStr) }, body: { name: 'm', data: 'x' } }), 40103, 401, 'REST Basic publish');
  for (const format of ['json', 'msgpack']) {
    expectWsError(assert, (await wsConnect(env.server, { key: k.keyStr, format })).frame, 40103, 401, `ws key= [${format}]`);
  }
  // Unsigned token params need Basic auth, so they are refused as well.
  expectRestError(assert, await requestTokenRaw(env.server, k.keyName, { ttl: 60_000 }, { key: k.keyStr }), 40103, 401, 'requestToken with Basic');
});

test('RSA3a basicOverHttp "deny": token auth still works (signed TokenRequest, JWT) for REST and realtime; ably-js with a key gets 40103', T, async (t) => {
  const c = clients(t);
  const k = key(0);
  const tr = await requestTokenRaw(env.server, k.keyName, signedTokenRequest(k, { clientId: 'tok-user' }));
  assert.ok(tr.status < 300, `signed TokenRequest needs no Basic auth: ${tr.text}`);
  const name = uniqueChannel('tok');
  for (const token of [tr.body.token, ablyJwt(k)]) {
    const r = await http(env.server, 'GET', `/channels/${name}/messages`, { headers: { authorization: bearer(token) } });
    assert.equal(r.status, 200, r.text);
    const { frame } = await wsConnect(env.server, { access_token: token });
    assert.equal(frame.action, ACTION.CONNECTED, JSON.stringify(frame));
  }
  // The SDK with an API key creates TokenRequests itself when asked for token auth...
  const viaKey = await connected(c, env.server, { key: k.keyStr, useTokenAuth: true, binary: true });
  assert.match(viaKey.auth.tokenDetails.token, /^sbt1\./);
  // ...but Basic auth is refused.
  const rest = c.rest(env.server, { key: k.keyStr, binary: false });
  const r = await settle(rest.channels.get(name).history());
  assert.equal(r.ok, false);
  assert.equal(r.error.code, 40103);
  assert.equal(r.error.statusCode, 401);
});
