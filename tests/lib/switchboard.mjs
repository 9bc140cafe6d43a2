// The server under test, for every Node suite (tests/integration, tests/ai,
// tests/client, tests/first-run): starts the real binary, waits for its
// "listening on" line, creates apps through the admin API, stops it with
// SIGTERM and fails on an unclean exit or a sanitizer report. Node built-ins
// only, so each suite's own node_modules (ably versions, ws, ...) stays its
// own business. Every wait has a timeout, so `node --test` always ends.
//
// Environment:
//   SWITCHBOARD_BIN   server binary (default <repo>/build/switchboard)
//   SW_TEST_VERBOSE   if set, server stdout/stderr are echoed to our stderr

import { spawn } from 'node:child_process';
import nodeHttp from 'node:http';
import { readFileSync, mkdirSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { before, after, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(here, '..', '..');
export const FIXTURES_DIR = path.join(REPO_ROOT, 'tests', 'fixtures');
export const SERVER_BIN = process.env.SWITCHBOARD_BIN || path.join(REPO_ROOT, 'build', 'switchboard');

const STARTUP_TIMEOUT_MS = 10_000;
const SHUTDOWN_GRACE_MS = 5_000;
const SANITIZER_PATTERNS = ['ERROR: AddressSanitizer', 'ERROR: LeakSanitizer', 'runtime error:', 'WARNING: ThreadSanitizer'];

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

let appSetupCache;
/**
 * The POST /apps body of the test app, tests/fixtures/app-setup.json (what
 * each key, namespace and presence member is for: tests/fixtures/README.md).
 * A fresh copy each call, so a test may change it.
 */
export function appSetup() {
  appSetupCache ??= readFileSync(path.join(FIXTURES_DIR, 'app-setup.json'), 'utf8');
  return JSON.parse(appSetupCache);
}

/** The key of `app` (a POST /apps answer) whose id is `id`, e.g. fixtureKey(app, 'channels'). */
export function fixtureKey(app, id) {
  const k = app.keys.find((x) => x.keyName === `${app.appId}.${id}`);
  assert.ok(k, `app ${app.appId} has no key "${id}" (keys: ${app.keys.map((x) => x.keyName).join(', ')})`);
  return k;
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

/** Polls `cond` every 20 ms until it returns truthy; throws (with `detail()` if given) after ms. */
export async function waitUntil(cond, ms, what, detail) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${ms} ms waiting for ${what}${detail ? `\n${detail()}` : ''}`);
    }
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

export function makeTempDir(prefix = 'switchboard-test-') {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

// ---------------------------------------------------------------------------
// Server process
// ---------------------------------------------------------------------------

export class ServerProcess {
  /** artifactsDir: where stop() writes the server's log (default tests/artifacts). */
  constructor(args, label, { artifactsDir = path.join(REPO_ROOT, 'tests', 'artifacts') } = {}) {
    this.args = args;
    this.label = label;
    this.artifactsDir = artifactsDir;
    this.stdout = '';
    this.stderr = '';
    this.exit = null; // {code, signal} once exited
    this.port = null;
    this.host = '127.0.0.1';
    this.scheme = 'http';
  }

  get baseUrl() {
    return `${this.scheme}://${this.host}:${this.port}`;
  }

  /** Spawns the binary and waits for the `listening on http(s)://...:<port>` line. */
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
        const m = /listening on (https?):\/\/([0-9.]+):(\d+)/.exec(this.stdout);
        if (m && this.port === null) {
          this.scheme = m[1]; // https with --tls-cert
          this.host = m[2];
          this.port = Number(m[3]);
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
    return `--- ${this.label} stdout (tail) ---\n${this.stdout.slice(-n)}\n--- ${this.label} stderr (tail) ---\n${this.stderr.slice(-n)}`;
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
      mkdirSync(this.artifactsDir, { recursive: true });
      const file = path.join(this.artifactsDir, `${this.label}-${this.proc?.pid ?? 'nopid'}.log`);
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
 * Starts `switchboard serve --listen 127.0.0.1:0`. Options:
 *   data: directory for --data (otherwise --memory)
 *   sandbox: pass --sandbox (default true)
 *   extraArgs: appended
 *   artifactsDir: where the server's log goes
 */
export async function startServer({ data, sandbox = true, extraArgs = [], label = 'switchboard', artifactsDir } = {}) {
  const args = ['serve', '--listen', '127.0.0.1:0'];
  if (data) args.push('--data', data);
  else args.push('--memory');
  if (sandbox) args.push('--sandbox');
  args.push(...extraArgs);
  return new ServerProcess(args, label, { artifactsDir }).start();
}

/**
 * Per-file server lifecycle for node:test: `setup()` in before (it starts
 * env.server and whatever else the suite needs), `teardown()` in after
 * (default: env.server.stop(), which fails on an unclean exit). Once the
 * server is dead the remaining tests fail at once instead of each timing
 * out, and a crash or sanitizer report is attributed to the test during
 * which it happened.
 */
export function serverLifecycle(env, { setup, teardown = () => env.server?.stop() }) {
  before(setup);
  beforeEach(() => {
    const s = env.server;
    if (s && s.exit !== null) {
      throw new Error(
        `server is not running (exited code=${s.exit.code} signal=${s.exit.signal})` +
          (s.sanitizerReport() ? `\nSANITIZER REPORT:\n${s.sanitizerReport()}` : `\n${s.tail(1500)}`),
      );
    }
  });
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
  after(teardown);
  return env;
}

// ---------------------------------------------------------------------------
// Raw HTTP and the admin API
// ---------------------------------------------------------------------------

export function basicAuth(keyStr) {
  return 'Basic ' + Buffer.from(keyStr).toString('base64');
}

/**
 * Raw HTTP against the server (node:http, no keep-alive so no idle socket
 * keeps the test process alive). `server` is a ServerProcess or a base URL.
 * Returns {status, headers, text, raw, body} where headers has a fetch-like
 * get(name) (and .raw) and body is the parsed JSON (if any).
 */
export function http(server, method, urlPath, { body, headers = {}, key, timeoutMs = 5000 } = {}) {
  const target = typeof server === 'string' ? new URL(server) : { hostname: server.host, port: server.port };
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
      { host: target.hostname, port: target.port, method, path: urlPath, headers: h, agent: false, timeout: timeoutMs },
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

/** POST /apps (default body: the test app, appSetup()); asserts 201 and returns the app. */
export async function createApp(server, body = appSetup()) {
  const res = await http(server, 'POST', '/apps', { body });
  assert.equal(res.status, 201, `POST /apps expected 201, got ${res.status}: ${res.text}`);
  assert.ok(res.body && typeof res.body.appId === 'string', `POST /apps body has no appId: ${res.text}`);
  assert.ok(Array.isArray(res.body.keys) && res.body.keys.length > 0, `POST /apps body has no keys: ${res.text}`);
  return res.body;
}

export async function deleteApp(server, appId) {
  return http(server, 'DELETE', `/apps/${encodeURIComponent(appId)}`);
}
