// Harness for the AI Transport end-to-end tests: starts the real switchboard
// binary, creates an app through the admin API, runs a token endpoint that
// signs Ably JWTs the way Ably's AI Transport docs prescribe, builds real
// ably-js clients and AI Transport sessions, and offers waits that never hang.
//
// Environment:
//   SWITCHBOARD_BIN   server binary (default <repo>/build/switchboard)
//   ABLY_LOG_LEVEL    ably-js log level for test clients (default 0)
//   SW_TEST_VERBOSE   echo server stdout/stderr

import nodeHttp from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import * as Ably from 'ably';
import * as AIT from '@ably/ai-transport';
import jwt from 'jsonwebtoken';
import { createTextCodec } from '../../../examples/ai-chat/common/text-codec.mjs';
import * as shared from '../../lib/switchboard.mjs';
import { sleep, withTimeout, waitUntil, serverLifecycle } from '../../lib/switchboard.mjs';

export { REPO_ROOT, SERVER_BIN, sleep, withTimeout, waitUntil, settle, http, basicAuth as basic } from '../../lib/switchboard.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
export const ARTIFACTS_DIR = path.resolve(here, '..', 'artifacts');

export { Ably, AIT, jwt };
export const codec = createTextCodec(AIT);

let uniq = 0;
export const uniqueId = (prefix) => `${prefix}-${process.pid.toString(36)}${Date.now().toString(36)}${++uniq}`;

// ---------------------------------------------------------------------------
// Server and app
// ---------------------------------------------------------------------------

/** A --memory --sandbox server (tests/lib/switchboard.mjs), its log in tests/ai/artifacts. */
export async function startServer(label = 'switchboard') {
  return shared.startServer({ label, artifactsDir: ARTIFACTS_DIR });
}

/**
 * The app the AI tests use: one unrestricted key for agents (and signing
 * JWTs), `conversations:` with mutableMessages (the rule AI Transport needs),
 * `guarded:` with mutableMessages + cancelByTurnOwnerOnly, and `plain:`
 * without mutableMessages.
 */
export const APP_BODY = {
  keys: [{}],
  namespaces: [
    { id: 'conversations', mutableMessages: true },
    { id: 'guarded', mutableMessages: true, cancelByTurnOwnerOnly: true },
    { id: 'plain' },
  ],
};

/** POST /apps; the app's first key, flattened: {appId, keyName, keySecret, keyStr}. */
export async function createApp(server, body = APP_BODY) {
  const app = await shared.createApp(server, body);
  const key = app.keys[0];
  return { appId: app.appId, keyName: key.keyName, keySecret: key.keySecret, keyStr: key.keyStr };
}

// ---------------------------------------------------------------------------
// The app server's token endpoint (what Ably's AI Transport docs prescribe)
// ---------------------------------------------------------------------------

/**
 * An HTTP server standing in for the customer's backend: `GET /api/ably-token`
 * authenticates a session cookie (`sid`) and answers an Ably JWT (HS256, kid =
 * keyName) with `x-ably-clientId` = the user and `x-ably-capability` scoped to
 * `<namespace>:<userId>` (publish, subscribe, history, presence).
 * `login(userId, {share})` returns a cookie for that user; `share` adds
 * resources (e.g. another user's conversation shared with them) with the same
 * operations, or with the operations given (`{resource: [ops]}`).
 */
export const USER_OPS = ['publish', 'subscribe', 'history', 'presence'];

export async function startTokenEndpoint(app, { ttlSeconds = 3600 } = {}) {
  const sessions = new Map();
  const issued = [];
  const srv = nodeHttp.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    const sid = /(?:^|;\s*)sid=([^;]+)/.exec(req.headers.cookie || '')?.[1];
    const sess = sid && sessions.get(sid);
    const userId = sess?.userId;
    if (url.pathname !== '/api/ably-token' || !userId) {
      res.writeHead(401, { 'content-type': 'text/plain', connection: 'close' }).end('not logged in');
      return;
    }
    const capability = {};
    for (const ns of ['conversations', 'guarded', 'plain']) {
      capability[`${ns}:${userId}`] = USER_OPS;
    }
    for (const [resource, ops] of Object.entries(sess.share)) capability[resource] = ops;
    const token = jwt.sign(
      { 'x-ably-capability': JSON.stringify(capability), 'x-ably-clientId': userId },
      app.keySecret,
      { algorithm: 'HS256', keyid: app.keyName, expiresIn: ttlSeconds },
    );
    issued.push({ userId, at: Date.now() });
    res.writeHead(200, { 'content-type': 'application/jwt', connection: 'close' }).end(token);
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${srv.address().port}/api/ably-token`;
  return {
    url,
    issued,
    login(userId, { share = [] } = {}) {
      const sid = uniqueId('sid');
      const shared = Array.isArray(share) ? Object.fromEntries(share.map((r) => [r, USER_OPS])) : share;
      sessions.set(sid, { userId, share: shared });
      return `sid=${sid}`;
    },
    close: () =>
      new Promise((r) => {
        srv.closeAllConnections?.();
        srv.close(() => r());
      }),
  };
}

// ---------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------

const baseOpts = (server) => ({
  endpoint: server.host,
  port: server.port,
  tls: false,
  logLevel: Number(process.env.ABLY_LOG_LEVEL || 0),
  disconnectedRetryTimeout: 500,
  suspendedRetryTimeout: 1000,
});

/** Tracks everything a test opens and closes it at the end of the test. */
export class Scope {
  constructor() {
    this.closers = [];
  }
  add(fn) {
    this.closers.push(fn);
  }
  async closeAll() {
    for (const fn of this.closers.reverse()) {
      await withTimeout(Promise.resolve().then(fn), 4000, 'cleanup').catch(() => {});
    }
    this.closers = [];
  }
}

export function scope(t) {
  const s = new Scope();
  t.after(() => s.closeAll());
  return s;
}

async function closeRealtime(client) {
  if (['closed', 'failed'].includes(client.connection.state)) return;
  const done = new Promise((r) => client.connection.on((sc) => ['closed', 'failed'].includes(sc.current) && r()));
  client.close();
  await withTimeout(done, 3000, 'client close').catch(() => {});
}

/**
 * A browser-like user client: token auth only, through `authCallback`
 * fetching the token endpoint with the user's session cookie.
 */
export function userClient(s, env, cookie, extra = {}) {
  const calls = [];
  const client = new Ably.Realtime({
    ...baseOpts(env.server),
    authCallback: async (_params, cb) => {
      calls.push(Date.now());
      try {
        const res = await fetch(env.tokens.url, { headers: { cookie } });
        if (!res.ok) throw new Error(`token endpoint: ${res.status}`);
        cb(null, await res.text());
      } catch (e) {
        cb(e, null);
      }
    },
    ...extra,
  });
  client.authCalls = calls;
  s.add(() => closeRealtime(client));
  return client;
}

/** The agent's client: the API key (server side only). */
export function agentClient(s, env, extra = {}) {
  const client = new Ably.Realtime({ ...baseOpts(env.server), key: env.app.keyStr, clientId: 'agent', ...extra });
  s.add(() => closeRealtime(client));
  return client;
}

export async function connected(client, ms = 8000) {
  if (client.connection.state === 'connected') return;
  await withTimeout(
    new Promise((resolve, reject) => {
      const l = (sc) => {
        if (sc.current === 'connected') {
          client.connection.off(l);
          resolve();
        } else if (['failed', 'closed', 'suspended'].includes(sc.current)) {
          client.connection.off(l);
          reject(new Error(`connection ${sc.current}: ${sc.reason?.code} ${sc.reason?.message}`));
        }
      };
      client.connection.on(l);
    }),
    ms,
    'connected',
  );
}

/** A client session on `channelName`, connected; closed with the scope. */
export async function clientSession(s, client, channelName) {
  const session = AIT.createClientSession({ client, channelName, codec });
  s.add(() => session.close());
  const errors = [];
  session.on('error', (e) => errors.push(e));
  session.errors = errors;
  await withTimeout(session.connect(), 8000, `client session connect on ${channelName}`);
  return session;
}

/**
 * Cuts the client's socket without a WebSocket close frame (ws.terminate()),
 * so ably-js goes DISCONNECTED and resumes (RTN15). Same as
 * tests/integration/lib/server.mjs's dropConnection.
 */
export function dropConnection(client) {
  const cm = client.connection.connectionManager;
  const ws = cm.activeProtocol?.getTransport()?.wsConnection;
  assert.equal(typeof ws?.terminate, 'function', 'ably-js node transport exposes its ws socket');
  ws.terminate();
}

/**
 * Cuts the socket like dropConnection and keeps the client offline for about
 * `ms` (its next transport attempt is delayed), so the other side keeps
 * streaming into the gap. Resolves when the socket is cut.
 */
export function dropFor(client, ms) {
  const cm = client.connection.connectionManager;
  const orig = cm.tryATransport;
  assert.equal(typeof orig, 'function', 'ably-js ConnectionManager.tryATransport');
  cm.tryATransport = function delayed(...args) {
    cm.tryATransport = orig;
    setTimeout(() => orig.apply(cm, args), ms);
  };
  dropConnection(client);
}

/**
 * Records connection state changes ({event, current, reason, at}); an
 * `update` (RTN24: CONNECTED while connected, e.g. after an in-band reauth)
 * has event 'update'.
 */
export function recordStates(client) {
  const changes = [];
  client.connection.on((sc) =>
    changes.push({ event: sc.previous === sc.current ? 'update' : sc.current, current: sc.current, reason: sc.reason, at: Date.now() }),
  );
  return changes;
}

// ---------------------------------------------------------------------------
// The agent
// ---------------------------------------------------------------------------

/** The scripted answer for a prompt: numbered words so loss/duplication is visible. */
export function scriptedAnswer(prompt, words = 40) {
  const out = [];
  for (let i = 1; i <= words; i++) out.push(`w${i}`);
  return `(${prompt}) ${out.join(' ')}.`;
}

/**
 * Handles one invocation the way an agent endpoint does (AIT-ST*): a fresh
 * agent session on the invocation's channel, createRun, start, pipe the
 * scripted answer word by word (every `delayMs`), end with the pipe's reason,
 * end the session. Resolves with a record of what happened.
 */
export async function runAgent(agentRealtime, invocationJson, { answer, delayMs = 20, onCancel, onStart, onDelta } = {}) {
  const invocation = AIT.Invocation.fromJSON(invocationJson);
  const session = AIT.createAgentSession({ client: agentRealtime, channelName: invocation.sessionName, codec });
  const record = { cancelRequests: [], sent: 0, errors: [] };
  session.on('error', (e) => record.errors.push(e));
  try {
    await session.connect();
    const run = session.createRun(invocation, undefined, {
      onCancel: async (req) => {
        const entry = {
          runId: req.runId,
          from: req.message.clientId,
          owner: session.tree.getRunNode?.(req.runId)?.clientId,
        };
        record.cancelRequests.push(entry);
        return onCancel ? onCancel(req, entry) : true;
      },
      onError: (e) => record.errors.push(e),
    });
    record.run = run;
    run.located.catch(() => {}); // observed through start()
    // Page in the conversation so far (the trigger was published before this
    // session attached), then open the run: the README's agent pattern.
    while (run.view.hasOlder()) await run.view.loadOlder();
    await run.start();
    record.runId = run.runId;
    onStart?.(run);
    const id = `txt-${run.runId}`;
    const signal = run.abortSignal;
    async function* source() {
      yield { type: 'text-start', id };
      for (const w of answer.split(/(?<= )/)) {
        if (signal.aborted) return;
        await sleep(delayMs);
        if (signal.aborted) return;
        record.sent++;
        onDelta?.(record.sent);
        yield { type: 'text-delta', id, delta: w };
      }
      yield { type: 'text-end', id };
    }
    const result = await run.pipe(source());
    record.pipeReason = result.reason;
    if (result.error) record.errors.push(result.error);
    // A cancel that lands before the first output ends the source early; the
    // run is still a cancelled one.
    const reason = signal.aborted ? 'cancelled' : result.reason;
    await run.end(reason === 'error' ? { reason: 'error' } : { reason });
    record.status = run.status;
    return record;
  } finally {
    await session.end().catch(() => {});
  }
}

// ---------------------------------------------------------------------------
// Reading the conversation
// ---------------------------------------------------------------------------

/** [{role, text, done}] of a session's (or view's) visible messages. */
export function transcript(viewLike) {
  return viewLike.getMessages().map(({ message }) => ({ role: message.role, text: message.text, done: message.done }));
}

export const lastAssistant = (view) => transcript(view).filter((m) => m.role === 'assistant').at(-1);

/**
 * Records every distinct text the view's last assistant message shows, in
 * order, and checks each is an extension of the one before (no token lost,
 * repeated or reordered on the way).
 */
export function recordGrowth(view) {
  const seen = [];
  const off = view.on('update', () => {
    const a = lastAssistant(view);
    if (a && a.text !== seen.at(-1)) seen.push(a.text);
  });
  return {
    seen,
    off,
    assertMonotonic(assert) {
      for (let i = 1; i < seen.length; i++) {
        assert.ok(seen[i].startsWith(seen[i - 1]), `text step ${i} does not extend the previous one: ${JSON.stringify(seen.slice(i - 1, i + 1))}`);
      }
    },
  };
}

/** Waits until the view's last assistant message is exactly `text` and done. */
export async function waitForAnswer(view, text, ms = 15_000, what = 'the whole answer') {
  return waitUntil(
    () => {
      const a = lastAssistant(view);
      return a && a.done && a.text === text ? a : null;
    },
    ms,
    what,
    () => `expected: ${JSON.stringify(text)}\ntranscript: ${JSON.stringify(transcript(view))}`,
  );
}

/**
 * Per-file fixture: a server, an app, a token endpoint. Fails remaining tests
 * at once if the server dies; stops the server (exit 0 required) at the end.
 */
export function useEnv() {
  const env = { server: null, app: null, tokens: null };
  return serverLifecycle(env, {
    setup: async () => {
      env.server = await startServer();
      env.app = await createApp(env.server);
      env.tokens = await startTokenEndpoint(env.app);
    },
    teardown: async () => {
      await env.tokens?.close();
      await env.server?.stop();
    },
  });
}
