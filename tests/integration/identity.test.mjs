// Identity providers (issue 16 items 1-3): an app's identityProviders let
// a browser connect with its identity provider's own JWT (Clerk, Auth0,
// Keycloak, ...) through authCallback, with no backend that mints Ably
// tokens. The provider here is the test itself: `jose` signs RS256, ES256
// and EdDSA tokens; its JWK Sets are served over HTTPS on loopback with a
// throwaway CA made by the openssl CLI (the server trusts it through the
// provider's caFile), from a file (jwksFile) and inline (jwks).
//
// Every refusal is checked with its exact code (docs/identity.md), through
// REST (Authorization: Bearer) where that is enough, through raw WebSockets
// or the real SDK otherwise.

import { execFile, execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import https from 'node:https';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { SignJWT, generateKeyPair, exportJWK, exportSPKI } from 'jose';
import { before, after } from 'node:test';
import {
  test,
  assert,
  startServer,
  makeTempDir,
  http,
  clients,
  waitForConnectionState,
  collector,
  waitUntil,
  withTimeout,
  sleep,
  fmtErr,
} from './lib/server.mjs';
import { expectRestError, bearerRaw, wsConnect, expectWsError, revokeRaw } from './lib/auth.mjs';
import { ACTION, SERVER_BIN } from './lib/server.mjs';

const AUD = 'my-app';
const nowS = () => Math.floor(Date.now() / 1000);

// ---------------------------------------------------------------------------
// The provider: keys, tokens, an HTTPS JWKS server with a throwaway CA
// ---------------------------------------------------------------------------

async function keypair(alg, kid) {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { alg, kid, publicKey, privateKey, jwk };
}

const jwks = (...kps) => ({ keys: kps.map((k) => k.jwk) });

/** A provider token signed by kp. */
async function idToken(kp, { iss, aud = AUD, sub = 'alice', ttl = 600, claims = {}, header = {}, iat, exp, nbf } = {}) {
  const t = nowS();
  const s = new SignJWT({ sub, ...claims }).setProtectedHeader({ alg: kp.alg, kid: kp.kid, typ: 'JWT', ...header });
  if (iss !== null) s.setIssuer(iss);
  if (aud !== null) s.setAudience(aud);
  s.setIssuedAt(iat ?? t);
  s.setExpirationTime(exp ?? t + ttl);
  if (nbf !== undefined) s.setNotBefore(nbf);
  return s.sign(kp.privateKey);
}

const b64u = (x) => Buffer.from(typeof x === 'string' ? x : JSON.stringify(x)).toString('base64url');

/** A token built by hand: header and claims objects, HMAC-SHA256 over secret (or no signature). */
function handToken(header, claims, secret) {
  const input = `${b64u(header)}.${b64u(claims)}`;
  const sig = secret === undefined ? '' : crypto.createHmac('sha256', secret).update(input).digest('base64url');
  return `${input}.${sig}`;
}

/** A throwaway CA and a server certificate for 127.0.0.1, made with the openssl CLI. */
function makeCa(dir) {
  const o = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  o('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out',
    'ca.pem', '-days', '2', '-subj', '/CN=switchboard identity test CA');
  o('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'srv.key', '-out', 'srv.csr',
    '-subj', '/CN=127.0.0.1');
  writeFileSync(path.join(dir, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1\n');
  o('x509', '-req', '-in', 'srv.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'srv.pem',
    '-days', '2', '-extfile', 'ext.cnf');
  return { ca: path.join(dir, 'ca.pem'), key: readFileSync(path.join(dir, 'srv.key')), cert: readFileSync(path.join(dir, 'srv.pem')) };
}

/** An HTTPS server for JWK Sets: per-path bodies, modes and request counts. */
class JwksServer {
  constructor(tls) {
    this.tls = tls;
    this.routes = new Map(); // path -> {body, status, headers, mode}
    this.hits = new Map();
  }
  set(p, body, { status = 200, headers = {}, mode = 'ok' } = {}) {
    this.routes.set(p, { body: typeof body === 'string' ? body : JSON.stringify(body), status, headers, mode });
  }
  count(p) {
    return this.hits.get(p) || 0;
  }
  url(p) {
    return `https://127.0.0.1:${this.port}${p}`;
  }
  async start() {
    this.srv = https.createServer({ key: this.tls.key, cert: this.tls.cert }, (req, res) => {
      const p = req.url.split('?')[0];
      this.hits.set(p, (this.hits.get(p) || 0) + 1);
      const r = this.routes.get(p);
      if (!r) return res.writeHead(404).end();
      if (r.mode === 'down') return req.socket.destroy();
      res.writeHead(r.status, { 'content-type': 'application/json', ...r.headers }).end(r.body);
    });
    await new Promise((resolve) => this.srv.listen(0, '127.0.0.1', resolve));
    this.port = this.srv.address().port;
    return this;
  }
  async stop() {
    this.srv.closeAllConnections?.();
    await new Promise((resolve) => this.srv.close(resolve));
  }
}

// ---------------------------------------------------------------------------
// One server with one app and a provider per scenario
// ---------------------------------------------------------------------------

const K = {}; // provider keys
const ISS = {
  file: 'https://file.idp.test',
  https: 'https://es.idp.test',
  inline: 'https://ed.idp.test',
  rotate: 'https://rotate.idp.test',
  down: 'https://down.idp.test',
  flood: 'https://flood.idp.test',
  big: 'https://big.idp.test',
  a: 'https://a.idp.test',
  b: 'https://b.idp.test',
  rev: 'https://rev.idp.test',
};
const CAP = {
  'conversations:{sub}:*': ['publish', 'subscribe', 'history', 'presence'],
  'org:{org_id}:*': ['subscribe'],
};
let env, jwksSrv, tmp, cfgFile;

before(async () => {
  tmp = makeTempDir('switchboard-identity-');
  const tls = makeCa(tmp.dir);
  for (const [name, alg] of [
    ['file', 'RS256'], ['https', 'ES256'], ['inline', 'EdDSA'], ['rotateOld', 'ES256'], ['rotateNew', 'ES256'],
    ['down', 'RS256'], ['flood', 'ES256'], ['big', 'ES256'], ['a', 'ES256'], ['b', 'ES256'], ['rev', 'EdDSA'],
    ['disc', 'RS256'],
  ])
    K[name] = await keypair(alg, `${name}-1`);
  jwksSrv = await new JwksServer(tls).start();
  jwksSrv.set('/es/jwks.json', jwks(K.https), { headers: { 'cache-control': 'public, max-age=300' } });
  jwksSrv.set('/rotate/jwks.json', jwks(K.rotateOld));
  jwksSrv.set('/down/jwks.json', jwks(K.down));
  jwksSrv.set('/flood/jwks.json', jwks(K.flood));
  const filler = { kty: 'oct', kid: 'x'.repeat(200), k: 'A'.repeat(8000) };
  jwksSrv.set('/big/jwks.json', { keys: [K.big.jwk, filler] });
  jwksSrv.set('/a/jwks.json', jwks(K.a));
  jwksSrv.set('/b/jwks.json', jwks(K.b));
  jwksSrv.set('/disc/jwks.json', jwks(K.disc));
  ISS.disc = jwksSrv.url('/disc');
  jwksSrv.set('/disc/.well-known/openid-configuration', { issuer: ISS.disc, jwks_uri: jwksSrv.url('/disc/jwks.json') });
  const jwksFile = path.join(tmp.dir, 'file-jwks.json');
  writeFileSync(jwksFile, JSON.stringify(jwks(K.file)));
  const common = { audience: AUD, clientId: '{sub}' };
  const remote = (p, extra = {}) => ({ jwksUri: jwksSrv.url(p), caFile: tls.ca, ...extra });
  const config = {
    auth: { cookie: 'sbtok' },
    apps: [
      {
        id: 'idp',
        keys: [
          { id: 'k1', secret: 'k1-secret-0123456789', capability: { '*': ['*'] } },
          { id: 'rev', secret: 'rev-secret-0123456789', capability: { '*': ['*'] }, revocableTokens: true },
          { id: 'narrow', secret: 'narrow-secret-0123456789', capability: { 'conversations:*': ['subscribe'] } },
        ],
        identityProviders: [
          { id: 'file', issuer: ISS.file, jwksFile, algorithms: ['RS256'], capability: CAP, workspace: '{sub}', ...common },
          { id: 'https', issuer: ISS.https, ...remote('/es/jwks.json'), algorithms: ['ES256'], capability: CAP, ...common },
          { id: 'inline', issuer: ISS.inline, jwks: jwks(K.inline), algorithms: ['EdDSA'], capability: { 'conversations:{sub}:*': ['*'] }, ...common },
          { id: 'rotate', issuer: ISS.rotate, ...remote('/rotate/jwks.json', { refreshMinSeconds: 1, refreshMaxSeconds: 1 }), algorithms: ['ES256'], capability: { 'conversations:{sub}:*': ['*'] }, ...common },
          { id: 'down', issuer: ISS.down, ...remote('/down/jwks.json', { refreshMinSeconds: 1, refreshMaxSeconds: 1, maxStaleSeconds: 600, fetchTimeoutSeconds: 2 }), algorithms: ['RS256'], capability: { 'conversations:{sub}:*': ['*'] }, ...common },
          { id: 'flood', issuer: ISS.flood, ...remote('/flood/jwks.json', { refreshMinSeconds: 60, refreshMaxSeconds: 600 }), algorithms: ['ES256'], capability: { 'conversations:{sub}:*': ['*'] }, ...common },
          { id: 'big', issuer: ISS.big, ...remote('/big/jwks.json', { maxJwksBytes: 4096, refreshMinSeconds: 60 }), algorithms: ['ES256'], capability: { 'conversations:{sub}:*': ['*'] }, ...common },
          { id: 'a', issuer: ISS.a, ...remote('/a/jwks.json', { refreshMinSeconds: 60 }), algorithms: ['ES256'], capability: { 'conversations:{sub}:*': ['*'] }, ...common },
          { id: 'b', issuer: ISS.b, ...remote('/b/jwks.json', { refreshMinSeconds: 60 }), algorithms: ['ES256'], capability: { 'conversations:{sub}:*': ['*'] }, ...common },
          { id: 'disc', issuer: ISS.disc, discovery: true, caFile: tls.ca, algorithms: ['RS256'], capability: { 'conversations:{sub}:*': ['*'] }, ...common },
          { id: 'rev', issuer: ISS.rev, jwks: jwks(K.rev), algorithms: ['EdDSA'], key: 'rev', ...common },
          { id: 'narrow', issuer: 'https://narrow.idp.test', jwks: jwks(K.inline), algorithms: ['EdDSA'], key: 'narrow', capability: { 'conversations:{sub}:*': ['publish', 'subscribe'] }, ...common },
        ],
      },
    ],
  };
  cfgFile = path.join(tmp.dir, 'config.json');
  writeFileSync(cfgFile, JSON.stringify(config));
  env = { server: await startServer({ extraArgs: ['--config', cfgFile], label: 'identity' }) };
  // Remote keys load in the background after start-up: wait until each
  // remote provider answers a good token.
  for (const [k, iss] of [['https', ISS.https], ['rotateOld', ISS.rotate], ['down', ISS.down], ['flood', ISS.flood], ['a', ISS.a], ['b', ISS.b], ['disc', ISS.disc]]) {
    const tok = await idToken(K[k], { iss, claims: { org_id: 'o' } });
    await waitUntil(async () => (await restGet(tok)).status === 200, 10_000, `keys of ${iss}`);
  }
});

after(async () => {
  await env?.server?.stop();
  await jwksSrv?.stop();
  tmp?.cleanup();
});

/** GET history of the token's own channel with Authorization: Bearer <jwt>. */
function restGet(token, channel = 'conversations:alice:x') {
  return http(env.server, 'GET', `/channels/${encodeURIComponent(channel)}/messages`, {
    headers: { authorization: bearerRaw(token) },
  });
}

async function expectRefused(token, code, status, what) {
  const res = await restGet(token);
  expectRestError(assert, res, code, status, what);
  return res;
}

/** A Realtime client whose authCallback returns the provider's JWT (no backend). */
function providerClient(set, mint, extra = {}) {
  const calls = { n: 0 };
  const client = set.realtime(env.server, {
    authCallback: async (_params, cb) => {
      calls.n++;
      try {
        cb(null, await mint());
      } catch (e) {
        cb(e, null);
      }
    },
    ...extra,
  });
  client.calls = calls;
  return client;
}

// ---------------------------------------------------------------------------
// Item 2: where a provider token works
// ---------------------------------------------------------------------------

for (const [name, kp, iss] of [
  ['RS256 from a jwksFile', 'file', 'file'],
  ['ES256 from a jwksUri over HTTPS with a private CA', 'https', 'https'],
  ['EdDSA from an inline jwks', 'inline', 'inline'],
  ['RS256 found through OIDC discovery', 'disc', 'disc'],
]) {
  test(`RSA8/RTN2: the SDK connects with a provider token (${name}) through authCallback, publishes and receives as its sub`, { timeout: 20_000 }, async (t) => {
    const set = clients(t);
    const mint = () => idToken(K[kp], { iss: ISS[iss], sub: 'alice', claims: { org_id: 'org-1' } });
    const client = providerClient(set, mint);
    await waitForConnectionState(client, 'connected');
    assert.equal(client.auth.clientId, 'alice');
    const ch = client.channels.get('conversations:alice:chat');
    const got = collector(ch);
    await got.subscribed;
    await ch.publish('greeting', 'hello');
    const [m] = await got.until(1);
    assert.equal(m.clientId, 'alice');
    assert.equal(m.data, 'hello');
  });
}

test('RSA4/RSC1: REST with a provider token: Authorization: Bearer (raw and base64) and an SDK Rest client with authCallback', async () => {
  const tok = await idToken(K.https, { iss: ISS.https, claims: { org_id: 'o' } });
  const raw = await restGet(tok);
  assert.equal(raw.status, 200, raw.text);
  const b64 = await http(env.server, 'GET', '/channels/conversations%3Aalice%3Ax/messages', {
    headers: { authorization: `Bearer ${Buffer.from(tok).toString('base64')}` },
  });
  assert.equal(b64.status, 200, b64.text);
  const set = clients({ after() {} });
  const rest = set.rest(env.server, { authCallback: (_p, cb) => cb(null, tok) });
  await rest.channels.get('conversations:alice:rest').publish('m', 'one');
  const page = await rest.channels.get('conversations:alice:rest').history();
  assert.equal(page.items.length, 1);
  assert.equal(page.items[0].clientId, 'alice');
  // Outside the template's channels: 40160.
  const other = await http(env.server, 'GET', '/channels/conversations%3Abob%3Ax/messages', {
    headers: { authorization: bearerRaw(tok) },
  });
  expectRestError(assert, other, 40160, 401, 'bob channel with alice token');
});

test('RTN2e: a provider token as access_token on a raw WebSocket: CONNECTED with the sub as clientId', async () => {
  const tok = await idToken(K.inline, { iss: ISS.inline, sub: 'carol' });
  const { frame } = await wsConnect(env.server, { access_token: tok });
  assert.equal(frame.action, ACTION.CONNECTED, JSON.stringify(frame));
  assert.equal(frame.connectionDetails.clientId, 'carol');
});

test('a provider token in the session cookie (auth.cookie) connects a WebSocket', async () => {
  const tok = await idToken(K.inline, { iss: ISS.inline, sub: 'cookie-user' });
  const { frame } = await wsConnect(env.server, {}, { headers: { cookie: `other=1; sbtok=${tok}` } });
  assert.equal(frame.action, ACTION.CONNECTED, JSON.stringify(frame));
  assert.equal(frame.connectionDetails.clientId, 'cookie-user');
});

test('capability templates keep two users apart: each gets only conversations:{sub}:*, the other\'s channels fail with 40160', { timeout: 20_000 }, async (t) => {
  const set = clients(t);
  const alice = providerClient(set, () => idToken(K.file, { iss: ISS.file, sub: 'alice', claims: { org_id: 'acme' } }));
  const bob = providerClient(set, () => idToken(K.file, { iss: ISS.file, sub: 'bob', claims: { org_id: 'acme' } }));
  await waitForConnectionState(alice, 'connected');
  await waitForConnectionState(bob, 'connected');
  const mine = alice.channels.get('conversations:alice:1');
  await mine.attach();
  const theirs = alice.channels.get('conversations:bob:1');
  const err = await theirs.attach().then(() => null, (e) => e);
  assert.equal(err?.code, 40160, `alice attaching bob's channel: ${fmtErr(err)}`);
  const bobs = bob.channels.get('conversations:bob:1');
  await bobs.attach();
  // The org template gives both subscribe on org:acme:*, and only that.
  const org = alice.channels.get('org:acme:news');
  await org.attach();
  const perr = await org.publish('x', 'one').then(() => null, (e) => e);
  assert.equal(perr?.code, 40160, `publish on a subscribe-only org channel: ${fmtErr(perr)}`);
  const otherOrg = bob.channels.get('org:other:news');
  const oerr = await otherOrg.attach().then(() => null, (e) => e);
  assert.equal(oerr?.code, 40160, `another org: ${fmtErr(oerr)}`);
});

test('a provider with a key: the key bounds the capability (template ∩ key), and a template outside it is refused with 40160', async () => {
  const tok = await idToken(K.inline, { iss: 'https://narrow.idp.test', sub: 'dave' });
  const res = await restGet(tok, 'conversations:dave:x');
  expectRestError(assert, res, 40160, 401, 'history needs history, which the narrow key lacks');
  const { frame, sock } = await wsConnect(env.server, { access_token: tok }, { keep: true });
  try {
    assert.equal(frame.action, ACTION.CONNECTED);
  } finally {
    sock.close();
  }
});

test('RTC8/RSA4b: renewal across three short-lived provider tokens, server-requested AUTH, messages flowing and none lost', { timeout: 40_000 }, async (t) => {
  const set = clients(t);
  const mint = () => idToken(K.https, { iss: ISS.https, sub: 'renew', ttl: 3, claims: { org_id: 'o' } });
  const pub = providerClient(set, mint);
  const sub = providerClient(set, mint);
  await waitForConnectionState(pub, 'connected');
  await waitForConnectionState(sub, 'connected');
  const name = `conversations:renew:${Date.now()}`;
  const got = collector(sub.channels.get(name));
  await got.subscribed;
  const ch = pub.channels.get(name);
  const sent = [];
  const deadline = Date.now() + 11_000;
  let i = 0;
  while (Date.now() < deadline) {
    await ch.publish('n', String(i));
    sent.push(String(i++));
    await sleep(100);
  }
  await got.until(sent.length, 10_000);
  assert.deepEqual(got.messages.map((m) => m.data), sent);
  assert.ok(pub.calls.n >= 4, `publisher renewed at least three times (authCallback calls: ${pub.calls.n})`);
  assert.ok(sub.calls.n >= 4, `subscriber renewed at least three times (authCallback calls: ${sub.calls.n})`);
  assert.equal(pub.connection.state, 'connected');
});

test('RTC8: authorize() with a new provider token applies at once on the same connection', { timeout: 20_000 }, async (t) => {
  const set = clients(t);
  const client = providerClient(set, () => idToken(K.inline, { iss: ISS.inline, sub: 'erin' }));
  await waitForConnectionState(client, 'connected');
  const id = client.connection.id;
  const before = client.calls.n;
  await client.auth.authorize();
  assert.equal(client.calls.n, before + 1);
  assert.equal(client.connection.id, id);
  assert.equal(client.connection.state, 'connected');
});

test('RSA17: revoking a clientId through the provider\'s key disconnects it with 40141 and refuses its tokens issued before', { timeout: 20_000 }, async () => {
  const tok = await idToken(K.rev, { iss: ISS.rev, sub: 'mallory', ttl: 600 });
  const { frame, sock } = await wsConnect(env.server, { access_token: tok }, { keep: true });
  assert.equal(frame.action, ACTION.CONNECTED, JSON.stringify(frame));
  const res = await revokeRaw(env.server, 'idp.rev', { targets: ['clientId:mallory'] }, { key: 'idp.rev:rev-secret-0123456789' });
  assert.equal(res.status, 201, res.text);
  const f = await sock.next((x) => x.action === ACTION.DISCONNECTED || x.action === ACTION.ERROR, 3000, 'DISCONNECTED 40141');
  assert.equal(f.error?.code, 40141);
  sock.close();
  await expectRefused(tok, 40141, 401, 'revoked provider token');
  // A token issued after the revocation works again.
  await sleep(1100);
  const fresh = await idToken(K.rev, { iss: ISS.rev, sub: 'mallory', ttl: 600 });
  const ok = await restGet(fresh, 'conversations:mallory:x');
  assert.equal(ok.status, 200, ok.text);
});

test('a provider key with revocableTokens: tokens need iat and live at most 1 h (40003 beyond)', async () => {
  const long = await idToken(K.rev, { iss: ISS.rev, sub: 'x', ttl: 7200 });
  await expectRefused(long, 40003, 400, 'two-hour token of a revocable key');
});

test('ably.channel.* claims in a provider token become extras.userClaim', { timeout: 20_000 }, async (t) => {
  const set = clients(t);
  const client = providerClient(set, () =>
    idToken(K.inline, { iss: ISS.inline, sub: 'fred', claims: { 'ably.channel.conversations:fred:*': 'moderator' } }));
  await waitForConnectionState(client, 'connected');
  const ch = client.channels.get('conversations:fred:room');
  const got = collector(ch);
  await got.subscribed;
  await ch.publish('m', 'one');
  const [m] = await got.until(1);
  assert.equal(m.extras?.userClaim, 'moderator');
});

// ---------------------------------------------------------------------------
// Key rotation and outages at the provider
// ---------------------------------------------------------------------------

test('key rotation at the provider: a new kid is fetched on first sight; old tokens work until the old key leaves the JWKS', { timeout: 30_000 }, async (t) => {
  const oldTok = await idToken(K.rotateOld, { iss: ISS.rotate, sub: 'rot' });
  assert.equal((await restGet(oldTok, 'conversations:rot:x')).status, 200);
  // The provider publishes its next key and starts signing with it.
  jwksSrv.set('/rotate/jwks.json', jwks(K.rotateOld, K.rotateNew));
  const set = clients(t);
  const client = providerClient(set, () => idToken(K.rotateNew, { iss: ISS.rotate, sub: 'rot' }));
  await waitForConnectionState(client, 'connected', { timeoutMs: 15_000, failOn: ['failed'] });
  assert.equal((await restGet(oldTok, 'conversations:rot:x')).status, 200, 'old key still published: old token works');
  // The old key leaves the JWK Set: once the server refreshes (1 s here), old tokens fail.
  jwksSrv.set('/rotate/jwks.json', jwks(K.rotateNew));
  await waitUntil(async () => (await restGet(oldTok, 'conversations:rot:x')).status === 401, 10_000, 'old token refused');
  await expectRefused(oldTok, 40144, 401, 'token of a key no longer published');
  const newTok = await idToken(K.rotateNew, { iss: ISS.rotate, sub: 'rot' });
  assert.equal((await restGet(newTok, 'conversations:rot:x')).status, 200);
});

test('a provider that is down keeps its cached keys: tokens keep working while every refresh fails', { timeout: 30_000 }, async (t) => {
  const tok = await idToken(K.down, { iss: ISS.down, sub: 'dan' });
  assert.equal((await restGet(tok, 'conversations:dan:x')).status, 200);
  const before = jwksSrv.count('/down/jwks.json');
  jwksSrv.set('/down/jwks.json', '', { mode: 'down' });
  // Several refresh attempts fail (the server backs off from 1 s).
  await waitUntil(() => jwksSrv.count('/down/jwks.json') >= before + 2, 15_000, 'failing refreshes');
  const again = await idToken(K.down, { iss: ISS.down, sub: 'dan' });
  const res = await restGet(again, 'conversations:dan:x');
  assert.equal(res.status, 200, `cached keys still used: ${res.text}`);
  const set = clients(t);
  const client = providerClient(set, () => idToken(K.down, { iss: ISS.down, sub: 'dan' }));
  await waitForConnectionState(client, 'connected');
  jwksSrv.set('/down/jwks.json', jwks(K.down));
});

// ---------------------------------------------------------------------------
// Item 3: attacks, each refused with its code
// ---------------------------------------------------------------------------

test('RFC 8725: alg none is refused (40144), with or without a signature', async () => {
  const claims = { iss: ISS.https, aud: AUD, sub: 'alice', iat: nowS(), exp: nowS() + 600, org_id: 'o' };
  await expectRefused(handToken({ alg: 'none', kid: K.https.kid }, claims), 40144, 401, 'alg none');
  await expectRefused(handToken({ alg: 'none', kid: K.https.kid }, claims, 'x'), 40144, 401, 'alg none, signed');
  await expectRefused(handToken({ alg: 'none' }, claims), 40144, 401, 'alg none without kid');
});

test('RFC 8725 2.1: HS256 signed with the provider\'s public key (PEM, JWK and raw modulus) is refused (40144)', async () => {
  const claims = { iss: ISS.file, aud: AUD, sub: 'alice', iat: nowS(), exp: nowS() + 600, org_id: 'o' };
  const pem = await exportSPKI(K.file.publicKey);
  for (const secret of [pem, JSON.stringify(K.file.jwk), Buffer.from(K.file.jwk.n, 'base64url')]) {
    await expectRefused(handToken({ alg: 'HS256', kid: K.file.kid, typ: 'JWT' }, claims, secret), 40144, 401, 'HS256 with the public key');
  }
});

test('the Centrifugo case: a kid published by provider A on a token carrying provider B\'s issuer is refused (40144)', async () => {
  const good = await idToken(K.a, { iss: ISS.a, sub: 'alice' });
  assert.equal((await restGet(good)).status, 200);
  const forged = await idToken(K.a, { iss: ISS.b, sub: 'alice' });
  await expectRefused(forged, 40144, 401, 'A key, B issuer');
  // And with B's kid in the header but A's key signing.
  const forged2 = await idToken({ ...K.a, kid: K.b.kid }, { iss: ISS.b, sub: 'alice' });
  await expectRefused(forged2, 40144, 401, 'B kid, A signature');
});

test('jku and x5u headers are refused (40144) and the URLs they name are never contacted', async () => {
  const spy = await new JwksServer(jwksSrv.tls).start();
  try {
    spy.set('/evil.json', jwks(K.https));
    for (const header of [{ jku: spy.url('/evil.json') }, { x5u: spy.url('/evil.pem') }, { jwk: K.https.jwk }, { x5c: ['MIIB'] }]) {
      const tok = await idToken(K.https, { iss: ISS.https, header, claims: { org_id: 'o' } });
      await expectRefused(tok, 40144, 401, `header ${Object.keys(header)[0]}`);
    }
    await sleep(300);
    assert.equal(spy.count('/evil.json') + spy.count('/evil.pem'), 0, 'the server never fetched a URL from a token');
  } finally {
    await spy.stop();
  }
});

test('wrong issuer, wrong audience, missing audience, expired, nbf and iat in the future: refused with 40144 / 40142', async () => {
  const o = { claims: { org_id: 'o' } };
  await expectRefused(await idToken(K.https, { ...o, iss: 'https://evil.idp.test' }), 40144, 401, 'unknown issuer');
  await expectRefused(await idToken(K.https, { ...o, iss: `${ISS.https}/` }), 40144, 401, 'issuer with a trailing slash');
  await expectRefused(await idToken(K.https, { ...o, iss: ISS.https, aud: 'other-app' }), 40144, 401, 'wrong audience');
  await expectRefused(await idToken(K.https, { ...o, iss: ISS.https, aud: null }), 40144, 401, 'no audience');
  await expectRefused(await idToken(K.https, { ...o, iss: ISS.https, iat: nowS() - 700, exp: nowS() - 100 }), 40142, 401, 'expired');
  await expectRefused(await idToken(K.https, { ...o, iss: ISS.https, nbf: nowS() + 300 }), 40144, 401, 'nbf in the future');
  await expectRefused(await idToken(K.https, { ...o, iss: ISS.https, iat: nowS() + 300, exp: nowS() + 900 }), 40144, 401, 'iat in the future');
  await expectRefused(await idToken(K.https, { ...o, iss: ISS.https, ttl: 2 * 86400 }), 40003, 400, 'lifetime over 24 h');
});

test('an algorithm off the provider\'s allow-list is refused (40144): ES256 key, provider allows RS256 only', async () => {
  const es = await keypair('ES256', K.file.kid);
  await expectRefused(await idToken(es, { iss: ISS.file, claims: { org_id: 'o' } }), 40144, 401, 'ES256 at an RS256 provider');
});

test('template values cannot widen access: a sub of "*", "a:*" or "[x]" (or a missing claim) is refused with 40101 and fails the SDK', { timeout: 20_000 }, async (t) => {
  for (const sub of ['*', 'a:*', '[x]', 'a b', '']) {
    const tok = await idToken(K.file, { iss: ISS.file, sub, claims: { org_id: 'o' } });
    await expectRefused(tok, 40101, 401, `sub ${JSON.stringify(sub)}`);
  }
  await expectRefused(await idToken(K.file, { iss: ISS.file, sub: 'ok' }), 40101, 401, 'no org_id claim');
  await expectRefused(await idToken(K.file, { iss: ISS.file, sub: 'ok', claims: { org_id: 'x:*' } }), 40101, 401, 'org_id x:*');
  const set = clients(t);
  const client = providerClient(set, () => idToken(K.file, { iss: ISS.file, sub: 'a:*', claims: { org_id: 'o' } }));
  const sc = await withTimeout(new Promise((resolve) => client.connection.once('failed', resolve)), 8000, 'FAILED');
  assert.equal(sc.reason?.code, 40101, fmtErr(sc.reason));
});

test('unknown-kid floods cost at most one JWKS refetch per provider per refreshMinSeconds', { timeout: 20_000 }, async () => {
  const before = jwksSrv.count('/flood/jwks.json');
  const claims = { org_id: 'o' };
  for (let i = 0; i < 60; i++) {
    const fake = await keypair('ES256', `unknown-${i}`);
    await expectRefused(await idToken(fake, { iss: ISS.flood, claims }), 40144, 401, `unknown kid ${i}`);
  }
  await sleep(500);
  const fetched = jwksSrv.count('/flood/jwks.json') - before;
  assert.ok(fetched <= 1, `JWKS fetches caused by 60 unknown kids: ${fetched} (at most 1 per 60 s)`);
  // The real key still works.
  assert.equal((await restGet(await idToken(K.flood, { iss: ISS.flood }))).status, 200);
});

test('an oversized JWK Set is refused (maxJwksBytes): the provider has no keys and its tokens get 40140', async () => {
  assert.ok(jwksSrv.count('/big/jwks.json') >= 1, 'the server tried');
  await expectRefused(await idToken(K.big, { iss: ISS.big }), 40140, 401, 'keys not available');
});

// ---------------------------------------------------------------------------
// Item 1: configuration through POST /apps
// ---------------------------------------------------------------------------

test('POST /apps accepts identityProviders with inline keys; refuses jwksFile, http jwksUri, unknown fields, an overlapping issuer (40000)', async () => {
  const post = (body) => http(env.server, 'POST', '/apps', { body });
  const inline = { id: 'p', issuer: 'https://posted.idp.test', audience: AUD, jwks: jwks(K.inline), algorithms: ['EdDSA'], clientId: '{sub}', capability: { 'c:{sub}': ['subscribe'] } };
  const ok = await post({ keys: [{}], identityProviders: [inline] });
  assert.equal(ok.status, 201, ok.text);
  assert.equal(ok.body.identityProviders?.[0]?.id, 'p');
  const tok = await idToken(K.inline, { iss: 'https://posted.idp.test', sub: 'zoe' });
  const { frame } = await wsConnect(env.server, { access_token: tok });
  assert.equal(frame.action, ACTION.CONNECTED, JSON.stringify(frame));
  const refusals = [
    [{ ...inline, issuer: 'https://posted.idp.test' }, 'same issuer and audience as an existing provider'],
    [{ ...inline, issuer: ISS.https }, 'issuer of a config-file provider'],
    [{ ...inline, issuer: 'https://x1.idp.test', jwks: undefined, jwksFile: '/etc/passwd' }, 'jwksFile over the admin API'],
    [{ ...inline, issuer: 'https://x2.idp.test', jwks: undefined, jwksUri: 'http://example.com/jwks.json' }, 'http jwksUri off loopback'],
    [{ ...inline, issuer: 'https://x3.idp.test', audiance: 'typo' }, 'unknown field'],
    [{ ...inline, issuer: 'https://x4.idp.test', algorithms: ['none'] }, 'alg none'],
    [{ ...inline, issuer: 'https://x5.idp.test', algorithms: ['HS256'] }, 'HS256 with a JWK Set'],
    [{ ...inline, issuer: 'https://x6.idp.test', clientId: '{sub' }, 'bad template'],
    [{ ...inline, issuer: 'https://x7.idp.test', capability: undefined }, 'no capability and no key'],
    [{ ...inline, issuer: 'https://x8.idp.test', sharedSecret: 'short', jwks: undefined, algorithms: ['HS256'] }, 'short shared secret'],
  ];
  for (const [p, what] of refusals) {
    const res = await post({ keys: [{}], identityProviders: [JSON.parse(JSON.stringify(p))] });
    expectRestError(assert, res, 40000, 400, what);
  }
  // The same issuer with a disjoint audience in another app is fine; deleting
  // the first app frees its issuer.
  const other = await post({ keys: [{}], identityProviders: [{ ...inline, audience: 'other-aud' }] });
  assert.equal(other.status, 201, other.text);
  assert.equal((await http(env.server, 'DELETE', `/apps/${ok.body.appId}`)).status, 204);
  const again = await post({ keys: [{}], identityProviders: [inline] });
  assert.equal(again.status, 201, again.text);
});

test('an ambiguous config is refused at load: two providers with one issuer and overlapping audiences stop `serve` with the reason', async () => {
  const dir = makeTempDir('switchboard-identity-bad-');
  try {
    const p = { issuer: 'https://dup.idp.test', audience: ['a', 'b'], jwks: jwks(K.inline), algorithms: ['EdDSA'], capability: { 'c:{sub}': ['subscribe'] } };
    const file = path.join(dir.dir, 'config.json');
    writeFileSync(file, JSON.stringify({
      apps: [
        { id: 'one', keys: [{ id: 'k', secret: 'secret-0123456789' }], identityProviders: [{ id: 'p1', ...p }] },
        { id: 'two', keys: [{ id: 'k', secret: 'secret-0123456789' }], identityProviders: [{ id: 'p2', ...p, audience: 'b' }] },
      ],
    }));
    const err = await startServer({ extraArgs: ['--config', file], label: 'identity-ambiguous' }).then(() => null, (e) => e);
    assert.ok(err, 'the server must not start');
    assert.match(err.message, /already has issuer https:\/\/dup\.idp\.test with an overlapping audience/);
  } finally {
    dir.cleanup();
  }
});

test('Assistant Cloud with a provider token: the workspace template scopes threads; another workspace\'s thread is 40400', async () => {
  const res = await http(env.server, 'POST', '/apps', {
    body: {
      keys: [{}],
      identityProviders: [{ id: 'team', issuer: 'https://team.idp.test', audience: AUD, jwks: jwks(K.inline), algorithms: ['EdDSA'],
        clientId: '{sub}', workspace: '{org_id}', capability: { 'cloud:{org_id}:*': ['history', 'publish', 'subscribe'] } }],
    },
  });
  assert.equal(res.status, 201, res.text);
  const base = `/cloud/${res.body.appId}/v1`;
  const as = async (sub, org) => ({ authorization: bearerRaw(await idToken(K.inline, { iss: 'https://team.idp.test', sub, claims: { org_id: org } })) });
  const created = await http(env.server, 'POST', `${base}/threads`, { headers: await as('ann', 'acme'), body: { title: 't' } });
  assert.equal(created.status, 201, created.text);
  const id = created.body.thread_id;
  const same = await http(env.server, 'GET', `${base}/threads/${id}`, { headers: await as('ben', 'acme') });
  assert.equal(same.status, 200, same.text);
  assert.equal(same.body.thread.workspace_id, 'acme');
  const other = await http(env.server, 'GET', `${base}/threads/${id}`, { headers: await as('cat', 'globex') });
  expectRestError(assert, other, 40400, 404, 'a thread of another workspace');
});

test('a provider with an explicit sharedSecret (HS256, e.g. Supabase\'s legacy JWT secret) verifies only with that secret', async () => {
  const secret = 'super-secret-jwt-token-with-at-least-32-characters-long';
  const res = await http(env.server, 'POST', '/apps', {
    body: { keys: [{}], identityProviders: [{ id: 'supa', issuer: 'https://proj.supabase.test/auth/v1', audience: 'authenticated', sharedSecret: secret, algorithms: ['HS256'], clientId: '{sub}', capability: { 'c:{sub}': ['subscribe'] } }] },
  });
  assert.equal(res.status, 201, res.text);
  assert.equal(res.body.identityProviders[0].sharedSecret, undefined, 'the secret is not echoed');
  const claims = { iss: 'https://proj.supabase.test/auth/v1', aud: 'authenticated', sub: 'u-1', iat: nowS(), exp: nowS() + 600 };
  const ok = handToken({ alg: 'HS256', typ: 'JWT' }, claims, secret);
  const { frame } = await wsConnect(env.server, { access_token: ok });
  assert.equal(frame.action, ACTION.CONNECTED, JSON.stringify(frame));
  const bad = handToken({ alg: 'HS256', typ: 'JWT' }, claims, `${secret}x`);
  const r = await wsConnect(env.server, { access_token: bad });
  expectWsError(assert, r.frame, 40144, 401, 'wrong shared secret');
});

test('an Ably JWT whose kid names an app key is still an Ably JWT, even with a provider\'s iss', async () => {
  const claims = { iss: ISS.https, iat: nowS(), exp: nowS() + 600, 'x-ably-capability': '{"*":["*"]}', 'x-ably-clientId': 'k' };
  const tok = handToken({ alg: 'HS256', typ: 'JWT', kid: 'idp.k1' }, claims, 'k1-secret-0123456789');
  assert.equal((await restGet(tok, 'anything')).status, 200);
  const bad = handToken({ alg: 'HS256', typ: 'JWT', kid: 'idp.k1' }, claims, 'wrong-secret');
  await expectRefused(bad, 40144, 401, 'Ably JWT with a bad signature');
});

// ---------------------------------------------------------------------------
// Item 6: switchboard token --check
// ---------------------------------------------------------------------------

/** Runs the CLI asynchronously (the JWKS server lives in this process). */
function tokenCheck(token) {
  return new Promise((resolve) => {
    execFile(SERVER_BIN, ['token', '--check', '--config', cfgFile, token], { timeout: 30_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? err.code : 0, stdout, stderr }));
  });
}

test('switchboard token --check: what a provider token grants, or the exact code and reason of a refusal', { timeout: 60_000 }, async () => {
  const ok = await tokenCheck(await idToken(K.https, { iss: ISS.https, sub: 'alice', claims: { org_id: 'acme' } }));
  assert.equal(ok.code, 0, ok.stdout + ok.stderr);
  assert.match(ok.stdout, /ACCEPTED as identity provider token of provider idp\/https/);
  assert.match(ok.stdout, /clientId\s+alice/);
  assert.match(ok.stdout, /"conversations:alice:\*"/);
  assert.match(ok.stdout, /provider idp\/big .*NO KEYS: response larger than 4096 bytes/);
  const fake = await keypair('ES256', 'not-published');
  const bad = await tokenCheck(await idToken(fake, { iss: ISS.https, claims: { org_id: 'o' } }));
  assert.equal(bad.code, 1, bad.stdout + bad.stderr);
  assert.match(bad.stdout, /REFUSED: 40144 \(401\) invalid JWT: no key with kid not-published at this identity provider/);
  const aud = await tokenCheck(await idToken(K.https, { iss: ISS.https, aud: 'nope', claims: { org_id: 'o' } }));
  assert.match(aud.stdout, /REFUSED: 40144 \(401\) invalid JWT: aud names no audience/);
  const tmpl = await tokenCheck(await idToken(K.https, { iss: ISS.https, sub: 'a:*', claims: { org_id: 'o' } }));
  assert.match(tmpl.stdout, /REFUSED: 40101 \(401\) the token's claim sub is not a string/);
});
