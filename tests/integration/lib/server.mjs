// Integration-test harness for switchboard: the server process, fixtures and
// admin API come from tests/lib/switchboard.mjs (shared with tests/ai and
// tests/client); this file adds the per-file server with the test app, real
// ably-js clients pointed at it, and raw WebSocket helpers. Every awaited
// event has a timeout, so `node --test` always exits.
//
// Environment:
//   SWITCHBOARD_BIN   server binary (default <repo>/build/switchboard)
//   ABLY_LOG_LEVEL    ably-js logLevel for test clients (default 0 = silent)
//   SW_TEST_VERBOSE   if set, server stdout/stderr are echoed to our stderr

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import Ably from 'ably';
import WebSocket from 'ws';
import * as shared from '../../lib/switchboard.mjs';
import { withTimeout, createApp, serverLifecycle } from '../../lib/switchboard.mjs';

export {
  REPO_ROOT,
  SERVER_BIN,
  ServerProcess,
  appSetup,
  fixtureKey,
  sleep,
  withTimeout,
  waitUntil,
  settle,
  basicAuth,
  http,
  createApp,
  deleteApp,
} from '../../lib/switchboard.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
export const ARTIFACTS_DIR = path.resolve(here, '..', 'artifacts');

let uniq = 0;
/** A channel name unique across test runs and tests. */
export function uniqueChannel(prefix = 'ch') {
  uniq += 1;
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${uniq}`;
}

/** startServer of tests/lib/switchboard.mjs, with the logs in tests/integration/artifacts. */
export function startServer(opts = {}) {
  return shared.startServer({ artifactsDir: ARTIFACTS_DIR, ...opts });
}

export function makeTempDir(prefix = 'switchboard-it-') {
  return shared.makeTempDir(prefix);
}

/**
 * Per-file fixture: `const env = useServer()` at module top level registers
 * before/after hooks that start a --memory --sandbox server and create the
 * test app (tests/fixtures/app-setup.json). The after hook stops the server
 * and fails if it exits unclean.
 */
export function useServer(opts = {}) {
  const env = { server: null, app: null };
  return serverLifecycle(env, {
    setup: async () => {
      env.server = await startServer({ label: opts.label || 'switchboard', ...opts });
      env.app = await createApp(env.server);
    },
  });
}

// ---------------------------------------------------------------------------
// ably-js clients
// ---------------------------------------------------------------------------

function baseOptions(server, binary, extra) {
  return {
    endpoint: server.host, // contains dots: ably-js uses it as the host, no fallbacks
    port: server.port,
    tls: false,
    useBinaryProtocol: binary,
    logLevel: Number(process.env.ABLY_LOG_LEVEL || 0),
    ...extra,
  };
}

/**
 * Tracks clients created during a test and closes them all at the end.
 * Use: `const c = clients(t)`; `c.realtime(env, {binary})`.
 */
export class ClientSet {
  constructor() {
    this.list = [];
  }

  realtime(server, opts = {}) {
    const { binary = true, key, ...extra } = opts;
    const client = new Ably.Realtime(
      baseOptions(server, binary, {
        key,
        disconnectedRetryTimeout: 1000,
        suspendedRetryTimeout: 2000,
        ...extra,
      }),
    );
    this.list.push(client);
    return client;
  }

  rest(server, opts = {}) {
    const { binary = true, key, ...extra } = opts;
    return new Ably.Rest(baseOptions(server, binary, { key, ...extra }));
  }

  async closeAll() {
    await Promise.all(this.list.map((c) => closeClient(c)));
    this.list = [];
  }
}

/** Creates a ClientSet whose clients are closed when test `t` finishes. */
export function clients(t) {
  const set = new ClientSet();
  t.after(() => set.closeAll());
  return set;
}

const TERMINAL = new Set(['closed', 'failed']);

/** close() and wait (max 3 s) for CLOSED/FAILED; never throws. */
export async function closeClient(client) {
  try {
    const conn = client.connection;
    if (TERMINAL.has(conn.state)) return;
    const done = new Promise((resolve) => {
      const l = (sc) => {
        if (TERMINAL.has(sc.current)) {
          conn.off(l);
          resolve();
        }
      };
      conn.on(l);
    });
    client.close();
    await withTimeout(done, 3000, 'client close').catch(() => {});
  } catch {
    /* best effort */
  }
}

/**
 * Resolves with the ConnectionStateChange when the connection reaches
 * `state`; rejects on timeout or when it reaches one of `failOn` instead.
 * If the connection is already in `state`, resolves with null.
 */
export function waitForConnectionState(client, state, { timeoutMs = 8000, failOn } = {}) {
  const conn = client.connection;
  const bad = new Set(failOn || (state === 'connected' ? ['failed', 'closed', 'suspended'] : []));
  // ably-js updates connection.state synchronously but emits the state
  // events on process.nextTick: yield a macrotask so listeners have run.
  if (conn.state === state) return new Promise((r) => setImmediate(() => r(null)));
  if (bad.has(conn.state)) {
    return Promise.reject(
      new Error(`connection is ${conn.state} (wanted ${state}); reason: ${fmtErr(conn.errorReason)}`),
    );
  }
  let listener;
  const p = new Promise((resolve, reject) => {
    listener = (sc) => {
      if (sc.current === state) resolve(sc);
      else if (bad.has(sc.current)) {
        reject(new Error(`connection went ${sc.current} while waiting for ${state}; reason: ${fmtErr(sc.reason)}`));
      }
    };
    conn.on(listener);
  });
  return withTimeout(p, timeoutMs, `connection state ${state} (current ${conn.state})`).finally(() =>
    conn.off(listener),
  );
}

/** Resolves with the ChannelStateChange when the channel reaches `state`. */
export function waitForChannelState(channel, state, { timeoutMs = 8000 } = {}) {
  if (channel.state === state) return new Promise((r) => setImmediate(() => r(null)));
  let listener;
  const p = new Promise((resolve) => {
    listener = (sc) => {
      if (sc.current === state) resolve(sc);
    };
    channel.on(listener);
  });
  return withTimeout(p, timeoutMs, `channel ${channel.name} state ${state} (current ${channel.state})`).finally(
    () => channel.off(listener),
  );
}

/** A connected Realtime client (waits for CONNECTED). */
export async function connected(set, server, opts) {
  const client = set.realtime(server, opts);
  await waitForConnectionState(client, 'connected');
  return client;
}

export function fmtErr(e) {
  if (!e) return String(e);
  return `${e.code ?? ''}/${e.statusCode ?? ''} ${e.message ?? e}`;
}

/**
 * Subscribes `listener`-style and collects messages. `until(n)` resolves
 * once at least n messages arrived (rejects after timeout).
 */
export function collector(channel, { event } = {}) {
  const messages = [];
  const waiters = [];
  const listener = (msg) => {
    messages.push(msg);
    for (const w of waiters) if (messages.length >= w.n) w.resolve(messages);
  };
  const subscribed = event ? channel.subscribe(event, listener) : channel.subscribe(listener);
  return {
    messages,
    subscribed,
    listener,
    until(n, timeoutMs = 8000) {
      if (messages.length >= n) return Promise.resolve(messages);
      const p = new Promise((resolve) => waiters.push({ n, resolve }));
      return withTimeout(p, timeoutMs, `${n} messages on ${channel.name} (got ${messages.length})`);
    },
    stop() {
      channel.unsubscribe(listener);
    },
  };
}

/**
 * Drops the client's TCP connection without an Ably CLOSE and without a
 * WebSocket close frame (ws.terminate() destroys the socket), so the client
 * goes DISCONNECTED and reconnects with resume (RTN15a/RTN15b).
 */
export function dropConnection(client) {
  const cm = client.connection.connectionManager;
  const transport = cm.activeProtocol?.getTransport();
  const ws = transport?.wsConnection;
  if (ws && typeof ws.terminate === 'function') {
    ws.terminate();
    return 'terminate';
  }
  // Fallback (non-node transport): what ably-js's own tests do.
  cm.disconnectAllTransports();
  return 'disconnectAllTransports';
}

/**
 * Runs `fn(t, binary)` as two tests: "<name> [msgpack]" and "<name> [json]".
 */
export function bothProtocols(name, options, fn) {
  if (typeof options === 'function') {
    fn = options;
    options = {};
  }
  const opts = { timeout: 30_000, ...options };
  test(`${name} [msgpack]`, opts, (t) => fn(t, true));
  test(`${name} [json]`, opts, (t) => fn(t, false));
}

// ---------------------------------------------------------------------------
// Raw WebSocket (protocol-level tests)
// ---------------------------------------------------------------------------

export const ACTION = Object.freeze({
  HEARTBEAT: 0,
  ACK: 1,
  NACK: 2,
  CONNECT: 3,
  CONNECTED: 4,
  DISCONNECT: 5,
  DISCONNECTED: 6,
  CLOSE: 7,
  CLOSED: 8,
  ERROR: 9,
  ATTACH: 10,
  ATTACHED: 11,
  DETACH: 12,
  DETACHED: 13,
  PRESENCE: 14,
  MESSAGE: 15,
  SYNC: 16,
  AUTH: 17,
});

/** ably-js's own msgpack codec (what the SDK puts on the wire). */
export const msgpack = new Ably.Rest({ key: 'unused.unused:unused' })._MsgPack;

/**
 * Opens a raw `ws` WebSocket to the realtime endpoint. Text frames are parsed
 * as JSON, binary frames as msgpack (frames get `__binary: true`).
 * Returns {ws, frames, next(pred, ms), closed, send(obj|string), upgradeRefusal}.
 * `next` resolves with the first (queued or future) JSON frame matching pred.
 */
export function rawWs(server, query) {
  const qs = new URLSearchParams(query).toString();
  const ws = new WebSocket(`ws://${server.host}:${server.port}/?${qs}`);
  const frames = [];
  const waiters = [];
  const state = { upgradeRefusal: null, closeCode: null, error: null };
  const closed = new Promise((resolve) => {
    ws.on('close', (code, reason) => {
      state.closeCode = code;
      resolve({ code, reason: reason.toString() });
    });
  });
  const opened = new Promise((resolve, reject) => {
    ws.on('open', resolve);
    ws.on('unexpected-response', (req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => {
        state.upgradeRefusal = { status: res.statusCode, headers: res.headers, body };
        reject(
          new Error(
            `WebSocket upgrade refused with HTTP ${res.statusCode} (x-ably-errorcode=${res.headers['x-ably-errorcode']}): ${body}`,
          ),
        );
      });
    });
    ws.on('error', (err) => {
      state.error = err;
      reject(err);
    });
  });
  opened.catch(() => {});
  ws.on('message', (data, isBinary) => {
    let frame;
    try {
      frame = isBinary ? msgpack.decode(Buffer.from(data)) : JSON.parse(data.toString());
      if (frame === null || typeof frame !== 'object') frame = { unparsable: true, raw: data, isBinary };
      else if (isBinary) frame.__binary = true;
    } catch {
      frame = { unparsable: true, raw: data, isBinary };
    }
    frames.push(frame);
    for (const w of [...waiters]) {
      if (w.pred(frame)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(frame);
      }
    }
  });
  return {
    ws,
    frames,
    state,
    opened,
    closed,
    next(pred, ms = 5000, what = 'frame') {
      const found = frames.find(pred);
      if (found) return Promise.resolve(found);
      let w;
      const p = new Promise((resolve) => {
        w = { pred, resolve };
        waiters.push(w);
      });
      return withTimeout(
        Promise.race([
          p,
          closed.then((c) => {
            const again = frames.find(pred);
            if (again) return again;
            throw new Error(
              `socket closed (code ${c.code}) before ${what}; frames: ${JSON.stringify(frames).slice(0, 800)}`,
            );
          }),
        ]),
        ms,
        `${what}; frames so far: ${JSON.stringify(frames).slice(0, 800)}`,
      );
    },
    /** Sends a string as a text frame, a Buffer as a binary frame, an object as JSON text. */
    send(obj) {
      ws.send(typeof obj === 'string' || Buffer.isBuffer(obj) ? obj : JSON.stringify(obj));
    },
    /** Sends an object msgpack-encoded in a binary frame. */
    sendMsgpack(obj) {
      ws.send(Buffer.from(msgpack.encode(obj)));
    },
    terminate() {
      try {
        ws.terminate();
      } catch {
        /* ignore */
      }
    },
  };
}

export { Ably, WebSocket, assert, test };
