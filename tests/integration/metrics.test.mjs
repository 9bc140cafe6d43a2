// Metrics and health (issue 14, item 4): GET /metrics in the Prometheus text
// format, parsed by a strict parser (lib/prometheus.mjs) and checked against
// the traffic each test drives with the real ably SDK: connections opened
// (RTN4) and resumed (RTN15), messages published (RTL6, RSL1) and delivered,
// bytes, auth failures by code (RTN14a 40101, 40160 NACKs), slow consumer
// disconnects (42916), and the storage commit latency histogram. Access:
// /metrics takes the admin key on the main listener and nothing on the
// --metrics-listen one, which serves nothing else. /healthz and /readyz; a
// /readyz that really writes (503 with an Ably error while another process
// holds the database's write lock). The Grafana dashboard in contrib/ names
// only metrics the server exposes, and docs/operations.md lists them all.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import {
  startServer,
  makeTempDir,
  ClientSet,
  connected,
  collector,
  http,
  rawWs,
  waitForConnectionState,
  waitUntil,
  withTimeout,
  sleep,
  uniqueChannel,
  fmtErr,
  REPO_ROOT,
  Ably,
} from './lib/server.mjs';
import { writeConfig } from './lib/auth.mjs';
import { parsePrometheus, sampleValue } from './lib/prometheus.mjs';

const APP = 'metricsapp';
const KEYS = {
  root: { keyName: `${APP}.root`, keySecret: 'root-secret-4b8e2d6f1a3c5e79' },
  sub: { keyName: `${APP}.sub`, keySecret: 'sub-secret-9d1f3b5a7c2e4680', capability: { '*': ['subscribe'] } },
};
const keyStr = (k) => `${k.keyName}:${k.keySecret}`;
const ADMIN_KEY = 'metrics-admin-key-6e0a2c4b8d1f3e57';
// Small, so that a paused reader becomes a slow consumer after a few MB
// (what the kernel's socket buffers hold) instead of many.
const MAX_OUTBOUND = 256 * 1024;

function config(extra = {}) {
  return {
    adminKey: ADMIN_KEY,
    limits: { maxOutboundBytes: MAX_OUTBOUND },
    apps: [
      {
        id: APP,
        namespaces: [{ id: 'mut', mutableMessages: true }],
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

/** The metrics listener's address from the server's "metrics on http://..." line. */
function metricsAddr(server) {
  const m = /metrics on http:\/\/([0-9.]+):(\d+)\/metrics/.exec(server.stdout);
  assert.ok(m, `the server printed no "metrics on" line:\n${server.stdout}`);
  return { host: m[1], port: Number(m[2]) };
}

const env = { server: null, metrics: null, tmp: null, cfg: null };

before(async () => {
  env.tmp = makeTempDir('switchboard-metrics-');
  env.cfg = writeConfig(config());
  env.server = await startServer({
    data: env.tmp.dir,
    sandbox: false,
    label: 'metrics',
    extraArgs: ['--config', env.cfg.file, '--metrics-listen', '127.0.0.1:0'],
  });
  env.metrics = metricsAddr(env.server);
});

after(async () => {
  try {
    if (env.server) await env.server.stop();
  } finally {
    env.cfg?.cleanup();
    env.tmp?.cleanup();
  }
});

/** GET /metrics on the metrics listener, parsed strictly. */
async function scrape() {
  const res = await http(env.metrics, 'GET', '/metrics');
  assert.equal(res.status, 200, res.text);
  return parsePrometheus(res.text);
}

const v = (fams, name, labels) => sampleValue(fams, name, labels) ?? 0;
const delta = (a, b, name, labels) => v(b, name, labels) - v(a, name, labels);

/** Every auth failure series as {code: value}. */
function authFailures(fams) {
  const out = {};
  for (const s of fams.get('switchboard_auth_failures_total')?.samples ?? []) out[s.labels.code] = s.value;
  return out;
}

function authDelta(a, b) {
  const before = authFailures(a), after = authFailures(b), out = {};
  for (const code of new Set([...Object.keys(before), ...Object.keys(after)])) {
    const d = (after[code] ?? 0) - (before[code] ?? 0);
    if (d) out[code] = d;
  }
  return out;
}

function expectAblyError(res, code, status, what) {
  assert.equal(res.status, status, `${what}: HTTP status (${res.text})`);
  assert.equal(res.body?.error?.code, code, `${what}: error.code (${res.text})`);
  assert.equal(res.body?.error?.statusCode, status, `${what}: error.statusCode`);
  assert.equal(typeof res.body?.error?.message, 'string', `${what}: error.message`);
  assert.equal(res.headers.get('x-ably-errorcode'), String(code), `${what}: X-Ably-ErrorCode`);
  assert.ok(res.headers.get('x-ably-errormessage'), `${what}: X-Ably-ErrorMessage`);
}

test('GET /metrics needs the admin key on the main listener and nothing on --metrics-listen, which serves only /metrics, /healthz and /readyz', async () => {
  const s = env.server;
  expectAblyError(await http(s, 'GET', '/metrics'), 40101, 401, 'no credentials');
  expectAblyError(await http(s, 'GET', '/metrics', { headers: { authorization: 'Bearer not-the-admin-key' } }), 40101, 401, 'wrong admin key');
  expectAblyError(await http(s, 'GET', '/metrics', { key: keyStr(KEYS.root) }), 40101, 401, 'an app key is not the admin key');
  const ok = await http(s, 'GET', '/metrics', { headers: { authorization: `Bearer ${ADMIN_KEY}` } });
  assert.equal(ok.status, 200, ok.text);
  assert.match(ok.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  const fams = parsePrometheus(ok.text);
  assert.equal(fams.get('switchboard_build_info')?.type, 'gauge');

  const m = await http(env.metrics, 'GET', '/metrics');
  assert.equal(m.status, 200, m.text);
  assert.match(m.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  parsePrometheus(m.text);
  expectAblyError(await http(env.metrics, 'POST', '/metrics', { body: {} }), 40500, 405, 'POST /metrics');

  for (const target of [s, env.metrics]) {
    const h = await http(target, 'GET', '/healthz');
    assert.equal(h.status, 200, h.text);
    assert.deepEqual(h.body, { status: 'ok' });
    const r = await http(target, 'GET', '/readyz');
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body, { status: 'ready' });
  }

  // Nothing else is reachable through the metrics listener, credentials or not.
  expectAblyError(await http(env.metrics, 'GET', '/time'), 40400, 404, 'GET /time on the metrics listener');
  expectAblyError(
    await http(env.metrics, 'POST', `/channels/${uniqueChannel('m')}/messages`, { key: keyStr(KEYS.root), body: { name: 'x', data: 'y' } }),
    40400, 404, 'REST publish on the metrics listener');
  expectAblyError(
    await http(env.metrics, 'POST', '/apps', { headers: { authorization: `Bearer ${ADMIN_KEY}` }, body: {} }),
    40400, 404, 'admin API on the metrics listener');
  const ws = rawWs(env.metrics, { key: keyStr(KEYS.root), format: 'json' });
  await assert.rejects(withTimeout(ws.opened, 5000, 'upgrade refusal'));
  ws.terminate();
  assert.equal(ws.state.upgradeRefusal?.status, 404, `WebSocket upgrade on the metrics listener: ${JSON.stringify(ws.state)}`);
  assert.equal(ws.state.upgradeRefusal?.headers['x-ably-errorcode'], '40400');
  // And the main listener still serves everything else.
  assert.equal((await http(s, 'GET', '/time')).status, 200);
});

test('counters move by exactly the traffic: RTN4 connections, RTL6/RSL1 publishes and deliveries, RTN14a 40101 and 40160 NACK auth failures, bytes, commit latency histogram', { timeout: 60_000 }, async (t) => {
  const c = new ClientSet();
  t.after(() => c.closeAll());
  const N = 5;
  const PAYLOAD = 'p'.repeat(1000);
  const name = uniqueChannel('metrics');
  const a = await scrape();

  const [sub1, sub2, pub] = await Promise.all([
    connected(c, env.server, { key: keyStr(KEYS.root), binary: true }),
    connected(c, env.server, { key: keyStr(KEYS.root), binary: false }),
    connected(c, env.server, { key: keyStr(KEYS.root), binary: true, echoMessages: false }),
  ]);
  const col1 = collector(sub1.channels.get(name));
  const col2 = collector(sub2.channels.get(name));
  await withTimeout(Promise.all([col1.subscribed, col2.subscribed]), 5000, 'subscribers attached');
  const mid = await scrape();
  assert.equal(delta(a, mid, 'switchboard_connections', { state: 'connected' }), 3, 'three connected');
  assert.equal(delta(a, mid, 'switchboard_connections_opened_total'), 3);
  assert.equal(delta(a, mid, 'switchboard_channel_attachments'), 2, 'two attachments');
  assert.ok(v(mid, 'switchboard_channels', { state: 'attached' }) >= 1);

  // One at a time, each awaited: one storage transaction each.
  const pch = pub.channels.get(name);
  for (let i = 0; i < N; i++) await pch.publish('rt', `${i}:${PAYLOAD}`);
  const rest = c.rest(env.server, { key: keyStr(KEYS.root) });
  await rest.channels.get(name).publish('rest', `rest:${PAYLOAD}`);
  await Promise.all([col1.until(N + 1, 8000), col2.until(N + 1, 8000)]);

  // Auth failures: a wrong secret over realtime and over REST (40101), a
  // publish the key's capability does not allow (40160 NACK).
  const bad = c.realtime(env.server, { key: `${KEYS.root.keyName}:wrong-secret-0000000000` });
  const failed = await waitForConnectionState(bad, 'failed', { failOn: ['connected'] }).catch((e) => e);
  assert.equal(bad.connection.errorReason?.code, 40101, `bad key: ${fmtErr(bad.connection.errorReason)} ${failed?.message ?? ''}`);
  const badRest = c.rest(env.server, { key: `${KEYS.root.keyName}:wrong-secret-0000000000` });
  const restErr = await badRest.channels.get(name).publish('x', 'y').then(() => null, (e) => e);
  assert.equal(restErr?.code, 40101, `REST with a bad key: ${fmtErr(restErr)}`);
  const subOnly = await connected(c, env.server, { key: keyStr(KEYS.sub) });
  const nack = await subOnly.channels.get(uniqueChannel('denied')).publish('x', 'y').then(() => null, (e) => e);
  assert.equal(nack?.code, 40160, `publish without the capability: ${fmtErr(nack)}`);

  const b = await scrape();
  assert.equal(delta(a, b, 'switchboard_connections_opened_total'), 4, 'four connections opened (the refused one is not)');
  assert.equal(delta(a, b, 'switchboard_connections', { state: 'connected' }), 4, 'four connected');
  assert.equal(delta(a, b, 'switchboard_connections_resumed_total'), 0);
  assert.equal(delta(a, b, 'switchboard_messages_in_total'), N + 1, 'messages in: the realtime and REST publishes');
  assert.equal(delta(a, b, 'switchboard_messages_out_total'), 2 * (N + 1), 'messages out: each to two subscribers');
  assert.equal(delta(a, b, 'switchboard_store_records_total'), N + 1);
  assert.equal(delta(a, b, 'switchboard_store_commit_failures_total'), 0);
  assert.equal(delta(a, b, 'switchboard_slow_consumer_disconnects_total'), 0);
  assert.deepEqual(authDelta(a, b), { 40101: 2, 40160: 1 }, 'auth failures by code');
  // Every payload crossed the sockets: in once, out once per subscriber.
  assert.ok(delta(a, b, 'switchboard_bytes_received_total') >= (N + 1) * PAYLOAD.length, 'bytes received');
  assert.ok(delta(a, b, 'switchboard_bytes_sent_total') >= 2 * (N + 1) * PAYLOAD.length, 'bytes sent');
  // The histogram (the parser checked its shape): one observation per commit.
  assert.equal(delta(a, b, 'switchboard_store_commit_seconds_count'), N + 1, 'one commit per awaited publish');
  assert.ok(delta(a, b, 'switchboard_store_commit_seconds_sum') > 0, 'commit time adds up');
  const buckets = b.get('switchboard_store_commit_seconds').samples.filter((s) => s.name.endsWith('_bucket'));
  assert.equal(buckets.at(-1).labels.le, '+Inf');
  assert.equal(buckets.at(-1).value, v(b, 'switchboard_store_commit_seconds_count'));
  let observed = 0;
  for (const s of buckets) observed += delta(a, b, s.name, s.labels) > 0 ? 1 : 0;
  assert.ok(observed >= 1, 'the new commits landed in the buckets');

  await c.closeAll();
  // CLOSE (RTN12) ends the connections: the gauge goes back.
  await waitUntil(async () => delta(a, await scrape(), 'switchboard_connections', { state: 'connected' }) === 0, 5000, 'connections closed');
  const z = await scrape();
  assert.equal(delta(a, z, 'switchboard_connections', { state: 'disconnected' }), 0, 'closed, not resumable');
  assert.equal(delta(a, z, 'switchboard_channel_attachments'), 0);
});

test('RTL32 message versions (append, update) count as messages in and out, one commit each', { timeout: 30_000 }, async (t) => {
  const c = new ClientSet();
  t.after(() => c.closeAll());
  const name = `mut:${uniqueChannel('versions')}`;
  const [writer, sub] = await Promise.all([
    connected(c, env.server, { key: keyStr(KEYS.root), clientId: 'writer', echoMessages: false }),
    connected(c, env.server, { key: keyStr(KEYS.root), binary: false }),
  ]);
  const col = collector(sub.channels.get(name));
  await withTimeout(col.subscribed, 5000, 'attach');
  const a = await scrape();
  const ch = writer.channels.get(name);
  const { serials } = await withTimeout(ch.publish('answer', 'Hello'), 5000, 'publish');
  await withTimeout(ch.appendMessage({ serial: serials[0], data: ',' }), 5000, 'append');
  await withTimeout(ch.appendMessage({ serial: serials[0], data: ' world' }), 5000, 'append');
  await withTimeout(ch.updateMessage({ serial: serials[0], data: 'Hi' }), 5000, 'update');
  await col.until(4, 8000);
  const b = await scrape();
  assert.equal(delta(a, b, 'switchboard_messages_in_total'), 4, 'the message and its three versions');
  assert.equal(delta(a, b, 'switchboard_messages_out_total'), 4, 'each to the one subscriber');
  assert.equal(delta(a, b, 'switchboard_store_commit_seconds_count'), 4);
  // The message, its three versions, and the copy of its message.create
  // that its first change keeps among its versions (RSL14).
  assert.equal(delta(a, b, 'switchboard_store_records_total'), 5);
});

test('the strict parser refuses malformed expositions', () => {
  const ok = '# HELP a_total A.\n# TYPE a_total counter\na_total{code="1"} 2\n';
  assert.equal(sampleValue(parsePrometheus(ok), 'a_total', { code: '1' }), 2);
  const hist = (b1, inf, count) =>
    `# TYPE h histogram\nh_bucket{le="0.1"} ${b1}\nh_bucket{le="+Inf"} ${inf}\nh_sum 1\nh_count ${count}\n`;
  parsePrometheus(hist(1, 2, 2));
  for (const [bad, why] of [
    ['a 1\n', 'sample before TYPE'],
    ['# TYPE a counter\na 1', 'no final newline'],
    ['# TYPE a counter\na -1\n', 'negative counter'],
    ['# TYPE a counter\na{x="1"} 1\na{x="1"} 2\n', 'repeated series'],
    ['# TYPE a counter\na{x="\\q"} 1\n', 'bad escape'],
    ['# TYPE a counter\na{x="1",x="2"} 1\n', 'repeated label'],
    ['# TYPE a counter\na 1 1700000000\n', 'timestamp'],
    ['# TYPE a counter\na one\n', 'bad value'],
    ['# TYPE a counter\n\na 1\n', 'blank line'],
    ['# TYPE a counter\n# TYPE b gauge\nb 1\na 1\n', 'interleaved families'],
    ['# TYPE a counter\n# TYPE a counter\na 1\n', 'second TYPE'],
    ['# just a comment\n', 'other comment'],
    [hist(3, 2, 2), 'decreasing buckets'],
    [hist(1, 2, 3), '+Inf != _count'],
    ['# TYPE h histogram\nh_bucket{le="0.1"} 1\nh_sum 1\nh_count 1\n', 'no +Inf bucket'],
  ]) {
    assert.throws(() => parsePrometheus(bad), Error, why);
  }
});

test('RTN15h3 slow consumer: switchboard_slow_consumer_disconnects_total counts each 42916 disconnect, connections_resumed_total each resume', { timeout: 90_000 }, async (t) => {
  const c = new ClientSet();
  t.after(() => c.closeAll());
  const name = uniqueChannel('slow');
  const a = await scrape();
  const [pub, sub] = await Promise.all([
    connected(c, env.server, { key: keyStr(KEYS.root), echoMessages: false }),
    connected(c, env.server, { key: keyStr(KEYS.root) }),
  ]);
  const col = collector(sub.channels.get(name));
  await withTimeout(col.subscribed, 5000, 'attach');
  const id0 = sub.connection.id;
  const states = [];
  sub.connection.on((sc) => states.push(sc));
  const ws = sub.connection.connectionManager.activeProtocol.getTransport().wsConnection;
  ws.pause(); // stop reading: the server's queue for this socket grows

  // Publish in rounds until the server reports the slow consumer: what the
  // kernel buffers before the queue grows differs between machines.
  const pch = pub.channels.get(name);
  const pad = 'x'.repeat(60_000);
  let sent = 0;
  let m = a;
  while (delta(a, m, 'switchboard_slow_consumer_disconnects_total') === 0) {
    assert.ok(sent < 600, `no slow consumer after ${sent} messages of 60 KB`);
    const round = [];
    for (let i = 0; i < 20; i++) round.push(pch.publish('big', { i: sent++, pad }));
    await withTimeout(Promise.all(round), 20_000, 'publisher ACKs');
    m = await scrape();
  }
  ws.resume();
  await col.until(sent, 30_000);
  await waitForConnectionState(sub, 'connected');
  const disc = states.filter((s) => s.current === 'disconnected');
  assert.ok(disc.length >= 1, 'DISCONNECTED at least once');
  for (const d of disc) assert.equal(d.reason?.code, 42916, `DISCONNECTED reason: ${fmtErr(d.reason)}`);
  assert.equal(sub.connection.id, id0, 'the slow consumer resumed its connection');
  const b = await scrape();
  // The replay on resume can itself pass the small bound, so the client may
  // be disconnected (and resume) more than once: each time is counted.
  assert.equal(delta(a, b, 'switchboard_slow_consumer_disconnects_total'), disc.length, 'one count per 42916 disconnect');
  assert.equal(delta(a, b, 'switchboard_connections_resumed_total'), disc.length, 'one resume per disconnect');
  assert.equal(delta(a, b, 'switchboard_connections_opened_total'), 2);
  assert.equal(delta(a, b, 'switchboard_messages_in_total'), sent);
  // Live deliveries before the bound, then the replay on resume: at least
  // one per message (some sent live may also be replayed).
  assert.ok(delta(a, b, 'switchboard_messages_out_total') >= sent, 'messages out');
  assert.deepEqual(authDelta(a, b), {}, 'no auth failure');
});

test('/readyz writes to storage: 503 with an Ably error (50003 past the deadline, 50000 when the write fails) while another process holds the database write lock, /healthz stays 200, ready again once released', { timeout: 60_000 }, async (t) => {
  if (spawnSync('sqlite3', ['-version']).status !== 0) {
    t.skip('the sqlite3 command-line tool is not installed');
    return;
  }
  const tmp = makeTempDir('switchboard-readyz-');
  const cfg = writeConfig(config({ metricsListen: '127.0.0.1:0' })); // the config's spelling of --metrics-listen
  const server = await startServer({ data: tmp.dir, sandbox: false, label: 'readyz', extraArgs: ['--config', cfg.file] });
  let locker;
  t.after(async () => {
    locker?.kill('SIGKILL');
    try {
      await server.stop();
    } finally {
      cfg.cleanup();
      tmp.cleanup();
    }
  });
  const maddr = metricsAddr(server);
  const ready = () => http(maddr, 'GET', '/readyz', { timeoutMs: 10_000 });
  assert.equal((await ready()).status, 200);

  // Another process takes the write lock (WAL mode: BEGIN IMMEDIATE).
  locker = spawn('sqlite3', [path.join(tmp.dir, 'switchboard.db')], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  locker.stdout.on('data', (d) => (out += d));
  locker.stdin.write("BEGIN IMMEDIATE;\nSELECT 'locked';\n");
  await waitUntil(() => out.includes('locked'), 5000, 'the sqlite3 CLI holding the write lock');
  await sleep(1100); // past the reuse of the last good result

  const r1 = await ready();
  expectAblyError(r1, 50003, 503, '/readyz while the database is locked');
  assert.equal((await http(maddr, 'GET', '/healthz')).status, 200, '/healthz: the loop is not blocked');
  assert.equal((await http(server, 'GET', '/healthz')).status, 200);
  // The server's write gives up after its busy timeout (5 s): the failure
  // itself is then the answer.
  let seen;
  await waitUntil(async () => {
    const r = await ready();
    assert.equal(r.status, 503, r.text);
    seen = r;
    return r.body?.error?.code === 50000;
  }, 20_000, '/readyz answering 50000 once the write fails');
  expectAblyError(seen, 50000, 503, '/readyz after the write failed');
  assert.match(seen.body.error.message, /storage is not writable/);

  locker.stdin.end('ROLLBACK;\n.quit\n');
  await withTimeout(new Promise((r) => locker.on('exit', r)), 5000, 'sqlite3 exit');
  locker = null;
  await waitUntil(async () => (await ready()).status === 200, 20_000, '/readyz 200 after the lock is released');
  const r = await http(server, 'GET', '/readyz');
  assert.equal(r.status, 200, r.text);
});

test('contrib/grafana-switchboard.json: valid JSON, every expr names metrics the server exposes; docs/operations.md lists every metric', async () => {
  const fams = await scrape();
  const dash = JSON.parse(readFileSync(path.join(REPO_ROOT, 'contrib', 'grafana-switchboard.json'), 'utf8'));
  assert.equal(typeof dash.title, 'string');
  assert.equal(typeof dash.uid, 'string');
  assert.ok(Array.isArray(dash.panels) && dash.panels.length > 0);
  assert.ok(dash.__inputs?.some((i) => i.name === 'DS_PROMETHEUS' && i.pluginId === 'prometheus'));
  const ids = dash.panels.map((p) => p.id);
  assert.equal(new Set(ids).size, ids.length, 'panel ids are unique');

  const exprs = [];
  const walk = (node) => {
    if (Array.isArray(node)) node.forEach(walk);
    else if (node && typeof node === 'object') {
      for (const [k, val] of Object.entries(node)) {
        if ((k === 'expr' || k === 'definition') && typeof val === 'string') exprs.push(val);
        else if (k === 'query' && typeof val === 'string') exprs.push(val);
        else walk(val);
      }
    }
  };
  walk(dash);
  assert.ok(exprs.length >= 10, `exprs found: ${exprs.length}`);
  const exists = (n) =>
    (fams.has(n) && fams.get(n).type !== 'histogram') ||
    ['_bucket', '_sum', '_count'].some((sfx) => n.endsWith(sfx) && fams.get(n.slice(0, -sfx.length))?.type === 'histogram');
  const used = new Set();
  for (const e of exprs) {
    const names = e.match(/\bswitchboard_[a-zA-Z0-9_:]+/g) ?? [];
    assert.ok(names.length > 0, `expr names no switchboard metric: ${e}`);
    for (const n of names) {
      assert.ok(exists(n), `expr uses ${n}, which /metrics does not expose: ${e}`);
      used.add(n.replace(/_(bucket|sum|count)$/, (m0) => (fams.has(n) ? m0 : '')));
    }
  }
  for (const p of dash.panels.filter((x) => x.type !== 'row')) {
    assert.equal(p.datasource?.uid, '${DS_PROMETHEUS}', `panel ${p.title}: datasource`);
    assert.ok(p.targets?.length > 0, `panel ${p.title}: targets`);
  }
  // The dashboard shows every family, and the docs describe every family.
  const ops = readFileSync(path.join(REPO_ROOT, 'docs', 'operations.md'), 'utf8');
  for (const f of fams.keys()) {
    assert.ok(used.has(f), `the dashboard does not show ${f}`);
    assert.ok(ops.includes(`\`${f}\``), `docs/operations.md does not list ${f}`);
  }
});
