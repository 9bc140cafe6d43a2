// Server logs (issue 14, item 5): `--log-format json` writes one JSON object
// a line (time, level, event, and connectionId / app / code where they
// apply), the config file's "logFormat" does the same, plain text stays the
// default, and no credential the clients used ever reaches the output: key
// secrets, Basic headers, Ably tokens, JWTs (valid and forged), the admin
// key, connectionKeys, keys made by POST /apps.
//
// Traffic comes from the real ably SDK (RTN14a refusals, RSA8 token and JWT
// auth, RTN15 resume) plus raw HTTP for the admin API.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  startServer,
  SERVER_BIN,
  ClientSet,
  connected,
  waitForConnectionState,
  waitForChannelState,
  collector,
  dropConnection,
  http,
  waitUntil,
  uniqueChannel,
} from './lib/server.mjs';
import { ablyJwt, writeConfig, flipChar, bearer } from './lib/auth.mjs';

const APP = 'logsapp';
const KEYS = {
  root: { keyName: `${APP}.root`, keySecret: 'root-secret-7f3a9c1e5b2d4f60' },
  sub: { keyName: `${APP}.sub`, keySecret: 'sub-secret-0e8d6b4a2c1f3e57', capability: { '*': ['subscribe'] } },
};
const keyStr = (k) => `${k.keyName}:${k.keySecret}`;
const ADMIN_KEY = 'admin-key-5c7e9a1b3d2f4e6a8b0c';
const WRONG_SECRET = 'wrong-secret-9a8b7c6d5e4f3a2b';
const WRONG_ADMIN = 'wrong-admin-1f2e3d4c5b6a7980';

function appConfig(extra = {}) {
  return {
    adminKey: ADMIN_KEY,
    apps: [
      {
        id: APP,
        keys: Object.values(KEYS).map((k) => ({
          id: k.keyName.split('.')[1],
          secret: k.keySecret,
          ...(k.capability ? { capability: k.capability } : {}),
        })),
      },
    ],
    ...extra,
  };
}

const ISO_MS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const LEVELS = new Set(['error', 'warn', 'info', 'debug']);

/** Parses every stderr line as JSON and checks the fields every line has. */
function parseJsonLines(stderr) {
  const lines = stderr.split('\n').filter((l) => l.length);
  assert.ok(lines.length > 0, 'the server logged nothing');
  return lines.map((l) => {
    let v;
    try {
      v = JSON.parse(l);
    } catch (e) {
      assert.fail(`log line is not JSON (${e.message}): ${l}`);
    }
    assert.equal(typeof v, 'object', l);
    assert.match(v.time, ISO_MS, l);
    assert.ok(!Number.isNaN(Date.parse(v.time)), l);
    assert.ok(LEVELS.has(v.level), l);
    assert.equal(typeof v.event, 'string', l);
    assert.equal(typeof v.msg, 'string', l);
    for (const f of ['connectionId', 'app']) if (f in v) assert.equal(typeof v[f], 'string', l);
    if ('code' in v) assert.ok(Number.isInteger(v.code) && v.code >= 10000 && v.code < 100000, l);
    return v;
  });
}

/** Fails if any secret (or its base64 form) occurs anywhere in text. */
function assertNoSecrets(text, secrets) {
  for (const s of secrets) {
    assert.ok(typeof s === 'string' && s.length >= 8, `secret too short to search for: ${s}`);
    for (const form of [s, Buffer.from(s).toString('base64'), Buffer.from(s).toString('base64url')]) {
      assert.ok(!text.includes(form), `a secret appears in the server output: ${form}`);
    }
  }
}

/** Every part of a JWT or token long enough to be recognisable. */
const tokenParts = (t) => [t, ...t.split(/[.:]/).filter((p) => p.length >= 16)];

async function failsToConnect(set, server, opts) {
  const client = set.realtime(server, { binary: false, ...opts });
  const sc = await waitForConnectionState(client, 'failed', { failOn: ['connected'], timeoutMs: 10_000 });
  return sc?.reason ?? client.connection.errorReason;
}

test('--log-format json --verbose: every line is a JSON object with time, level, event; connection events carry connectionId, app and code; RTN14a/RSA8/RTN15 traffic leaks no secret', { timeout: 90_000 }, async () => {
  const cfg = writeConfig(appConfig());
  const server = await startServer({
    sandbox: false,
    label: 'logs-json',
    extraArgs: ['--config', cfg.file, '--log-format', 'json', '--verbose'],
  });
  const set = new ClientSet();
  const secrets = [ADMIN_KEY, WRONG_ADMIN, WRONG_SECRET];
  for (const k of Object.values(KEYS)) secrets.push(k.keySecret, keyStr(k));
  const seen = { opened: [], resumed: null, refusedCodes: [] };
  try {
    // A key connection that publishes, subscribes, drops its transport and resumes (RTN15).
    const ch = uniqueChannel('logs');
    const a = await connected(set, server, { key: keyStr(KEYS.root), binary: true });
    seen.opened.push(a.connection.id);
    secrets.push(a.connection.key);
    const chan = a.channels.get(ch);
    const got = collector(chan);
    await got.subscribed;
    await chan.publish('greeting', 'hello');
    await got.until(1);
    const before = a.connection.id;
    dropConnection(a);
    await waitForConnectionState(a, 'disconnected', { failOn: [] }).catch(() => {});
    await waitForConnectionState(a, 'connected', { timeoutMs: 10_000 });
    assert.equal(a.connection.id, before, 'RTN15c6 resume keeps the connection id');
    seen.resumed = before;
    secrets.push(a.connection.key);
    await waitForChannelState(chan, 'attached');

    // RTN14a: a wrong key secret.
    let r = await failsToConnect(set, server, { key: `${KEYS.root.keyName}:${WRONG_SECRET}` });
    assert.equal(r?.code, 40101, `wrong secret: ${JSON.stringify(r)}`);
    seen.refusedCodes.push(40101);
    secrets.push(`${KEYS.root.keyName}:${WRONG_SECRET}`);

    // An Ably token (RSA8) that works, and a tampered copy that does not.
    const rest = set.rest(server, { key: keyStr(KEYS.root), binary: false });
    const td = await rest.auth.requestToken();
    secrets.push(...tokenParts(td.token));
    const t = await connected(set, server, { token: td.token, binary: false });
    seen.opened.push(t.connection.id);
    secrets.push(t.connection.key);
    const badToken = flipChar(td.token);
    secrets.push(...tokenParts(badToken));
    r = await failsToConnect(set, server, { token: badToken });
    assert.ok(r?.code >= 40100 && r?.code < 40200, `bad token: ${JSON.stringify(r)}`);

    // A JWT signed with the key secret works; one signed with another secret does not.
    const good = ablyJwt(KEYS.sub, { clientId: 'jwt-user', capability: { '*': ['subscribe'] } });
    secrets.push(...tokenParts(good));
    const j = await connected(set, server, { token: good, binary: true });
    seen.opened.push(j.connection.id);
    secrets.push(j.connection.key);
    const forged = ablyJwt(KEYS.sub, { secret: WRONG_SECRET });
    secrets.push(...tokenParts(forged));
    r = await failsToConnect(set, server, { token: forged });
    assert.ok(r?.code >= 40100 && r?.code < 40200, `forged JWT: ${JSON.stringify(r)}`);

    // REST refusals: a wrong Basic key, a forged JWT as Bearer, a wrong admin key.
    let res = await http(server, 'GET', `/channels/${ch}/messages`, { key: `${KEYS.sub.keyName}:${WRONG_SECRET}` });
    assert.equal(res.status, 401, res.text);
    res = await http(server, 'GET', `/channels/${ch}/messages`, { headers: { authorization: bearer(forged) } });
    assert.equal(res.status, 401, res.text);
    res = await http(server, 'POST', '/apps', { body: { keys: [{}] }, headers: { authorization: `Bearer ${WRONG_ADMIN}` } });
    assert.equal(res.status, 401, res.text);
    // The right admin key: the new app's key secret must not be logged either.
    res = await http(server, 'POST', '/apps', { body: { keys: [{}] }, headers: { authorization: `Bearer ${ADMIN_KEY}` } });
    assert.equal(res.status, 201, res.text);
    for (const k of res.body.keys) secrets.push(k.keySecret, k.keyStr);

    // SIGHUP is logged and ignored.
    server.proc.kill('SIGHUP');
    await waitUntil(() => server.stderr.includes('"server.reload"'), 5000, 'the SIGHUP log line');
    assert.equal(server.exit, null, 'SIGHUP must not end the server');
    const ok = await connected(set, server, { key: keyStr(KEYS.sub), binary: false });
    seen.opened.push(ok.connection.id);
    secrets.push(ok.connection.key);
  } finally {
    await set.closeAll();
    await server.stop();
    cfg.cleanup();
  }

  // stdout holds only the listening line (no dev app: the config has apps).
  for (const l of server.stdout.split('\n').filter(Boolean)) assert.match(l, /^listening on http:\/\//);
  const logs = parseJsonLines(server.stderr);
  const ev = (name) => logs.filter((l) => l.event === name);
  for (const id of seen.opened) {
    const o = ev('conn.opened').find((l) => l.connectionId === id);
    assert.ok(o, `conn.opened for ${id}`);
    assert.equal(o.app, APP);
    assert.equal(o.level, 'debug');
  }
  assert.ok(ev('conn.transport_lost').some((l) => l.connectionId === seen.resumed && l.app === APP));
  assert.ok(ev('conn.resumed').some((l) => l.connectionId === seen.resumed && l.app === APP));
  assert.ok(ev('conn.closed').some((l) => seen.opened.includes(l.connectionId)), 'conn.closed after close()');
  const refused = ev('conn.refused');
  assert.ok(refused.length >= 3, `three refused connections, got ${JSON.stringify(refused)}`);
  for (const l of refused) {
    assert.equal(l.level, 'info');
    assert.ok(l.code >= 40000 && l.code < 50000, JSON.stringify(l));
  }
  assert.ok(refused.some((l) => l.code === 40101), 'the wrong secret refused with 40101');
  const httpRefused = ev('http.error').filter((l) => l.level === 'info');
  assert.ok(httpRefused.length >= 3, `three refused HTTP requests: ${JSON.stringify(ev('http.error'))}`);
  assert.ok(ev('server.reload').length === 1 && ev('server.signal').length === 1);

  assertNoSecrets(server.stdout + server.stderr, secrets);
});

test('"logFormat": "json" in the config file; text by default; a bad value is refused', { timeout: 30_000 }, async () => {
  // The config key alone.
  let cfg = writeConfig(appConfig({ logFormat: 'json' }));
  let server = await startServer({ sandbox: false, label: 'logs-cfg', extraArgs: ['--config', cfg.file] });
  const set = new ClientSet();
  const secrets = [ADMIN_KEY, `${KEYS.root.keyName}:${WRONG_SECRET}`];
  try {
    const r = await failsToConnect(set, server, { key: `${KEYS.root.keyName}:${WRONG_SECRET}` });
    assert.equal(r?.code, 40101);
    server.proc.kill('SIGHUP');
    await waitUntil(() => server.stderr.includes('"server.reload"'), 5000, 'the SIGHUP log line');
  } finally {
    await set.closeAll();
    await server.stop();
    cfg.cleanup();
  }
  let logs = parseJsonLines(server.stderr);
  assert.ok(logs.some((l) => l.event === 'conn.refused' && l.code === 40101 && l.level === 'info'));
  assert.ok(!logs.some((l) => l.level === 'debug'), 'no debug lines without --verbose');
  assertNoSecrets(server.stdout + server.stderr, secrets);

  // The default: text lines, "TIME LEVEL message key=value..."; --log-format text overrides the file.
  cfg = writeConfig(appConfig({ logFormat: 'json' }));
  server = await startServer({
    sandbox: false,
    label: 'logs-text',
    extraArgs: ['--config', cfg.file, '--log-format', 'text'],
  });
  try {
    const r = await failsToConnect(set, server, { key: `${KEYS.root.keyName}:${WRONG_SECRET}` });
    assert.equal(r?.code, 40101);
    await waitUntil(() => server.stderr.includes('code=40101'), 5000, 'the refusal log line');
  } finally {
    await set.closeAll();
    await server.stop();
    cfg.cleanup();
  }
  const lines = server.stderr.split('\n').filter(Boolean);
  for (const l of lines) assert.match(l, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (error|warn|info|debug) /);
  assert.ok(lines.some((l) => / info connection refused code=40101$/.test(l)), lines.join('\n'));
  assertNoSecrets(server.stdout + server.stderr, secrets);

  // A bad value, in the file or on the command line: exit 2 with a message, before listening.
  cfg = writeConfig(appConfig({ logFormat: 'xml' }));
  try {
    let p = spawnSync(SERVER_BIN, ['serve', '--memory', '--listen', '127.0.0.1:0', '--config', cfg.file], {
      encoding: 'utf8',
      timeout: 10_000,
    });
    assert.equal(p.status, 2, p.stderr);
    assert.match(p.stderr, /logFormat must be text or json/);
    p = spawnSync(SERVER_BIN, ['serve', '--memory', '--listen', '127.0.0.1:0', '--log-format', 'xml'], {
      encoding: 'utf8',
      timeout: 10_000,
    });
    assert.equal(p.status, 2, p.stderr);
    assert.match(p.stderr, /--log-format/);
  } finally {
    cfg.cleanup();
  }
});
