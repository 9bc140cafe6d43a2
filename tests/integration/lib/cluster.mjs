// The harness of the cluster tests (issue 12, docs/cluster.md): a
// redis-server of the test's own on loopback (a free port, its files in a
// temporary directory, appendonly with appendfsync always, so a restart keeps
// what was acknowledged) and switchboard nodes on 127.0.0.2, .3 and .4 with
// one port, each `serve --memory --sandbox --redis redis://127.0.0.1:PORT`.
// Every file starts and stops its own; a missing redis-server fails the test
// (scripts/deps.sh test installs it).
import { spawn } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import Ably from 'ably';
import { ARTIFACTS_DIR, ServerProcess, closeClient, waitUntil, withTimeout } from './server.mjs';

export const CLUSTER_HOSTS = ['127.0.0.2', '127.0.0.3', '127.0.0.4'];

/** The path of an installed program, or an error saying how to install it. */
export function findBin(name, hint = 'run scripts/deps.sh test') {
  for (const d of [...(process.env.PATH || '').split(':'), '/usr/sbin', '/usr/bin', '/usr/local/sbin', '/usr/local/bin']) {
    const p = path.join(d, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  throw new Error(`${name} is not installed: ${hint}`);
}

/** A TCP port nobody listens on now, on every given address. */
export async function freePort(hosts = ['127.0.0.1']) {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await new Promise((resolve, reject) => {
      const s = net.createServer();
      s.once('error', reject);
      s.listen(0, hosts[0], () => {
        const p = s.address().port;
        s.close(() => resolve(p));
      });
    });
    let ok = true;
    for (const h of hosts.slice(1)) {
      ok = await new Promise((resolve) => {
        const s = net.createServer();
        s.once('error', () => resolve(false));
        s.listen(port, h, () => s.close(() => resolve(true)));
      });
      if (!ok) break;
    }
    if (ok) return port;
  }
  throw new Error(`no port free on ${hosts.join(', ')}`);
}

/** A child process whose output is kept: {proc, exited ({code, signal}), output()}. */
export function spawnLogged(bin, args) {
  const proc = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout.on('data', (d) => (out += d));
  proc.stderr.on('data', (d) => (out += d));
  const exited = new Promise((r) => proc.on('exit', (code, signal) => r({ code, signal })));
  return { proc, exited, output: () => out };
}

/** One raw RESP command to the Redis on port; resolves with the reply's text. */
export function redisCommand(port, ...args) {
  const req = `*${args.length}\r\n` + args.map((a) => `$${Buffer.byteLength(String(a))}\r\n${a}\r\n`).join('');
  return withTimeout(
    new Promise((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1');
      let got = '';
      s.setEncoding('utf8');
      s.on('data', (d) => {
        got += d;
        if (got.endsWith('\r\n')) {
          s.destroy();
          resolve(got);
        }
      });
      s.on('error', reject);
      s.write(req);
    }),
    5000,
    `redis ${args[0]}`,
  );
}

/** redis-server on 127.0.0.1:port with its files in dir; start() again after stop() finds what it had. */
export class RedisServer {
  constructor(dir, port) {
    this.dir = dir;
    this.port = port;
    this.child = null;
  }

  async start() {
    this.child = spawnLogged(findBin('redis-server'), [
      '--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dir, '--save', '', '--appendonly', 'yes',
      '--appendfsync', 'always', '--daemonize', 'no', '--loglevel', 'warning', '--logfile', '',
    ]);
    const child = this.child;
    await waitUntil(
      async () => {
        try {
          return (await redisCommand(this.port, 'PING')).startsWith('+PONG');
        } catch {
          return false;
        }
      },
      20000,
      `redis-server on port ${this.port}`,
      () => child.output(),
    );
  }

  /** SIGKILL: what was acknowledged is in the append-only file (fsync always). */
  async stop() {
    if (!this.child) return;
    const { proc, exited } = this.child;
    this.child = null;
    proc.kill('SIGKILL');
    await withTimeout(exited, 10000, 'redis-server exit');
  }

  command(...args) {
    return redisCommand(this.port, ...args);
  }
}

/**
 * Nodes on one Redis. opts: label (names the nodes' artifacts), key
 * ("app.keyId:secret"), config (written to switchboard.json and passed with
 * --config; omitted: no --config), hosts (default CLUSTER_HOSTS).
 */
export class Cluster {
  constructor({ label, key, config = null, hosts = CLUSTER_HOSTS }) {
    this.label = label;
    this.key = key;
    this.config = config;
    this.hosts = hosts;
    this.dir = mkdtempSync(path.join(os.tmpdir(), `sw-${label}-`));
    this.redis = null;
    this.nodePort = 0;
    this.nodes = []; // ServerProcess per host, or null while stopped
    this.opened = []; // clients closed by stop()
  }

  get configPath() {
    return path.join(this.dir, 'switchboard.json');
  }

  /** Redis, then every node, each ready (/readyz 200: its Redis connections are up). */
  async start() {
    if (this.config) writeFileSync(this.configPath, JSON.stringify(this.config));
    this.redis = new RedisServer(this.dir, await freePort(['127.0.0.1']));
    this.nodePort = await freePort(this.hosts);
    await this.redis.start();
    for (let i = 0; i < this.hosts.length; i++) await this.startNode(i);
    // A node listens before its Redis connections are up (it refuses publishes until then).
    for (let i = 0; i < this.hosts.length; i++) await this.waitReady(i);
  }

  get redisUrl() {
    return `redis://127.0.0.1:${this.redis.port}`;
  }

  async startNode(i) {
    const args = ['serve', '--listen', `${this.hosts[i]}:${this.nodePort}`, '--memory', '--sandbox'];
    if (this.config) args.push('--config', this.configPath);
    args.push('--redis', this.redisUrl);
    const s = new ServerProcess(args, `${this.label}-node${i}`, { artifactsDir: ARTIFACTS_DIR });
    await s.start();
    this.nodes[i] = s;
    return s;
  }

  /** kill -9 of node i; it stays stopped until startNode(i). */
  async killNode(i) {
    const s = this.nodes[i];
    s.killHard();
    await withTimeout(s.exited, 10000, `node ${i} exit`);
    this.nodes[i] = null;
  }

  async readyz(i) {
    const res = await fetch(`http://${this.hosts[i]}:${this.nodePort}/readyz`);
    return { status: res.status, body: await res.json() };
  }

  async waitReady(i, ms = 20000) {
    await waitUntil(async () => (await this.readyz(i)).status === 200, ms, `node ${i} ready`);
  }

  /** An ably-js Realtime client on node i (closed by stop()). */
  realtime(i, extra = {}) {
    const c = new Ably.Realtime({
      key: this.key,
      endpoint: this.hosts[i],
      port: this.nodePort,
      tls: false,
      useBinaryProtocol: true,
      disconnectedRetryTimeout: 500,
      suspendedRetryTimeout: 1000,
      logLevel: Number(process.env.ABLY_LOG_LEVEL || 0),
      ...extra,
    });
    this.opened.push(c);
    return c;
  }

  rest(i, extra = {}) {
    return new Ably.Rest({ key: this.key, endpoint: this.hosts[i], port: this.nodePort, tls: false, ...extra });
  }

  /** Closes the clients, stops every node (each must still be running) and Redis, removes the files. */
  async stop() {
    await Promise.all(this.opened.map((c) => closeClient(c).catch(() => {})));
    const problems = [];
    for (const s of this.nodes) {
      if (!s) continue;
      try {
        await s.stop({ allowAlreadyExited: false });
      } catch (e) {
        problems.push(e.message);
      }
    }
    await this.redis?.stop().catch(() => {});
    rmSync(this.dir, { recursive: true, force: true });
    if (problems.length) throw new Error(problems.join('\n'));
  }
}

/** One app with key "app.root:secret" and a persisted `conversations` namespace with mutable messages. */
export function appConfig(key) {
  const [keyName, secret] = key.split(':');
  const id = keyName.split('.')[0];
  return {
    apps: [
      {
        id,
        keys: [{ id: 'root', secret }],
        namespaces: [{ id: 'conversations', mutableMessages: true, persisted: true }],
      },
    ],
  };
}

/** Subscribes client to channel name; got collects {name, data, serial, id} of each message. */
export async function collector(client, name) {
  const ch = client.channels.get(name);
  const got = [];
  await withTimeout(ch.subscribe((m) => got.push({ name: m.name, data: m.data, serial: m.serial, id: m.id })), 15000,
    `attach ${name}`);
  return { ch, got };
}
