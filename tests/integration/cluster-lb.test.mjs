// Two cluster nodes behind nginx, configured with the nginx block of
// docs/cluster.md ("Three nodes behind a load balancer"), read from the doc
// at run time so the documented snippet is the one tested: only the node
// addresses, the listen address and TLS are replaced by loopback ones.
// The test starts its own redis-server (loopback, a free port, a temporary
// directory, appendonly with appendfsync always), two nodes on 127.0.0.2 and
// 127.0.0.3 with the same port (`serve --memory --sandbox --redis`), and
// nginx (Debian's nginx-light or nginx; `scripts/deps.sh test` installs it)
// with its prefix, config, pid and logs in that directory; a missing
// redis-server or nginx fails the test. The real ably SDK connects through
// nginx (WebSocket upgrade) and REST goes through it too.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import Ably from 'ably';
import {
  REPO_ROOT,
  closeClient,
  sleep,
  uniqueChannel,
  waitUntil,
  withTimeout,
} from './lib/server.mjs';
import { Cluster, findBin, freePort, spawnLogged } from './lib/cluster.mjs';

const APP = 'clusterlb';
const KEY = `${APP}.root:cluster-lb-secret-7c1e9a4f2b6d8e03`;
const cluster = new Cluster({
  label: 'cluster-lb',
  key: KEY,
  hosts: ['127.0.0.2', '127.0.0.3'],
  config: {
    trustedProxies: ['127.0.0.1'],
    apps: [{ id: APP, keys: [{ id: 'root', secret: KEY.split(':')[1] }] }],
  },
});
const { hosts: HOSTS, dir, opened } = cluster;
let nginx = null; // { proc, exited, output() }
let lbPort = 0;

/**
 * The nginx block of docs/cluster.md, with loopback addresses: the
 * `server 10.0.0.x:8080 ...;` lines become one per node (their parameters
 * kept), `listen 443 ssl` becomes the test's port, the certificate lines go.
 */
function nginxSnippet() {
  const doc = readFileSync(path.join(REPO_ROOT, 'docs', 'cluster.md'), 'utf8');
  const m = doc.match(/<!-- cluster-lb\.test\.mjs: nginx begin -->\n```nginx\n([\s\S]*?)```\n<!-- cluster-lb\.test\.mjs: nginx end -->/);
  assert.ok(m, 'docs/cluster.md has the marked nginx block');
  const lines = m[1].split('\n');
  const servers = lines.filter((l) => /^\s*server 10\.0\.0\.\d+:8080/.test(l));
  assert.equal(servers.length, 3, 'the documented upstream lists three nodes');
  const out = [];
  let placed = false;
  for (const l of lines) {
    if (/^\s*server 10\.0\.0\.\d+:8080/.test(l)) {
      if (!placed) {
        for (const h of HOSTS) out.push(l.replace(/10\.0\.0\.\d+:8080/, `${h}:${cluster.nodePort}`));
        placed = true;
      }
      continue;
    }
    if (/^\s*ssl_certificate/.test(l)) continue;
    if (/^\s*listen 443 ssl;/.test(l)) {
      out.push(l.replace('listen 443 ssl;', `listen 127.0.0.1:${lbPort};`));
      continue;
    }
    out.push(l);
  }
  assert.ok(placed && out.some((l) => l.includes(`listen 127.0.0.1:${lbPort};`)), 'snippet adapted');
  return out.join('\n');
}

async function startNginx() {
  const bin = findBin('nginx', 'run scripts/deps.sh test (Debian package nginx-light)');
  const prefix = path.join(dir, 'nginx');
  mkdirSync(path.join(prefix, 'tmp'), { recursive: true });
  const conf = path.join(prefix, 'nginx.conf');
  writeFileSync(
    conf,
    [
      'daemon off;',
      'worker_processes 1;',
      `pid ${prefix}/nginx.pid;`,
      `error_log ${prefix}/error.log info;`,
      'events { worker_connections 1024; }',
      'http {',
      '    access_log off;',
      `    client_body_temp_path ${prefix}/tmp/body;`,
      `    proxy_temp_path ${prefix}/tmp/proxy;`,
      `    fastcgi_temp_path ${prefix}/tmp/fastcgi;`,
      `    uwsgi_temp_path ${prefix}/tmp/uwsgi;`,
      `    scgi_temp_path ${prefix}/tmp/scgi;`,
      nginxSnippet(),
      '}',
      '',
    ].join('\n'),
  );
  // -e: the error log before the config is read (the default is under /var/log).
  nginx = spawnLogged(bin, ['-p', prefix, '-e', path.join(prefix, 'error.log'), '-c', conf]);
  const log = () => {
    let e = '';
    try {
      e = readFileSync(path.join(prefix, 'error.log'), 'utf8');
    } catch {
      /* not yet */
    }
    return `${nginx.output()}\n${e}`;
  };
  await waitUntil(
    async () => {
      try {
        return (await fetch(`http://127.0.0.1:${lbPort}/healthz`)).status === 200;
      } catch {
        return false;
      }
    },
    20000,
    `nginx on port ${lbPort}`,
    log,
  );
}

/** A realtime client through nginx (no fallback hosts: the balancer is the one endpoint). */
function viaLb(extra = {}) {
  const c = new Ably.Realtime({
    key: KEY,
    endpoint: '127.0.0.1',
    port: lbPort,
    tls: false,
    fallbackHosts: [],
    disconnectedRetryTimeout: 500,
    suspendedRetryTimeout: 1000,
    logLevel: Number(process.env.ABLY_LOG_LEVEL || 0),
    ...extra,
  });
  opened.push(c);
  return c;
}

const direct = (i) => cluster.realtime(i);

const restLb = () => new Ably.Rest({ key: KEY, endpoint: '127.0.0.1', port: lbPort, tls: false, fallbackHosts: [] });
const restDirect = (i) => cluster.rest(i);

async function collector(client, name) {
  const ch = client.channels.get(name);
  const got = [];
  await withTimeout(ch.subscribe((m) => got.push(m.name)), 15000, `attach ${name}`);
  return { ch, got };
}

/** The node (index) holding the connected Ably connections, from its /metrics. */
async function connectedOn(i) {
  const text = await (await fetch(`http://${HOSTS[i]}:${cluster.nodePort}/metrics`)).text();
  const m = text.match(/^switchboard_connections\{state="connected"\} (\d+)/m);
  return m ? Number(m[1]) : 0;
}

before(async () => {
  lbPort = await freePort(['127.0.0.1']);
  await cluster.start();
  await startNginx();
});

after(async () => {
  if (nginx) {
    nginx.proc.kill('SIGQUIT'); // graceful stop
    await withTimeout(nginx.exited, 10000, 'nginx exit').catch(() => nginx.proc.kill('SIGKILL'));
  }
  await cluster.stop();
});

test('through nginx: /readyz, REST publish and history, and realtime over the WebSocket upgrade, across both nodes', async () => {
  const r = await fetch(`http://127.0.0.1:${lbPort}/readyz`);
  assert.equal(r.status, 200);
  assert.equal((await r.json()).status, 'ready');

  const name = uniqueChannel('lb');
  const lb = viaLb();
  const viaProxy = await collector(lb, name);
  assert.equal(lb.connection.state, 'connected');
  // A subscriber on each node directly: whichever node nginx chose, the other hears it through Redis.
  const onNode = await Promise.all(HOSTS.map((_, i) => collector(direct(i), name)));

  await restLb().channels.get(name).publish('rest-1', 'a');
  await lb.channels.get(name).publish('rt-1', 'b'); // over the proxied WebSocket, ACKed
  const want = ['rest-1', 'rt-1'];
  for (const c of [viaProxy, ...onNode]) {
    await waitUntil(() => c.got.length >= want.length, 10000, 'both messages delivered');
    assert.deepEqual(c.got, want);
  }
  const page = await restLb().channels.get(name).history({ direction: 'forwards' });
  assert.deepEqual(page.items.map((m) => m.name), want);
  await Promise.all(opened.splice(0).map((c) => closeClient(c)));
});

test('RTN15c6/RTL4c1: the node behind nginx is killed; ably-js reconnects through nginx to the other node, resumes there with the same connectionId, and gets, once and in order, what was published meanwhile', async () => {
  const name = uniqueChannel('lb-kill');
  const countsBefore = await Promise.all(HOSTS.map((_, i) => connectedOn(i)));
  const lb = viaLb();
  const sub = await collector(lb, name);
  const firstId = lb.connection.id;
  await restDirect(0).channels.get(name).publish('before', '0');
  await waitUntil(() => sub.got.length === 1, 10000, 'the first message');

  // Which node is nginx's choice for this client (hash of its address)?
  const counts = await Promise.all(HOSTS.map((_, i) => connectedOn(i)));
  const rose = counts.map((n, i) => n - countsBefore[i]);
  const victim = rose.findIndex((n) => n === 1);
  assert.ok(victim >= 0 && rose[1 - victim] === 0, `one node took the connection (${countsBefore} -> ${counts})`);
  const other = 1 - victim;
  const onOtherBefore = counts[other];

  // The connection record lets the other node resume it (docs/cluster.md, "Connection records").
  let resumedAs = null;
  lb.connection.on('connected', () => (resumedAs = lb.connection.id));
  await cluster.killNode(victim);
  // Published on the surviving node while the subscriber has no transport.
  const rest = restDirect(other).channels.get(name);
  for (let i = 1; i <= 5; i++) await rest.publish(`during-${i}`, String(i));

  await waitUntil(() => lb.connection.state === 'connected' && resumedAs !== null, 20000,
    'reconnected through nginx');
  assert.equal(lb.connection.id, firstId, 'the same connectionId on the surviving node (RTN15c6)');
  assert.equal(await connectedOn(other), onOtherBefore + 1, 'now on the surviving node');
  await rest.publish('after', '6');
  const want = ['before', 'during-1', 'during-2', 'during-3', 'during-4', 'during-5', 'after'];
  await waitUntil(() => sub.got.length >= want.length, 20000, 'every message', () => JSON.stringify(sub.got));
  await sleep(300); // nothing more may come
  assert.deepEqual(sub.got, want, 'each once, in order: the re-attach replayed the gap from the shared log');
});
