// Helpers for the token-authentication tests (issue 3): Ably JWTs (real
// `jsonwebtoken`, plus hand-built ones for the attack suite), TokenRequests
// signed independently of the SDK, raw requestToken / revokeTokens calls, a
// raw WebSocket connect that returns the server's first answer, an authUrl
// server on 127.0.0.1:0, and config files for `--config`.
//
// Everything talks to the real server over real sockets; nothing is mocked.

import crypto from 'node:crypto';
import nodeHttp from 'node:http';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import jwt from 'jsonwebtoken';
import WebSocket from 'ws';
import {
  http,
  basicAuth,
  msgpack,
  makeTempDir,
  withTimeout,
  waitForConnectionState,
  ACTION,
} from './server.mjs';

export { jwt };

const nowSec = () => Math.floor(Date.now() / 1000);

export function b64url(bufOrString) {
  return Buffer.from(bufOrString).toString('base64url');
}

/**
 * An Ably JWT signed by `jsonwebtoken` with key `k` ({keyName, keySecret}):
 * HS256, kid = keyName. Options:
 *   capability  object or string (JSON text); null omits the claim
 *   clientId    x-ably-clientId
 *   revocationKey x-ably-revocation-key
 *   ttlSec      exp - iat (default 3600)
 *   iatOffsetSec shift iat (and exp) from now
 *   claims      extra claims (e.g. {'ably.channel.chat:*': 'member'})
 *   header      extra JOSE header fields
 *   secret / kid / algorithm  overrides for negative tests
 */
export function ablyJwt(k, opts = {}) {
  const {
    capability = { '*': ['*'] },
    clientId,
    revocationKey,
    ttlSec = 3600,
    iatOffsetSec = 0,
    claims = {},
    header = {},
    secret = k.keySecret,
    kid = k.keyName,
    algorithm = 'HS256',
  } = opts;
  const iat = nowSec() + iatOffsetSec;
  const payload = { iat, exp: iat + ttlSec, ...claims };
  if (capability !== null) {
    payload['x-ably-capability'] = typeof capability === 'string' ? capability : JSON.stringify(capability);
  }
  if (clientId !== undefined) payload['x-ably-clientId'] = clientId;
  if (revocationKey !== undefined) payload['x-ably-revocation-key'] = revocationKey;
  const hdr = { typ: 'JWT', ...header };
  if (kid !== null) hdr.kid = kid;
  return jwt.sign(payload, secret, { algorithm, header: hdr });
}

/** Decodes a JWT's header and payload without verifying it. */
export function decodeJwt(token) {
  const [h, p] = token.split('.');
  return { header: JSON.parse(Buffer.from(h, 'base64url')), payload: JSON.parse(Buffer.from(p, 'base64url')) };
}

/**
 * A JWT built by hand (no library): `header` and `payload` objects (or raw
 * strings), signed with HMAC-<hash> over `secret` (sign: 'HS256' | 'HS384' |
 * 'none' | a function(signingInput) -> base64url signature).
 */
export function handJwt(header, payload, { secret, sign = 'HS256' } = {}) {
  const h = typeof header === 'string' ? b64url(header) : b64url(JSON.stringify(header));
  const p = typeof payload === 'string' ? b64url(payload) : b64url(JSON.stringify(payload));
  const input = `${h}.${p}`;
  let sig;
  if (typeof sign === 'function') sig = sign(input);
  else if (sign === 'none') sig = '';
  else {
    const hash = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' }[sign];
    sig = crypto.createHmac(hash, secret).update(input).digest('base64url');
  }
  return `${input}.${sig}`;
}

/** Standard Ably JWT claims for hand-built tokens. */
export function jwtClaims({ ttlSec = 600, capability = { '*': ['*'] }, clientId, extra = {} } = {}) {
  const iat = nowSec();
  const c = { iat, exp: iat + ttlSec, 'x-ably-capability': JSON.stringify(capability), ...extra };
  if (clientId !== undefined) c['x-ably-clientId'] = clientId;
  return c;
}

/** Changes one base64url character in the middle of `s` (still valid base64url). */
export function flipChar(s, at = Math.floor(s.length / 2)) {
  const c = s[at];
  const repl = c === 'A' ? 'B' : 'A';
  return s.slice(0, at) + repl + s.slice(at + 1);
}

// ---------------------------------------------------------------------------
// TokenRequests (TE1-TE6), signed here with node:crypto, not by the SDK
// ---------------------------------------------------------------------------

/**
 * A signed TokenRequest for key `k`. params: ttl, capability (object or
 * string), clientId, timestamp (ms), nonce; `secret` overrides the signing
 * secret. The mac is HMAC-SHA256 over
 * keyName\nttl\ncapability\nclientId\ntimestamp\nnonce\n (base64).
 */
export function signedTokenRequest(k, params = {}, { secret = k.keySecret } = {}) {
  const tr = {
    keyName: k.keyName,
    timestamp: params.timestamp ?? Date.now(),
    nonce: params.nonce ?? crypto.randomBytes(12).toString('hex'),
  };
  if (params.ttl !== undefined) tr.ttl = params.ttl;
  if (params.capability !== undefined) {
    tr.capability = typeof params.capability === 'string' ? params.capability : JSON.stringify(params.capability);
  }
  if (params.clientId !== undefined) tr.clientId = params.clientId;
  const text =
    [tr.keyName, tr.ttl ?? '', tr.capability ?? '', tr.clientId ?? '', tr.timestamp, tr.nonce].join('\n') + '\n';
  tr.mac = crypto.createHmac('sha256', secret).update(text).digest('base64');
  return tr;
}

/** POST /keys/{keyName}/requestToken with a JSON body (raw HTTP). */
export function requestTokenRaw(server, keyName, body, { headers = {}, key } = {}) {
  return http(server, 'POST', `/keys/${encodeURIComponent(keyName)}/requestToken`, { body, headers, key });
}

/**
 * TokenDetails for key `k` through requestToken (signed TokenRequest, no
 * Basic auth); asserts success. params as for signedTokenRequest.
 */
export async function mintToken(server, k, params = {}) {
  const res = await requestTokenRaw(server, k.keyName, signedTokenRequest(k, params));
  if (res.status < 200 || res.status > 299 || !res.body?.token) {
    throw new Error(`requestToken for ${k.keyName} ${JSON.stringify(params)} failed: ${res.status} ${res.text}`);
  }
  return res.body;
}

/** POST /keys/{keyName}/revokeTokens (raw HTTP); `auth` is a full Authorization value. */
export function revokeRaw(server, keyName, body, { key, authorization, headers = {} } = {}) {
  const h = { ...headers };
  if (authorization) h.authorization = authorization;
  return http(server, 'POST', `/keys/${encodeURIComponent(keyName)}/revokeTokens`, { body, key, headers: h });
}

export const bearer = (token) => `Bearer ${Buffer.from(token).toString('base64')}`;
export const bearerRaw = (token) => `Bearer ${token}`;
export { basicAuth };

/** Asserts an Ably REST error: HTTP status, body.error.{code,statusCode} and X-Ably-ErrorCode. */
export function expectRestError(assert, res, code, status, what = '') {
  const label = `${what} -> ${res.status} ${res.text}`;
  assert.equal(res.status, status, `HTTP status ${label}`);
  assert.equal(res.body?.error?.code, code, `error.code ${label}`);
  assert.equal(res.body?.error?.statusCode, status, `error.statusCode ${label}`);
  assert.equal(res.headers.get('x-ably-errorcode'), String(code), `X-Ably-ErrorCode ${label}`);
}

// ---------------------------------------------------------------------------
// Raw WebSocket
// ---------------------------------------------------------------------------

/**
 * Opens a raw WebSocket (optionally with extra HTTP headers, e.g. Cookie)
 * and collects frames. `first()` resolves with the first CONNECTED or ERROR
 * (or DISCONNECTED) frame. Same frame helpers as server.mjs's rawWs.
 */
export function openWs(server, query, { headers } = {}) {
  const q = { v: '6', format: 'json', ...query };
  const qs = new URLSearchParams(q).toString();
  const ws = new WebSocket(`ws://${server.host}:${server.port}/?${qs}`, { headers });
  const frames = [];
  const waiters = [];
  const closed = new Promise((resolve) => ws.on('close', (code) => resolve({ code })));
  const opened = new Promise((resolve, reject) => {
    ws.on('open', resolve);
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => reject(new Error(`upgrade refused: HTTP ${res.statusCode} ${body}`)));
    });
    ws.on('error', reject);
  });
  opened.catch(() => {});
  ws.on('message', (data, isBinary) => {
    let f;
    try {
      f = isBinary ? msgpack.decode(Buffer.from(data)) : JSON.parse(data.toString());
    } catch {
      f = { unparsable: true };
    }
    f.__at = Date.now();
    frames.push(f);
    for (const w of [...waiters]) {
      if (w.pred(f)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(f);
      }
    }
  });
  const api = {
    ws,
    frames,
    opened,
    closed,
    next(pred, ms = 5000, what = 'frame') {
      const found = frames.find(pred);
      if (found) return Promise.resolve(found);
      const p = new Promise((resolve) => waiters.push({ pred, resolve }));
      const onClose = closed.then(() => {
        const again = frames.find(pred);
        if (again) return again;
        throw new Error(`socket closed before ${what}; frames: ${JSON.stringify(frames).slice(0, 600)}`);
      });
      return withTimeout(Promise.race([p, onClose]), ms, `${what}; frames: ${JSON.stringify(frames).slice(0, 600)}`);
    },
    first(ms = 5000) {
      return api.next(
        (f) => [ACTION.CONNECTED, ACTION.ERROR, ACTION.DISCONNECTED].includes(f.action),
        ms,
        'CONNECTED or ERROR',
      );
    },
    send(obj) {
      ws.send(JSON.stringify(obj));
    },
    close() {
      try {
        ws.terminate();
      } catch {
        /* ignore */
      }
    },
  };
  return api;
}

/**
 * Connects a raw socket and returns the server's first answer frame, closing
 * the socket unless keep is set. Returns {frame, sock}.
 */
export async function wsConnect(server, query, { headers, keep = false, ms = 5000 } = {}) {
  const sock = openWs(server, query, { headers });
  try {
    await withTimeout(sock.opened, ms, 'WebSocket open');
    const frame = await sock.first(ms);
    return { frame, sock };
  } finally {
    if (!keep) sock.close();
  }
}

/** Asserts a frame is an ERROR (or DISCONNECTED) with the code/status. */
export function expectWsError(assert, frame, code, status, what = '', action = ACTION.ERROR) {
  const label = `${what}: ${JSON.stringify(frame).slice(0, 400)}`;
  assert.equal(frame.action, action, `action ${label}`);
  assert.equal(frame.error?.code, code, `error.code ${label}`);
  assert.equal(frame.error?.statusCode, status, `error.statusCode ${label}`);
  assert.equal(frame.channel, undefined, `connection-level error has no channel ${label}`);
}

/** A raw connection: CONNECTED asserted; returns the socket (caller closes). */
export async function wsConnected(assert, server, query, opts = {}) {
  const { frame, sock } = await wsConnect(server, query, { ...opts, keep: true });
  if (frame.action !== ACTION.CONNECTED) sock.close();
  assert.equal(frame.action, ACTION.CONNECTED, `expected CONNECTED: ${JSON.stringify(frame).slice(0, 400)}`);
  return { sock, connected: frame };
}

/** Raw ATTACH and the answer (ATTACHED or ERROR for that channel). */
export async function wsAttach(sock, channel, ms = 4000) {
  sock.send({ action: ACTION.ATTACH, channel });
  return sock.next(
    (f) => f.channel === channel && (f.action === ACTION.ATTACHED || f.action === ACTION.ERROR),
    ms,
    `ATTACHED/ERROR for ${channel}`,
  );
}

/** Raw MESSAGE publish; resolves with the ACK or NACK for msgSerial. */
export async function wsPublish(sock, channel, msgSerial, messages, ms = 4000) {
  sock.send({ action: ACTION.MESSAGE, channel, msgSerial, messages });
  return sock.next(
    (f) => (f.action === ACTION.ACK || f.action === ACTION.NACK) && f.msgSerial === msgSerial,
    ms,
    `ACK/NACK for msgSerial ${msgSerial}`,
  );
}

// ---------------------------------------------------------------------------
// authUrl server
// ---------------------------------------------------------------------------

/**
 * An HTTP server on 127.0.0.1:0 acting as the customer's auth endpoint.
 * `handler({method, url, query, headers, body, form}) -> {status, type, body}`.
 * Every request is recorded in `requests`. Call close() when done.
 */
export async function startAuthServer(handler) {
  const requests = [];
  const server = nodeHttp.createServer((req, res) => {
    const chunks = [];
    req.on('data', (d) => chunks.push(d));
    req.on('end', async () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const url = new URL(req.url, 'http://127.0.0.1');
      const rec = {
        method: req.method,
        path: url.pathname,
        query: Object.fromEntries(url.searchParams),
        headers: req.headers,
        body,
        form: req.headers['content-type']?.includes('x-www-form-urlencoded')
          ? Object.fromEntries(new URLSearchParams(body))
          : undefined,
      };
      requests.push(rec);
      try {
        const r = await handler(rec);
        const payload = typeof r.body === 'string' ? r.body : JSON.stringify(r.body);
        res.writeHead(r.status ?? 200, { 'content-type': r.type ?? 'application/json', connection: 'close' });
        res.end(payload);
      } catch (e) {
        res.writeHead(500, { 'content-type': 'text/plain', connection: 'close' });
        res.end(String(e));
      }
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}/auth`,
    requests,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}

// ---------------------------------------------------------------------------
// Config files, SDK helpers
// ---------------------------------------------------------------------------

/** Writes `config` as JSON to a fresh temp dir; returns {file, cleanup}. */
export function writeConfig(config) {
  const tmp = makeTempDir('switchboard-auth-cfg-');
  const file = path.join(tmp.dir, 'config.json');
  writeFileSync(file, JSON.stringify(config));
  return { file, cleanup: tmp.cleanup };
}

/** The connection id of a connected ably-js client. */
export const connId = (client) => client.connection.id;

/**
 * Records every connection state change of `client` ({current, previous,
 * reason, at}); stop() detaches the listener.
 */
export function recordStates(client) {
  const changes = [];
  const l = (sc) => changes.push({ current: sc.current, previous: sc.previous, reason: sc.reason, at: Date.now() });
  client.connection.on(l);
  return { changes, stop: () => client.connection.off(l) };
}

/** Waits for a connection 'update' event (RTN24), e.g. after an in-band AUTH. */
export function nextUpdate(client, ms = 8000) {
  let l;
  const p = new Promise((resolve) => {
    l = (sc) => resolve(sc);
    client.connection.once('update', l);
  });
  return withTimeout(p, ms, 'connection update event').finally(() => client.connection.off('update', l));
}

export { waitForConnectionState };
