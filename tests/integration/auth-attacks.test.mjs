// Attacks on token authentication (issue 3), over raw WebSockets and raw HTTP
// so the server's exact code is asserted (the SDK would renew or mask it):
// forged and malformed JWTs (alg none, HS384, RS256 with the secret, kid
// confusion, tampering, oversize, expiry and iat leeway), forged Ably tokens,
// TokenRequest replay/mac/timestamp/ttl/clientId/capability checks,
// capability escalation through tokens, clientId spoofing, user claim
// forgery (extras.userClaim is the server's, from ably.channel.* claims).
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import {
  useServer,
  clients,
  connected,
  collector,
  uniqueChannel,
  withTimeout,
  settle,
  sleep,
  http,
  createApp,
  ACTION,
  test,
} from './lib/server.mjs';
import {
  ablyJwt,
  handJwt,
  jwtClaims,
  flipChar,
  b64url,
  mintToken,
  signedTokenRequest,
  requestTokenRaw,
  bearer,
  bearerRaw,
  expectRestError,
  wsConnect,
  wsConnected,
  wsAttach,
  wsPublish,
  expectWsError,
} from './lib/auth.mjs';

const env = useServer({ label: 'auth-attacks' });
const key = (i) => env.app.keys[i];
const T = { timeout: 15_000 };

/**
 * Checks that `token` is refused with code/status on connect (raw ws, JSON
 * and msgpack) and over REST (base64 and raw Bearer). Returns the mismatches
 * (so a table of attacks reports every failing row at once).
 */
async function refusal(token, code, status, label) {
  const problems = [];
  const check = (what, got) => {
    if (got.code !== code || got.status !== status || got.action !== 'refused') {
      problems.push(`${label} [${what}]: expected ${code}/${status}, got ${got.action} ${got.code}/${got.status}`);
    }
  };
  for (const format of ['json', 'msgpack']) {
    const { frame } = await wsConnect(env.server, { access_token: token, format });
    check(`ws ${format}`, {
      action: frame.action === ACTION.ERROR && frame.channel === undefined ? 'refused' : `action ${frame.action}`,
      code: frame.error?.code,
      status: frame.error?.statusCode,
    });
  }
  const p = `/channels/${uniqueChannel('atk')}/messages`;
  for (const [what, authorization] of [['REST Bearer base64', bearer(token)], ['REST Bearer raw', bearerRaw(token)]]) {
    const r = await http(env.server, 'GET', p, { headers: { authorization } });
    check(what, {
      action: r.status >= 400 ? 'refused' : `HTTP ${r.status}`,
      code: r.body?.error?.code === Number(r.headers.get('x-ably-errorcode')) ? r.body?.error?.code : `${r.body?.error?.code} (header ${r.headers.get('x-ably-errorcode')})`,
      status: r.status === r.body?.error?.statusCode ? r.status : `${r.status} (body ${r.body?.error?.statusCode})`,
    });
  }
  return problems;
}

/** Runs refusal() over [label, token, code, status] rows and asserts no mismatch. */
async function expectAllRefused(rows) {
  const problems = [];
  for (const [label, token, code, status] of rows) problems.push(...(await refusal(token, code, status, label)));
  assert.deepEqual(problems, []);
}

const hdr = (k, extra = {}) => ({ alg: 'HS256', typ: 'JWT', kid: k.keyName, ...extra });

test('RSA3/TN3 forged JWTs are refused with 40144/401: alg none, HS384, HS512, RS256 signed with the secret (HS/RS confusion), lower-case alg, tampered header/payload/signature, missing kid/iat/exp, exp <= iat', T, async () => {
  const k = key(0);
  const claims = jwtClaims({ clientId: 'victim' });
  const good = handJwt(hdr(k), claims, { secret: k.keySecret });
  // Sanity: the same construction with HS256 is accepted.
  assert.equal((await wsConnect(env.server, { access_token: good })).frame.action, ACTION.CONNECTED, 'hand-built HS256 JWT is valid');
  const [h, p, s] = good.split('.');
  const hs256 = (input) => crypto.createHmac('sha256', k.keySecret).update(input).digest('base64url');
  const cases = [
    ['alg none, empty signature', handJwt(hdr(k, { alg: 'none' }), claims, { sign: 'none' })],
    ['alg none, HS256 signature kept', handJwt(hdr(k, { alg: 'none' }), claims, { sign: hs256 })],
    ['HS384', handJwt(hdr(k, { alg: 'HS384' }), claims, { secret: k.keySecret, sign: 'HS384' })],
    ['HS512', handJwt(hdr(k, { alg: 'HS512' }), claims, { secret: k.keySecret, sign: 'HS512' })],
    ['RS256 header, HMAC-SHA256 with the secret', handJwt(hdr(k, { alg: 'RS256' }), claims, { sign: hs256 })],
    ['ES256 header, HMAC-SHA256 with the secret', handJwt(hdr(k, { alg: 'ES256' }), claims, { sign: hs256 })],
    ['alg hs256 (lower case)', handJwt(hdr(k, { alg: 'hs256' }), claims, { sign: hs256 })],
    ['typ changed after signing', `${b64url(JSON.stringify(hdr(k, { typ: 'JWS' })))}.${p}.${s}`],
    ['header field added after signing', `${b64url(JSON.stringify(hdr(k, { x: 1 })))}.${p}.${s}`],
    ['clientId changed after signing', `${h}.${b64url(JSON.stringify({ ...claims, 'x-ably-clientId': 'admin' }))}.${s}`],
    ['capability widened after signing', `${h}.${b64url(JSON.stringify({ ...claims, 'x-ably-capability': '{"[*]*":["*"]}' }))}.${s}`],
    ['exp extended after signing', `${h}.${b64url(JSON.stringify({ ...claims, exp: claims.exp + 86400 }))}.${s}`],
    ['signature tampered', `${h}.${p}.${flipChar(s, 5)}`],
    ['signature truncated', `${h}.${p}.${s.slice(0, -2)}`],
    ['signature of another secret', handJwt(hdr(k), claims, { secret: 'guessed-secret' })],
    ['missing kid', handJwt({ alg: 'HS256', typ: 'JWT' }, claims, { secret: k.keySecret })],
    ['missing iat', handJwt(hdr(k), { ...claims, iat: undefined }, { secret: k.keySecret })],
    ['missing exp', handJwt(hdr(k), { ...claims, exp: undefined }, { secret: k.keySecret })],
    // Both a little ahead (within the iat leeway), or expiry would be reported first.
    ['exp <= iat', handJwt(hdr(k), { ...claims, iat: claims.iat + 5, exp: claims.iat + 5 }, { secret: k.keySecret })],
    ['payload not JSON', handJwt(hdr(k), 'not json', { secret: k.keySecret })],
  ];
  await expectAllRefused(cases.map(([label, tok]) => [label, tok, 40144, 401]));
});

test('RSA3/TN3 signature stripped (header.payload) or a JWE-shaped token (5 segments) is a malformed JWT: 40144/401 (docs/jwt.md: wrong segment count)', T, async () => {
  const k = key(0);
  const good = handJwt(hdr(k), jwtClaims(), { secret: k.keySecret });
  const [h, p, s] = good.split('.');
  await expectAllRefused([
    ['signature segment stripped', `${h}.${p}`, 40144, 401],
    ['signature segment stripped, trailing dot kept', `${h}.${p}.`, 40144, 401],
    ['five segments (JWE shape)', `${h}.${p}.${s}.${s}.${s}`, 40144, 401],
  ]);
});

test('RSA3/TN3 kid confusion: a JWT signed with one key but naming another (also of another app) -> 40144; unknown kid or app -> 40400/404', T, async () => {
  const other = env.otherApp || (env.otherApp = await createApp(env.server, { keys: [{}] }));
  const a = key(0);
  const b = other.keys[0];
  const claims = jwtClaims();
  await expectAllRefused([
    ['kid of app A, signed with the key of app B', handJwt(hdr(a), claims, { secret: b.keySecret }), 40144, 401],
    ['kid of app B, signed with the key of app A', handJwt(hdr(b), claims, { secret: a.keySecret }), 40144, 401],
    ['kid of key 1, signed with key 0 of the same app', handJwt(hdr(key(1)), claims, { secret: a.keySecret }), 40144, 401],
    ['unknown key of a known app', handJwt(hdr({ keyName: `${env.app.appId}.nosuchkey` }), claims, { secret: a.keySecret }), 40400, 404],
    ['unknown app', handJwt(hdr({ keyName: 'nosuchapp.nosuchkey' }), claims, { secret: a.keySecret }), 40400, 404],
  ]);
  // Properly signed JWTs of each app work, each on its own app.
  for (const k of [a, b]) {
    const { frame } = await wsConnect(env.server, { access_token: ablyJwt(k) });
    assert.equal(frame.action, ACTION.CONNECTED, `valid JWT of ${k.keyName}`);
  }
});

test('RSA3/RSA4b1 oversize JWT (> 8 KiB) -> 40144; expired -> 40142, also seconds ago (no leeway on exp); iat beyond the 30 s leeway -> 40144, within it accepted', T, async () => {
  const k = key(0);
  const big = ablyJwt(k, { claims: { pad: 'x'.repeat(8 * 1024) } });
  assert.ok(big.length > 8192 && big.length < 12_000, `token length ${big.length}`);
  await expectAllRefused([
    ['oversize JWT', big, 40144, 401],
    ['expired 50 min ago', ablyJwt(k, { iatOffsetSec: -3600, ttlSec: 600 }), 40142, 401],
    ['expired 40 s ago (beyond the leeway)', ablyJwt(k, { iatOffsetSec: -100, ttlSec: 60 }), 40142, 401],
    // RSA4b1: expiry is judged by the server's clock; the leeway is for iat.
    ['expired 5 s ago', ablyJwt(k, { iatOffsetSec: -65, ttlSec: 60 }), 40142, 401],
    ['iat 90 s in the future', ablyJwt(k, { iatOffsetSec: 90 }), 40144, 401],
  ]);
  const near = ablyJwt(k, { iatOffsetSec: 10 });
  assert.equal((await wsConnect(env.server, { access_token: near })).frame.action, ACTION.CONNECTED, 'iat 10 s ahead is within the leeway');
});

test('RSA3/RSA4b forged Ably tokens: tampered -> 40143 or 40145, garbage sbt1 -> 40145, unknown string -> 40143 (all 401, token errors an SDK renews from)', T, async () => {
  const td = await mintToken(env.server, key(0), { clientId: 'tok-victim', capability: { 'a:*': ['subscribe'] } });
  const body = td.token.slice(5);
  const cases = [
    ['one character changed', `sbt1.${flipChar(body)}`, [40143, 40145]],
    ['last character changed', `sbt1.${flipChar(body, body.length - 3)}`, [40143, 40145]],
    ['truncated', `sbt1.${body.slice(0, -4)}`, [40143, 40145]],
    ['appended data', `sbt1.${body}AAAA`, [40143, 40145]],
    ['sbt1 garbage', 'sbt1.AAAA', [40145]],
    ['not a token', 'definitely-not-a-token', [40143]],
  ];
  for (const [label, tok, codes] of cases) {
    const { frame } = await wsConnect(env.server, { access_token: tok });
    assert.equal(frame.action, ACTION.ERROR, `${label}: ${JSON.stringify(frame)}`);
    assert.ok(codes.includes(frame.error.code), `${label}: code ${frame.error.code} in ${codes}`);
    assert.equal(frame.error.statusCode, 401, label);
    const r = await http(env.server, 'GET', '/channels/a:b/messages', { headers: { authorization: bearerRaw(tok) } });
    assert.equal(r.status, 401, `${label} REST: ${r.text}`);
    assert.ok(codes.includes(r.body.error.code), `${label} REST: code ${r.body.error.code}`);
  }
});

test('RSA9/TE requestToken attacks: replayed nonce 40105, bad mac 40101, stale/future timestamp 40104, ttl <= 0 / > 24 h / > 1 h revocable 40003, clientId "" 40012, malformed capability 40000, keyName mismatch 40101', T, async () => {
  const k = key(0);
  const k4 = key(4);
  const tr = signedTokenRequest(k, { ttl: 60_000 });
  const first = await requestTokenRaw(env.server, k.keyName, tr);
  assert.equal(first.status < 300, true, `first use: ${first.text}`);
  expectRestError(assert, await requestTokenRaw(env.server, k.keyName, tr), 40105, 401, 'the same TokenRequest again');
  const tampered = { ...signedTokenRequest(k, { ttl: 60_000 }), ttl: 86_400_000 };
  expectRestError(assert, await requestTokenRaw(env.server, k.keyName, tampered), 40101, 401, 'ttl changed after signing');
  const capTampered = { ...signedTokenRequest(k, { capability: { a: ['subscribe'] } }), capability: '{"a":["*"]}' };
  expectRestError(assert, await requestTokenRaw(env.server, k.keyName, capTampered), 40101, 401, 'capability changed after signing');
  const cidTampered = { ...signedTokenRequest(k, { clientId: 'user' }), clientId: 'admin' };
  expectRestError(assert, await requestTokenRaw(env.server, k.keyName, cidTampered), 40101, 401, 'clientId changed after signing');
  expectRestError(assert, await requestTokenRaw(env.server, k.keyName, signedTokenRequest(k, {}, { secret: 'wrong' })), 40101, 401, 'signed with a wrong secret');
  expectRestError(assert, await requestTokenRaw(env.server, k.keyName, signedTokenRequest(k, { timestamp: Date.now() - 180_000 })), 40104, 401, 'timestamp 3 min old');
  expectRestError(assert, await requestTokenRaw(env.server, k.keyName, signedTokenRequest(k, { timestamp: Date.now() + 180_000 })), 40104, 401, 'timestamp 3 min ahead');
  // (A ttl of 0 is no ttl: ably-js sends ttl: 0 but signs "ttl || ''".)
  for (const ttl of [-1, -1000, 86_400_001]) {
    expectRestError(assert, await requestTokenRaw(env.server, k.keyName, signedTokenRequest(k, { ttl })), 40003, 400, `ttl ${ttl}`);
  }
  expectRestError(assert, await requestTokenRaw(env.server, k4.keyName, signedTokenRequest(k4, { ttl: 3_600_001 })), 40003, 400, 'ttl > 1 h on a revocable key');
  assert.ok((await requestTokenRaw(env.server, k4.keyName, signedTokenRequest(k4, { ttl: 3_600_000 }))).status < 300, 'ttl 1 h on a revocable key is fine');
  expectRestError(assert, await requestTokenRaw(env.server, k.keyName, signedTokenRequest(k, { clientId: '' })), 40012, 400, 'clientId ""');
  for (const cap of ['{"a":["publish_"]}', '{"a":["*","publish"]}', '{"a":[]}', 'not json', '["a"]']) {
    expectRestError(assert, await requestTokenRaw(env.server, k.keyName, signedTokenRequest(k, { capability: cap })), 40000, 400, `capability ${cap}`);
  }
  // A TokenRequest of key 0 posted to key 1's path.
  expectRestError(assert, await requestTokenRaw(env.server, key(1).keyName, signedTokenRequest(k, {})), 40101, 401, 'keyName does not match the path');
});

test('RSA6/TK2b capability escalation through tokens: a key grants at most its own share; a key without access to X cannot mint a token for X (40160)', T, async (t) => {
  const c = clients(t);
  const k3 = key(3); // {"*":["subscribe"]}
  const td = await mintToken(env.server, k3, { capability: { '*': ['*'] } });
  assert.equal(td.capability, '{"*":["subscribe"]}', 'TokenRequest for everything gets only the key\'s share');
  for (const [label, token] of [['Ably token', td.token], ['JWT', ablyJwt(k3, { capability: { '[*]*': ['*'] } })]]) {
    const { sock } = await wsConnected(assert, env.server, { access_token: token });
    try {
      const name = uniqueChannel('esc');
      assert.equal((await wsAttach(sock, name)).action, ACTION.ATTACHED, `${label}: subscribe is allowed`);
      const nack = await wsPublish(sock, name, 0, [{ name: 'm', data: 'x' }]);
      assert.equal(nack.action, ACTION.NACK, `${label}: publish beyond the key`);
      assert.equal(nack.error.code, 40160);
    } finally {
      sock.close();
    }
    const rest = await http(env.server, 'POST', `/channels/${uniqueChannel('esc')}/messages`, { headers: { authorization: bearer(token) }, body: { name: 'm', data: 'x' } });
    expectRestError(assert, rest, 40160, 401, `${label}: REST publish beyond the key`);
  }
  // Key 1 has no access to "other": no token can be minted for it...
  const k1 = key(1);
  expectRestError(assert, await requestTokenRaw(env.server, k1.keyName, signedTokenRequest(k1, { capability: { other: ['*'] } })), 40160, 401, 'TokenRequest for a channel outside the key');
  expectRestError(assert, await requestTokenRaw(env.server, k1.keyName, signedTokenRequest(k1, { capability: { 'cansubscribe:x': ['publish'] } })), 40160, 401, 'TokenRequest for an op outside the key');
  // ...and a JWT claiming it grants nothing: refused on connect.
  const { frame } = await wsConnect(env.server, { access_token: ablyJwt(k1, { capability: { other: ['*'] } }) });
  expectWsError(assert, frame, 40160, 401, 'JWT with an empty intersection');
  // Partial overlap: only the key's part survives.
  const part = await mintToken(env.server, key(2), { capability: { channel2: ['*'], channel9: ['*'] } });
  assert.equal(part.capability, '{"channel2":["publish","subscribe"]}');
  const sdk = await connected(c, env.server, { token: part.token, binary: true });
  const denied = await settle(sdk.channels.get('channel9').attach());
  assert.equal(denied.ok, false);
  assert.equal(denied.error.code, 40160);
});

test('RSA7/RSA15 clientId spoofing: an identified token client cannot publish as another clientId (NACK 40012, raw and REST), nor connect as one (40102)', T, async () => {
  const tok = ablyJwt(key(0), { clientId: 'honest' });
  const name = uniqueChannel('spoof');
  const { sock } = await wsConnected(assert, env.server, { access_token: tok });
  try {
    const nack = await wsPublish(sock, name, 0, [{ name: 'm', data: 'x', clientId: 'ceo' }]);
    assert.equal(nack.action, ACTION.NACK);
    assert.equal(nack.error.code, 40012);
    // A batch with one spoofed message is refused whole.
    const nack2 = await wsPublish(sock, name, 1, [{ name: 'm', data: 'ok' }, { name: 'm', data: 'x', clientId: 'ceo' }]);
    assert.equal(nack2.action, ACTION.NACK);
    assert.equal(nack2.error.code, 40012);
  } finally {
    sock.close();
  }
  const rest = await http(env.server, 'POST', `/channels/${name}/messages`, { headers: { authorization: bearer(tok) }, body: { name: 'm', data: 'x', clientId: 'ceo' } });
  expectRestError(assert, rest, 40012, 400, 'REST publish as another clientId');
  const hist = await http(env.server, 'GET', `/channels/${name}/messages`, { key: key(0).keyStr });
  assert.deepEqual(hist.body, [], 'nothing was published');
  expectWsError(assert, (await wsConnect(env.server, { access_token: tok, clientId: 'ceo' })).frame, 40102, 401, 'connect as another clientId');
});

test('RTP8j/RTP15f presence spoofing: an identified token client cannot enter presence as another clientId (NACK 40012); as itself it can', T, async () => {
  const { sock } = await wsConnected(assert, env.server, { access_token: ablyJwt(key(0), { clientId: 'honest' }) });
  try {
    const name = uniqueChannel('pspoof');
    assert.equal((await wsAttach(sock, name)).action, ACTION.ATTACHED);
    sock.send({ action: ACTION.PRESENCE, channel: name, msgSerial: 0, presence: [{ action: 2, clientId: 'ceo', data: 'x' }] });
    const r = await sock.next((f) => (f.action === ACTION.ACK || f.action === ACTION.NACK) && f.msgSerial === 0, 3000, 'presence ACK/NACK');
    assert.equal(r.action, ACTION.NACK);
    assert.equal(r.error.code, 40012);
    sock.send({ action: ACTION.PRESENCE, channel: name, msgSerial: 1, presence: [{ action: 2, data: 'me' }] });
    const ok = await sock.next((f) => (f.action === ACTION.ACK || f.action === ACTION.NACK) && f.msgSerial === 1, 3000, 'own presence ACK');
    assert.equal(ok.action, ACTION.ACK, 'entering as itself works');
  } finally {
    sock.close();
  }
});

test('user claims: ably.channel.* JWT claims are stamped into extras.userClaim (most specific wins); a client-set userClaim is removed or overwritten (realtime and REST)', T, async (t) => {
  const c = clients(t);
  const claims = { 'ably.channel.claims:*': 'member', 'ably.channel.claims:vip': 'vip-guest', 'ably.channel.*': 'anyone' };
  const tok = ablyJwt(key(0), { clientId: 'claimer', claims });
  const plainTok = ablyJwt(key(0), { clientId: 'noclaims' });
  const watcher = await connected(c, env.server, { key: key(0).keyStr, binary: true });
  const room = `claims:${uniqueChannel('room')}`;
  const cases = [
    // [channel, token, expected userClaim]
    [room, tok, 'member'],
    ['claims:vip', tok, 'vip-guest'],
    [uniqueChannel('elsewhere'), tok, 'anyone'],
    [`claims:${uniqueChannel('noclaims')}`, plainTok, undefined],
  ];
  const cols = new Map();
  for (const [channel] of cases) {
    const col = collector(watcher.channels.get(channel));
    await withTimeout(col.subscribed, 5000, 'attach');
    cols.set(channel, col);
  }
  for (const [channel, token] of cases) {
    const { sock } = await wsConnected(assert, env.server, { access_token: token });
    try {
      const ack = await wsPublish(sock, channel, 0, [{ name: 'forged', data: 'x', extras: { userClaim: 'admin', headers: { h: 'v' } } }]);
      assert.equal(ack.action, ACTION.ACK, `${channel}: ${JSON.stringify(ack)}`);
      const ack2 = await wsPublish(sock, channel, 1, [{ name: 'plain', data: 'y' }]);
      assert.equal(ack2.action, ACTION.ACK);
    } finally {
      sock.close();
    }
    const rest = await http(env.server, 'POST', `/channels/${encodeURIComponent(channel)}/messages`, {
      headers: { authorization: bearer(token) },
      body: { name: 'rest-forged', data: 'z', extras: { userClaim: 'admin' } },
    });
    assert.equal(rest.status, 201, rest.text);
  }
  // An API-key client cannot set it either.
  const keyClient = await connected(c, env.server, { key: key(0).keyStr, binary: false });
  await keyClient.channels.get(room).publish({ name: 'key-forged', data: 'k', extras: { userClaim: 'admin' } });
  for (const [channel, , expected] of cases) {
    const col = cols.get(channel);
    const n = channel === room ? 4 : 3;
    await col.until(n, 5000);
    await sleep(100);
    for (const m of col.messages) {
      const want = m.name === 'key-forged' ? undefined : expected;
      assert.equal(m.extras?.userClaim, want, `${channel} ${m.name}: userClaim ${JSON.stringify(m.extras)}`);
    }
    const forged = col.messages.find((m) => m.name === 'forged');
    assert.deepEqual(forged.extras.headers, { h: 'v' }, `${channel}: other extras kept`);
  }
  // History keeps the server's claim, not the forged one.
  const hist = await http(env.server, 'GET', `/channels/${encodeURIComponent(room)}/messages?direction=forwards`, { key: key(0).keyStr });
  assert.deepEqual(hist.body.map((m) => [m.name, m.extras?.userClaim]), [
    ['forged', 'member'],
    ['plain', 'member'],
    ['rest-forged', 'member'],
    ['key-forged', undefined],
  ]);
});
