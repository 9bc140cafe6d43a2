// Integration-test harness for switchboard: starts the real server binary,
// creates the Ably test app through the admin API, builds real ably-js
// clients pointed at it, and offers small helpers that never hang (every
// awaited event has a timeout) so `node --test` always exits.
//
// Environment:
//   SWITCHBOARD_BIN   server binary (default <repo>/build/switchboard)
//   SW_SHARED_DIR     shared fixtures dir (default <repo>/../shared)
//   ABLY_LOG_LEVEL    ably-js logLevel for test clients (default 0 = silent)
//   SW_TEST_VERBOSE   if set, server stdout/stderr are echoed to our stderr

import { spawn } from 'node:child_process';
import nodeHttp from 'node:http';
import { readFileSync, mkdirSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test, before, after, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import Ably from 'ably';
import WebSocket from 'ws';

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(here, '..', '..', '..');
export const ARTIFACTS_DIR = path.resolve(here, '..', 'artifacts');

export const SERVER_BIN = process.env.SWITCHBOARD_BIN || path.join(REPO_ROOT, 'build', 'switchboard');
export const SHARED_DIR = process.env.SW_SHARED_DIR || path.resolve(REPO_ROOT, '..', 'shared');

const STARTUP_TIMEOUT_MS = 10_000;
const SHUTDOWN_GRACE_MS = 5_000;
const SANITIZER_PATTERNS = [
  'ERROR: AddressSanitizer',
  'ERROR: LeakSanitizer',
  'runtime error:',
  'WARNING: ThreadSanitizer',
];

// ---------------------------------------------------------------------------
// Fixture
// ---------------------------------------------------------------------------

let fixtureCache;
/** The parsed /work/shared/ably/test-app-setup.json. */
export function testAppSetup() {
  if (!fixtureCache) {
    const file = path.join(SHARED_DIR, 'ably', 'test-app-setup.json');
    fixtureCache = JSON.parse(readFileSync(file, 'utf8'));
  }
  return fixtureCache;
}

// ---------------------------------------------------------------------------
// Small async helpers
// ---------------------------------------------------------------------------

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Rejects with a descriptive error if `promise` doesn't settle within ms. */
export function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([Promise.resolve(promise), timeout]).finally(() => clearTimeout(timer));
}

/** Polls `cond` every 20 ms until it returns truthy; throws after ms. */
export async function waitUntil(cond, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(20);
  }
}

/** Settles a promise into {ok, value|error} (never rejects). */
export async function settle(promise) {
  try {
    return { ok: true, value: await promise };
  } catch (error) {
    return { ok: false, error };
  }
}

let uniq = 0;
/** A channel name unique across test runs and tests. */
export function uniqueChannel(prefix = 'ch') {
  uniq += 1;
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${uniq}`;
}

// ---------------------------------------------------------------------------
// Server process
// ---------------------------------------------------------------------------

export class ServerProcess {
  constructor(args, label) {
    this.args = args;
    this.label = label;
    this.stdout = '';
    this.stderr = '';
    this.exit = null; // {code, signal} once exited
    this.port = null;
    this.host = '127.0.0.1';
  }

  get baseUrl() {
    return `http://${this.host}:${this.port}`;
  }

  /** Spawns the binary and waits for the `listening on http://...:<port>` line. */
  async start() {
    this.proc = spawn(SERVER_BIN, this.args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.exited = new Promise((resolve) => {
      this.proc.on('exit', (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
      });
    });
    const spawnError = new Promise((_, reject) => {
      this.proc.on('error', (err) =>
        reject(new Error(`cannot spawn ${SERVER_BIN} (set SWITCHBOARD_BIN or build the server): ${err.message}`)),
      );
    });
    const verbose = !!process.env.SW_TEST_VERBOSE;
    this.proc.stderr.setEncoding('utf8');
    this.proc.stderr.on('data', (d) => {
      this.stderr += d;
      if (verbose) process.stderr.write(`[${this.label} stderr] ${d}`);
    });
    this.proc.stdout.setEncoding('utf8');
    const listening = new Promise((resolve, reject) => {
      this.proc.stdout.on('data', (d) => {
        this.stdout += d;
        if (verbose) process.stderr.write(`[${this.label} stdout] ${d}`);
        const m = /listening on http:\/\/([0-9.]+):(\d+)/.exec(this.stdout);
        if (m && this.port === null) {
          this.host = m[1];
          this.port = Number(m[2]);
          resolve();
        }
      });
      this.exited.then((e) =>
        reject(new Error(`server exited before listening (code=${e.code} signal=${e.signal})\n${this.tail()}`)),
      );
    });
    try {
      await withTimeout(Promise.race([listening, spawnError]), STARTUP_TIMEOUT_MS, `"listening on" from ${SERVER_BIN}`);
    } catch (err) {
      this.killHard();
      await withTimeout(this.exited, 2000, 'server exit').catch(() => {});
      this.writeArtifact();
      err.message += `\n${this.tail()}`;
      throw err;
    }
    return this;
  }

  tail(n = 4000) {
    return `--- server stdout (tail) ---\n${this.stdout.slice(-n)}\n--- server stderr (tail) ---\n${this.stderr.slice(-n)}`;
  }

  /** Sanitizer findings in stderr, or null. */
  sanitizerReport() {
    const hit = SANITIZER_PATTERNS.find((p) => this.stderr.includes(p));
    if (!hit) return null;
    const at = this.stderr.indexOf(hit);
    return this.stderr.slice(Math.max(0, at - 200), at + 6000);
  }

  killHard() {
    if (this.exit === null) {
      try {
        this.proc.kill('SIGKILL');
      } catch {
        /* already gone */
      }
    }
  }

  writeArtifact() {
    try {
      mkdirSync(ARTIFACTS_DIR, { recursive: true });
      const file = path.join(ARTIFACTS_DIR, `${this.label}-${this.proc?.pid ?? 'nopid'}.log`);
      writeFileSync(
        file,
        `args: ${JSON.stringify(this.args)}\nexit: ${JSON.stringify(this.exit)}\n${this.tail(1 << 20)}\n`,
      );
      return file;
    } catch {
      return null;
    }
  }

  /**
   * SIGTERM, wait up to 5 s (then SIGKILL). Throws if the process had
   * already died, exited non-zero, needed SIGKILL, or a sanitizer reported.
   * Returns {code, signal, elapsedMs}.
   */
  async stop({ allowAlreadyExited = false } = {}) {
    const problems = [];
    if (this.exit !== null && !allowAlreadyExited) {
      problems.push(`server had already exited before stop (code=${this.exit.code} signal=${this.exit.signal})`);
    }
    const t0 = Date.now();
    if (this.exit === null) {
      this.proc.kill('SIGTERM');
      let timer;
      const grace = new Promise((r) => {
        timer = setTimeout(() => r(null), SHUTDOWN_GRACE_MS);
      });
      const res = await Promise.race([this.exited, grace]);
      clearTimeout(timer);
      if (res === null) {
        problems.push(`server did not exit within ${SHUTDOWN_GRACE_MS} ms of SIGTERM; sent SIGKILL`);
        this.killHard();
        await withTimeout(this.exited, 5000, 'exit after SIGKILL').catch(() => {});
      }
    }
    const elapsedMs = Date.now() - t0;
    const exit = this.exit || { code: null, signal: null };
    if (exit.code !== 0) problems.push(`server exit status: code=${exit.code} signal=${exit.signal} (expected code 0)`);
    const san = this.sanitizerReport();
    if (san) problems.push(`SANITIZER REPORT in server stderr:\n${san}`);
    const artifact = this.writeArtifact();
    if (problems.length) {
      throw new Error(`${this.label}: ${problems.join('\n')}\n(log: ${artifact})\n${this.tail()}`);
    }
    return { ...exit, elapsedMs };
  }
}

/**
 * Starts `switchboard serve`. Options:
 *   data: directory for --data (otherwise --memory)
 *   sandbox: pass --sandbox (default true)
 *   extraArgs: appended
 */
export async function startServer({ data, sandbox = true, extraArgs = [], label = 'switchboard' } = {}) {
  const args = ['serve', '--listen', '127.0.0.1:0'];
  if (data) args.push('--data', data);
  else args.push('--memory');
  if (sandbox) args.push('--sandbox');
  args.push(...extraArgs);
  const s = new ServerProcess(args, label);
  return s.start();
}

export function makeTempDir(prefix = 'switchboard-it-') {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * Per-file fixture: `const env = useServer()` at module top level registers
 * before/after hooks that start a --memory --sandbox server and create the
 * test app. The after hook stops the server and fails if it exits unclean.
 */
export function useServer(opts = {}) {
  const env = { server: null, app: null };
  before(async () => {
    env.server = await startServer({ label: opts.label || 'switchboard', ...opts });
    env.app = await createApp(env.server);
  });
  // Once the server is dead, fail the remaining tests at once instead of
  // letting each one time out.
  beforeEach(() => {
    const s = env.server;
    if (s && s.exit !== null) {
      throw new Error(
        `server is not running (exited code=${s.exit.code} signal=${s.exit.signal})` +
          (s.sanitizerReport() ? `\nSANITIZER REPORT:\n${s.sanitizerReport()}` : `\n${s.tail(1500)}`),
      );
    }
  });
  // Attribute a crash or a sanitizer report to the test during which it happened.
  afterEach(() => {
    const s = env.server;
    if (!s) return;
    const san = s.sanitizerReport();
    if (san && !s.reportedSanitizer) {
      s.reportedSanitizer = true;
      throw new Error(`SANITIZER REPORT in server stderr during this test:\n${san}`);
    }
    if (s.exit !== null && !s.reportedExit) {
      s.reportedExit = true;
      throw new Error(`server died during this test (code=${s.exit.code} signal=${s.exit.signal})\n${s.tail()}`);
    }
  });
  after(async () => {
    if (env.server) await env.server.stop();
  });
  return env;
}

// ---------------------------------------------------------------------------
// Admin / raw HTTP
// ---------------------------------------------------------------------------

export function basicAuth(keyStr) {
  return 'Basic ' + Buffer.from(keyStr).toString('base64');
}

/**
 * Raw HTTP against the server (node:http, no keep-alive so no idle socket
 * keeps the test process alive). Returns {status, headers, text, body}
 * where headers has a fetch-like get(name) and body is the parsed JSON (if any).
 */
export function http(server, method, urlPath, { body, headers = {}, key, timeoutMs = 5000 } = {}) {
  const h = { ...headers };
  if (key) h.authorization = basicAuth(key);
  let payload;
  if (body !== undefined) {
    payload = typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body);
    if (!h['content-type']) h['content-type'] = 'application/json';
    h['content-length'] = Buffer.byteLength(payload);
  }
  return new Promise((resolve, reject) => {
    const req = nodeHttp.request(
      { host: server.host, port: server.port, method, path: urlPath, headers: h, agent: false, timeout: timeoutMs },
      (res) => {
        const chunks = [];
        res.on('data', (d) => chunks.push(d));
        res.on('end', () => {
          const raw = Buffer.concat(chunks);
          const text = raw.toString('utf8');
          let json;
          try {
            json = text ? JSON.parse(text) : undefined;
          } catch {
            json = undefined;
          }
          const hdrs = res.headers;
          resolve({
            status: res.statusCode,
            headers: { get: (n) => (hdrs[n.toLowerCase()] === undefined ? null : String(hdrs[n.toLowerCase()])), raw: hdrs },
            text,
            raw,
            body: json,
          });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`HTTP ${method} ${urlPath} timed out after ${timeoutMs} ms`)));
    req.on('error', reject);
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

/** POST /apps with the fixture's post_apps body; asserts 201 and returns the app. */
export async function createApp(server, body = testAppSetup().post_apps) {
  const res = await http(server, 'POST', '/apps', { body });
  assert.equal(res.status, 201, `POST /apps expected 201, got ${res.status}: ${res.text}`);
  assert.ok(res.body && typeof res.body.appId === 'string', `POST /apps body has no appId: ${res.text}`);
  assert.ok(Array.isArray(res.body.keys) && res.body.keys.length > 0, `POST /apps body has no keys: ${res.text}`);
  return res.body;
}

export async function deleteApp(server, appId) {
  return http(server, 'DELETE', `/apps/${encodeURIComponent(appId)}`);
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
