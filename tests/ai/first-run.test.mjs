// First run, as a new user meets it (issue 14): `switchboard serve` with an
// empty data directory creates the development app and prints its key; that
// key, as printed, runs
//   - examples/ai-chat (`npm run serve` against a running switchboard): a
//     prompt gets its whole streamed answer, which needs the agent's appends
//     on `conversations:` (93002 before the dev app had that namespace);
//   - the README's quick start, examples/quickstart/quickstart.mjs;
// and `switchboard apps --data DIR` shows the app and its key again.
// Also: the example's app server refuses to start, with the reason, on an
// app whose `conversations` namespace lacks mutableMessages.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import { readFileSync, symlinkSync, copyFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  REPO_ROOT, SERVER_BIN, ARTIFACTS_DIR, Ably, AIT, codec, withTimeout, waitUntil, uniqueId, transcript,
} from './lib/harness.mjs';
import { startServer, makeTempDir, createApp } from '../lib/switchboard.mjs';

const EXAMPLE = path.join(REPO_ROOT, 'examples', 'ai-chat');
const QUICKSTART = path.join(REPO_ROOT, 'examples', 'quickstart');
const here = path.dirname(fileURLToPath(import.meta.url));

const env = { data: null, server: null, devKey: null };

before(async () => {
  env.data = makeTempDir('switchboard-first-run-');
  env.server = await startServer({ data: env.data.dir, sandbox: false, label: 'first-run', artifactsDir: ARTIFACTS_DIR });
  env.devKey = /API key: (\S+)/.exec(env.server.stdout)?.[1];
});

after(async () => {
  try {
    await env.server?.stop();
  } finally {
    env.data?.cleanup();
  }
});

/** Runs a program to its end (20 s at most): {code, stdout, stderr}. */
function run(file, args, opts = {}) {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: 20_000, ...opts }, (err, stdout, stderr) =>
      resolve({ code: err ? (err.code ?? err.signal ?? 1) : 0, stdout, stderr }),
    );
  });
}

/**
 * Starts examples/ai-chat's app server the way its README says for a
 * switchboard you already run (ABLY_KEY, SWITCHBOARD_URL, `node server.mjs`).
 * Resolves with {url, proc, log, exited} once it prints its URL, or with
 * {exitedEarly} if it exits first.
 */
async function startExample(key, switchboardUrl) {
  const proc = spawn(process.execPath, [path.join(EXAMPLE, 'server.mjs')], {
    env: { ...process.env, ABLY_KEY: key, SWITCHBOARD_URL: switchboardUrl, PORT: '0', WORD_DELAY_MS: '5' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const app = { proc, log: '' };
  app.exited = new Promise((r) => proc.on('exit', (code, signal) => r({ code, signal })));
  proc.stderr.setEncoding('utf8').on('data', (d) => (app.log += d));
  const started = new Promise((resolve) => {
    proc.stdout.setEncoding('utf8').on('data', (d) => {
      app.log += d;
      const m = /ai-chat: open (\S+)/.exec(app.log);
      if (m) resolve({ url: m[1] });
    });
  });
  Object.assign(app, await withTimeout(Promise.race([started, app.exited.then((e) => ({ exitedEarly: e }))]), 20_000, 'the example app server to start'));
  return app;
}

async function stopExample(app) {
  if (app.proc.exitCode !== null || app.exitedEarly) return app.exitedEarly ?? (await app.exited);
  app.proc.kill('SIGTERM');
  return withTimeout(app.exited, 8000, 'the example app server to exit');
}

test('first start with an empty data directory prints the development app\'s key', () => {
  assert.match(env.server.stdout, /created development app "dev"/, env.server.tail());
  assert.match(env.devKey ?? '', /^dev\.[A-Za-z0-9_-]+:[A-Za-z0-9_-]{8,}$/, `a key was printed: ${env.server.stdout}`);
});

test('the development app serves examples/ai-chat: a prompt gets its whole streamed answer (no 93002 on conversations:)', { timeout: 60_000 }, async (t) => {
  const app = await startExample(env.devKey, env.server.baseUrl);
  t.after(async () => {
    const exit = await stopExample(app);
    assert.deepEqual(exit, { code: 0, signal: null }, `the example app server shut down cleanly:\n${app.log}`);
  });
  assert.ok(!app.exitedEarly, `the example app server exited at start (${JSON.stringify(app.exitedEarly)}):\n${app.log}`);

  // What the page does (src/app.mjs), in Node: log in, token auth through the
  // app server, a client session on conversations:<user>, a prompt, the agent.
  const user = uniqueId('newcomer');
  const login = await fetch(new URL('/login', app.url), {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user }),
  });
  assert.equal(login.status, 200);
  const cookie = login.headers.get('set-cookie').split(';')[0];
  const config = await (await fetch(new URL('/api/config', app.url))).json();
  const client = new Ably.Realtime({
    endpoint: config.endpoint, port: config.port, tls: config.tls, logLevel: 0,
    authCallback: async (_params, cb) => {
      try {
        const res = await fetch(new URL('/api/ably-token', app.url), { headers: { cookie } });
        cb(null, await res.text());
      } catch (e) {
        cb(e, null);
      }
    },
  });
  t.after(() => client.close());
  const session = AIT.createClientSession({ client, channelName: `${config.namespace}:${user}`, codec });
  t.after(() => session.close());
  await withTimeout(session.connect(), 10_000, 'client session connect');
  const prompt = 'is this thing on?';
  const turn = await session.view.send(codec.createUserMessage({ id: uniqueId('p'), role: 'user', text: prompt }));
  const res = await fetch(new URL('/api/agent', app.url), {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${client.auth.tokenDetails?.token}` },
    body: JSON.stringify(turn.toInvocation().toJSON()),
  });
  assert.equal(res.status, 202, `POST /api/agent: ${res.status} ${await res.text()}\n${app.log}`);
  const { scriptedAnswer } = await import(path.join(EXAMPLE, 'agent.mjs'));
  const want = scriptedAnswer(prompt, 60);
  await waitUntil(
    () =>
      transcript(session.view).some((m) => m.role === 'assistant' && m.done && m.text === want) &&
      session.view.runs().at(-1)?.status === 'complete',
    20_000,
    'the whole answer, and the run complete',
    () => `transcript: ${JSON.stringify(transcript(session.view))}\nruns: ${JSON.stringify(session.view.runs())}\nexample log:\n${app.log}`,
  );
  assert.doesNotMatch(app.log, /93002|failed|error/i, 'the example logged no error');
});

test('the README quick start (examples/quickstart/quickstart.mjs) runs as written with the printed key', async () => {
  // The README shows the whole file.
  const source = readFileSync(path.join(QUICKSTART, 'quickstart.mjs'), 'utf8');
  const readme = readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
  assert.ok(readme.includes('```js\n' + source + '```'), 'README.md shows examples/quickstart/quickstart.mjs verbatim');
  // Run it where `ably` resolves to the version its package.json pins (the
  // one this suite installs), as after `npm ci` in examples/quickstart.
  const pinned = JSON.parse(readFileSync(path.join(QUICKSTART, 'package.json'), 'utf8')).dependencies.ably;
  const ours = JSON.parse(readFileSync(path.join(here, 'node_modules', 'ably', 'package.json'), 'utf8')).version;
  assert.equal(ours, pinned, 'tests/ai pins the ably version the quick start pins');
  const dir = makeTempDir('switchboard-quickstart-');
  try {
    copyFileSync(path.join(QUICKSTART, 'quickstart.mjs'), path.join(dir.dir, 'quickstart.mjs'));
    symlinkSync(path.join(here, 'node_modules'), path.join(dir.dir, 'node_modules'));
    const r = await run(process.execPath, ['quickstart.mjs', env.devKey], {
      cwd: dir.dir,
      env: { ...process.env, SWITCHBOARD_PORT: String(env.server.port) },
    });
    assert.equal(r.code, 0, `quickstart exit ${r.code}: ${r.stderr}`);
    assert.equal(r.stdout, 'received: hello\n');
  } finally {
    dir.cleanup();
  }
});

test('`switchboard apps --data DIR` shows the development app and its key again', async () => {
  const r = await run(SERVER_BIN, ['apps', '--data', env.data.dir]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^app dev$/m);
  assert.ok(r.stdout.includes(`  key ${env.devKey} `), `the printed key is listed:\n${r.stdout}`);
  assert.match(r.stdout, /^ {2}namespace conversations .*"mutableMessages":true/m, r.stdout);
  assert.match(r.stdout, /^ {2}namespace persisted .*"persisted":true/m, r.stdout);
  // An empty or missing data directory says so.
  const empty = makeTempDir('switchboard-no-data-');
  try {
    const none = await run(SERVER_BIN, ['apps', '--data', empty.dir]);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /switchboard\.db/);
  } finally {
    empty.cleanup();
  }
  const bad = await run(SERVER_BIN, ['apps', '--bogus']);
  assert.equal(bad.code, 2);
});

test('examples/ai-chat refuses to start, with the reason, on an app whose conversations namespace lacks mutableMessages', { timeout: 30_000 }, async () => {
  const sandbox = await startServer({ label: 'first-run-sandbox', artifactsDir: ARTIFACTS_DIR });
  try {
    const plain = await createApp(sandbox, { keys: [{}] });
    const app = await startExample(plain.keys[0].keyStr, sandbox.baseUrl);
    const exit = await stopExample(app);
    assert.ok(app.exitedEarly, `the app server must not start:\n${app.log}`);
    assert.equal(exit.code, 1, app.log);
    assert.match(app.log, /93002/);
    assert.match(app.log, /mutableMessages/);
  } finally {
    await sandbox.stop();
  }
});
