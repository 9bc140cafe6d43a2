// The example's app server (plain node:http):
//
//   GET  /                 the page (public/), with the bundled client (public/app.js)
//   POST /login {user}     demo login: sets a signed session cookie for that user
//   POST /logout
//   GET  /api/config       where the browser's Ably client connects (switchboard)
//   GET  /api/ably-token   the token endpoint: authenticates the cookie, answers an
//                          Ably JWT for conversations:<user> with clientId = user
//   POST /api/agent        wakes the agent; Authorization: Bearer <the user's Ably
//                          JWT>; the body is the AI Transport invocation
//
// Run against a switchboard you started yourself:
//   ABLY_KEY='aichat.server:secret' SWITCHBOARD_URL=http://127.0.0.1:8080 node server.mjs
// or let start.mjs start both (`npm start`).
import http from 'node:http';
import https from 'node:https';
import crypto from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as Ably from 'ably';
import jwt from 'jsonwebtoken';
import { handleInvocation } from './agent.mjs';
import { build } from './build.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const PUBLIC = path.join(here, 'public');
const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css', '.map': 'application/json' };

/** The namespace of the conversations: `conversations:<user>`. */
const NAMESPACE = 'conversations';
/** What a user's token may do on their own conversation channel. */
export const USER_CAPABILITY = ['publish', 'subscribe', 'history', 'presence'];
const TOKEN_TTL_SECONDS = 3600;

const readBody = (req, limit = 64 * 1024) =>
  new Promise((resolve, reject) => {
    let size = 0;
    const chunks = [];
    req.on('data', (d) => {
      size += d.length;
      if (size > limit) reject(Object.assign(new Error('body too large'), { status: 413 }));
      else chunks.push(d);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });

function send(res, status, body, headers = {}) {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, {
    'content-type': typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/json',
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(text);
}

/**
 * Starts the app server. Options: ablyKey ('app.key:secret'), switchboardUrl
 * ('http://host:port', or 'https://host:port' for switchboard with TLS), host,
 * port (0 = any), wordDelayMs, words, log, tls ({cert, key}: PEM, to serve
 * the page over HTTPS).
 */
export async function startChat({
  ablyKey,
  switchboardUrl,
  host = '127.0.0.1',
  port = 3000,
  wordDelayMs = 120,
  words = 60,
  log = (line) => console.log(`[ai-chat] ${line}`),
  tls,
} = {}) {
  if (!ablyKey || !ablyKey.includes(':')) throw new Error('ablyKey must be "appId.keyId:secret"');
  const [keyName, keySecret] = ablyKey.split(':');
  const sb = new URL(switchboardUrl);
  // ably-js takes the port of a TLS connection as `tlsPort`, of a plain one as `port`.
  const ablyEndpoint =
    sb.protocol === 'https:'
      ? { endpoint: sb.hostname, tlsPort: Number(sb.port || 443), tls: true }
      : { endpoint: sb.hostname, port: Number(sb.port || 80), tls: false };

  await build(); // bundles src/app.mjs (ably + @ably/ai-transport) into public/app.js

  // The agent's connection: the API key, on the server only.
  const agentRealtime = new Ably.Realtime({ key: ablyKey, clientId: 'agent', ...ablyEndpoint });
  try {
    await checkNamespace(agentRealtime, NAMESPACE);
  } catch (e) {
    agentRealtime.close();
    throw e;
  }

  // Demo sessions: the cookie is `user.hmac(user)` with a per-process secret.
  const cookieSecret = crypto.randomBytes(32);
  const sign = (user) => crypto.createHmac('sha256', cookieSecret).update(user).digest('base64url');
  const sessionUser = (req) => {
    const raw = /(?:^|;\s*)aichat_session=([^;]+)/.exec(req.headers.cookie || '')?.[1];
    if (!raw) return null;
    const dot = raw.lastIndexOf('.');
    const user = decodeURIComponent(raw.slice(0, dot));
    const mac = raw.slice(dot + 1);
    const want = sign(user);
    return mac.length === want.length && crypto.timingSafeEqual(Buffer.from(mac), Buffer.from(want)) ? user : null;
  };

  // The agent endpoint's bearer token is the user's own Ably JWT: verify it
  // exactly as switchboard does (HS256, kid = our key) and read its clientId.
  const bearerUser = (req) => {
    const m = /^Bearer (.+)$/.exec(req.headers.authorization || '');
    if (!m) return null;
    try {
      const claims = jwt.verify(m[1], keySecret, { algorithms: ['HS256'], complete: true });
      if (claims.header.kid !== keyName) return null;
      const user = claims.payload['x-ably-clientId'];
      return typeof user === 'string' && user !== '*' ? user : null;
    } catch {
      return null;
    }
  };

  const routes = {
    'POST /login': async (req, res) => {
      let user;
      try {
        user = JSON.parse(await readBody(req)).user;
      } catch {
        /* fall through */
      }
      if (typeof user !== 'string' || !/^[a-zA-Z0-9_-]{1,40}$/.test(user)) {
        return send(res, 400, { error: 'user must be 1-40 letters, digits, _ or -' });
      }
      log(`login ${user}`);
      send(res, 200, { user }, {
        'set-cookie': `aichat_session=${encodeURIComponent(user)}.${sign(user)}; Path=/; HttpOnly; SameSite=Strict`,
      });
    },
    'POST /logout': async (_req, res) =>
      send(res, 200, {}, { 'set-cookie': 'aichat_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0' }),
    'GET /api/me': async (req, res) => {
      send(res, 200, { user: sessionUser(req) });
    },
    'GET /api/config': async (_req, res) => send(res, 200, { ...ablyEndpoint, namespace: NAMESPACE }),
    'GET /api/ably-token': async (req, res) => {
      const user = sessionUser(req);
      if (!user) return send(res, 401, { error: 'not logged in' });
      const token = jwt.sign(
        {
          'x-ably-capability': JSON.stringify({ [`${NAMESPACE}:${user}`]: USER_CAPABILITY }),
          'x-ably-clientId': user,
        },
        keySecret,
        { algorithm: 'HS256', keyid: keyName, expiresIn: TOKEN_TTL_SECONDS },
      );
      send(res, 200, token, { 'content-type': 'application/jwt' });
    },
    'POST /api/agent': async (req, res) => {
      const user = bearerUser(req);
      if (!user) return send(res, 401, { error: 'Authorization: Bearer <your Ably token> required' });
      let invocation;
      try {
        invocation = JSON.parse(await readBody(req));
      } catch {
        return send(res, 400, { error: 'the body must be an invocation (JSON)' });
      }
      if (typeof invocation?.inputEventId !== 'string' || typeof invocation?.sessionName !== 'string') {
        return send(res, 400, { error: 'the body must be {inputEventId, sessionName}' });
      }
      // A user may only wake the agent on their own conversation.
      if (invocation.sessionName !== `${NAMESPACE}:${user}`) {
        return send(res, 403, { error: `${user} may not invoke the agent on ${invocation.sessionName}` });
      }
      try {
        const started = await withTimeout(
          handleInvocation(agentRealtime, invocation, { wordDelayMs, words, log }),
          15_000,
        );
        send(res, 202, started);
      } catch (e) {
        log(`invocation failed: ${e.message}`);
        send(res, 502, { error: e.message });
      }
    },
  };

  const handler = async (req, res) => {
    const url = new URL(req.url, 'http://x');
    const route = routes[`${req.method} ${url.pathname}`];
    try {
      if (route) return await route(req, res);
      if (req.method !== 'GET') return send(res, 405, { error: 'method not allowed' });
      const file = url.pathname === '/' ? 'index.html' : url.pathname.slice(1);
      const full = path.join(PUBLIC, path.normalize(file));
      if (!full.startsWith(PUBLIC + path.sep)) return send(res, 404, 'not found');
      const body = await readFile(full).catch(() => null);
      if (!body) return send(res, 404, 'not found');
      res.writeHead(200, { 'content-type': TYPES[path.extname(full)] ?? 'application/octet-stream', 'cache-control': 'no-cache' });
      res.end(body);
    } catch (e) {
      send(res, e.status ?? 500, { error: e.message });
    }
  };
  const server = tls ? https.createServer({ cert: tls.cert, key: tls.key }, handler) : http.createServer(handler);
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  const url = `${tls ? 'https' : 'http'}://${host}:${server.address().port}/`;
  return {
    url,
    async close() {
      server.closeAllConnections?.();
      await new Promise((r) => server.close(() => r()));
      agentRealtime.close();
    },
  };
}

/**
 * The agent streams an answer by appending to one message, which the app's
 * namespace must allow (the rule mutableMessages; without it every append is
 * refused with 93002 and no answer ever arrives). Checked once at start, with
 * one message and one append on a channel of its own (no user name has a
 * '.'), so a wrong app fails here, saying how to fix it, and not mid-answer.
 */
async function checkNamespace(realtime, namespace) {
  const channel = realtime.channels.get(`${namespace}:.startup-check`);
  try {
    const { serials } = await withTimeout(channel.publish({ name: 'startup-check', data: 'appends' }), 10_000);
    await withTimeout(channel.appendMessage({ serial: serials[0], data: ' work' }), 10_000);
  } catch (e) {
    if (e.code !== 93002) throw new Error(`cannot check the "${namespace}" namespace: ${e.code ?? ''} ${e.message}`);
    throw new Error(
      `the app's "${namespace}" namespace does not allow appends (93002: it needs the rule mutableMessages). ` +
        'Use the development app a fresh switchboard creates (it has this namespace), or give your app ' +
        `{"id": "${namespace}", "mutableMessages": true, "persisted": true}: see README.md`,
    );
  } finally {
    await channel.detach().catch(() => {});
    realtime.channels.release(channel.name);
  }
}

function withTimeout(promise, ms) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/**
 * The AI Transport encoder sends appends without awaiting each one, so a
 * refused append also surfaces as an unhandled rejection, which would end
 * the whole process (and leave the page waiting forever). The run itself
 * still ends in error, which the page shows: log it and carry on.
 */
export function keepRunningOnUnhandledRejections() {
  process.on('unhandledRejection', (e) => console.error(`[ai-chat] unhandled: ${e?.code ?? ''} ${e?.message ?? e}`));
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  keepRunningOnUnhandledRejections();
  let chat;
  try {
    chat = await startChat({
      ablyKey: process.env.ABLY_KEY,
      switchboardUrl: process.env.SWITCHBOARD_URL || 'http://127.0.0.1:8080',
      port: Number(process.env.PORT ?? 3000),
      wordDelayMs: Number(process.env.WORD_DELAY_MS ?? 120),
    });
  } catch (e) {
    console.error(`ai-chat: ${e.message}`);
    process.exit(1);
  }
  console.log(`ai-chat: open ${chat.url}`);
  const stop = async () => {
    await chat.close();
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
