#!/usr/bin/env node
// bench/soak.mjs: a soak of the socket layer (issue 11), not run in CI.
//
// Starts its own `switchboard serve` (SQLite in a temp dir, default limits)
// and, for --minutes, holds --connections authenticated WebSockets (one
// channel attachment each, 100 channels) with churn (--churn connections a
// second replaced: half closed with CLOSE, half dropped), a publisher fanning
// out --rate messages a second to them, and every --flood-every seconds a
// flood of --flood sockets that never become useful (silent, partial heads,
// partial bodies, unauthenticated upgrades, slow-loris drips) from four
// other loopback addresses (127.0.0.2-5), held for --flood-for seconds and
// re-opened as the server drops them. A probe connects a fresh client every
// second and measures connect (TCP connect to CONNECTED) and delivery
// (publish to receipt) latency. Every second it samples the server's RSS,
// descriptors and CPU from /proc.
//
// Raw sockets throughout (node:net, RFC 6455 framing below): no dependencies,
// and the load generator stays cheap next to the server.
//
// Usage: node bench/soak.mjs [--runs 3] [--minutes 3] [--connections 10000]
//          [--churn 50] [--rate 20] [--flood 6000] [--flood-every 30]
//          [--flood-for 15] [--server-bin build/switchboard] [--json FILE]
// Prints one summary per run, then the median and min–max of each figure
// over the runs (the table in docs/benchmarks.md, "Soak").
import net from 'node:net';
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import crypto from 'node:crypto';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const opt = {
  runs: 3,
  minutes: 3,
  connections: 10000,
  churn: 50,
  rate: 20,
  flood: 6000,
  floodEvery: 30,
  floodFor: 15,
  serverBin: path.join(root, 'build', 'switchboard'),
  json: null,
};
for (let i = 2; i < process.argv.length; i += 2) {
  const k = process.argv[i].replace(/^--/, '').replace(/-([a-z])/g, (_, c) => c.toUpperCase());
  if (!(k in opt)) {
    console.error(`soak: unknown option ${process.argv[i]}`);
    process.exit(2);
  }
  opt[k] = typeof opt[k] === 'number' ? Number(process.argv[i + 1]) : process.argv[i + 1];
}

const CHANNELS = 100;
const WS_KEY = crypto.randomBytes(16).toString('base64');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const A = { CONNECTED: 4, DISCONNECTED: 6, CLOSE: 7, ERROR: 9, ATTACH: 10, ATTACHED: 11, MESSAGE: 15 };

// ---- the server -------------------------------------------------------------

async function startServer() {
  const dir = mkdtempSync(path.join(tmpdir(), 'switchboard-soak-'));
  const proc = spawn(opt.serverBin, ['serve', '--listen', '127.0.0.1:0', '--data', dir, '--sandbox'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  proc.stderr.on('data', (d) => (err = (err + d).slice(-20000)));
  const port = await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no "listening on" in 10 s:\n${out}\n${err}`)), 10000);
    proc.stdout.on('data', (d) => {
      out += d;
      const m = /listening on http:\/\/[0-9.]+:(\d+)/.exec(out);
      if (m) {
        clearTimeout(t);
        resolve(Number(m[1]));
      }
    });
    proc.on('exit', (c) => reject(new Error(`server exited (${c}):\n${err}`)));
  });
  const res = await fetch(`http://127.0.0.1:${port}/apps`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ keys: [{}] }),
  });
  const key = (await res.json()).keys[0].keyStr;
  return {
    proc,
    port,
    key,
    stderr: () => err,
    async stop() {
      proc.kill('SIGTERM');
      const exited = new Promise((r) => proc.on('exit', r));
      if ((await Promise.race([exited, sleep(10000).then(() => 'timeout')])) === 'timeout') proc.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function procSample(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)[1]);
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const cpuTicks = Number(f[11]) + Number(f[12]); // utime + stime
  return { rssKb, fds: readdirSync(`/proc/${pid}/fd`).length, cpuTicks };
}

// ---- a minimal WebSocket client (RFC 6455, client side: masked frames) --------

function frame(text) {
  const payload = Buffer.from(text);
  const n = payload.length;
  const head = n < 126 ? Buffer.from([0x81, 0x80 | n]) : Buffer.from([0x81, 0x80 | 126, n >> 8, n & 0xff]);
  const mask = crypto.randomBytes(4);
  for (let i = 0; i < n; i++) payload[i] ^= mask[i & 3];
  return Buffer.concat([head, mask, payload]);
}

class Ws {
  constructor(port, key, { localAddress, onMessage, onClose }) {
    this.t0 = performance.now();
    this.open = false;
    this.closedByUs = false;
    this.buf = Buffer.alloc(0);
    this.onMessage = onMessage;
    this.sock = net.connect({ host: '127.0.0.1', port, localAddress });
    this.sock.setNoDelay(true);
    this.sock.on('connect', () =>
      this.sock.write(
        `GET /?key=${encodeURIComponent(key)}&format=json&v=2 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n` +
          `Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${WS_KEY}\r\n\r\n`,
      ),
    );
    this.sock.on('data', (d) => this.data(d));
    this.sock.on('error', () => {});
    this.sock.on('close', () => {
      this.open = false;
      onClose?.(this);
    });
  }

  data(d) {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    if (!this.open) {
      const end = this.buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      if (!this.buf.subarray(0, 12).toString().startsWith('HTTP/1.1 101')) return this.sock.destroy();
      this.open = true;
      this.buf = this.buf.subarray(end + 4);
    }
    for (;;) {
      if (this.buf.length < 2) return;
      const op = this.buf[0] & 0x0f;
      let n = this.buf[1] & 0x7f;
      let off = 2;
      if (n === 126) {
        if (this.buf.length < 4) return;
        n = this.buf.readUInt16BE(2);
        off = 4;
      } else if (n === 127) {
        if (this.buf.length < 10) return;
        n = Number(this.buf.readBigUInt64BE(2));
        off = 10;
      }
      if (this.buf.length < off + n) return;
      const payload = this.buf.subarray(off, off + n);
      this.buf = this.buf.subarray(off + n);
      if (op === 1) this.onMessage?.(this, JSON.parse(payload.toString()));
      else if (op === 8) this.sock.end();
    }
  }

  send(obj) {
    if (this.open) this.sock.write(frame(JSON.stringify(obj)));
  }

  close(clean) {
    this.closedByUs = true;
    if (clean && this.open) this.send({ action: A.CLOSE });
    else this.sock.destroy();
    setTimeout(() => this.sock.destroy(), 2000).unref();
  }
}

// ---- the load ---------------------------------------------------------------

function percentile(xs, p) {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

/** Keeps opt.connections attached connections, replacing opt.churn a second. */
function population(srv, st) {
  const held = new Set();
  let opening = 0;
  const openOne = () => {
    opening++;
    let attached = false;
    const ch = `soak-${Math.floor(Math.random() * CHANNELS)}`;
    const ws = new Ws(srv.port, srv.key, {
      onMessage: (w, m) => {
        if (m.action === A.CONNECTED) w.send({ action: A.ATTACH, channel: ch });
        else if (m.action === A.ATTACHED && !attached) {
          attached = true;
          opening--;
          held.add(w);
        } else if (m.action === A.MESSAGE) st.delivered++;
      },
      onClose: (w) => {
        if (!attached) opening--;
        if (held.delete(w) && !w.closedByUs) st.heldLost++;
      },
    });
  };
  const fill = () => {
    const want = opt.connections - held.size - opening;
    for (let i = 0; i < Math.min(want, 256 - opening); i++) openOne();
  };
  const filler = setInterval(fill, 20);
  const churner = setInterval(() => {
    if (held.size < opt.connections * 0.9) return; // ramping up
    const victims = [...held].slice(0, opt.churn);
    victims.forEach((w, i) => {
      held.delete(w);
      w.close(i % 2 === 0);
      st.churned++;
    });
  }, 1000);
  return {
    held,
    stop() {
      clearInterval(filler);
      clearInterval(churner);
      for (const w of held) w.close(false);
    },
  };
}

/** Floods of not-yet-useful sockets from 127.0.0.2-5, re-opened at <= 2,000/s. */
function flooder(srv, st) {
  const kinds = ['silent', 'partialHead', 'partialBody', 'upgradeNoCredentials', 'drip'];
  const payload = {
    partialHead: 'GET /time HTTP/1.1\r\nHost: x\r\nX-Slow: ',
    partialBody: 'POST /channels/x/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{',
    upgradeNoCredentials:
      `GET /?format=json HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${WS_KEY}\r\n\r\n`,
    drip: 'GET /time HTTP/1.1\r\nHost: x\r\n',
  };
  let active = false;
  const socks = new Set();
  const again = [];
  const open = (i) => {
    if (!active) return;
    const kind = kinds[i % kinds.length];
    const s = net.connect({ host: '127.0.0.1', port: srv.port, localAddress: `127.0.0.${2 + (i % 4)}` });
    st.floodOpened++;
    socks.add(s);
    let drip;
    s.on('connect', () => {
      if (payload[kind]) s.write(payload[kind]);
      if (kind === 'drip') drip = setInterval(() => s.write('X-Drip: v\r\n'), 2000);
    });
    s.on('data', () => {});
    s.on('error', () => {});
    s.on('close', () => {
      clearInterval(drip);
      socks.delete(s);
      if (!active) return;
      st.floodClosedByServer++;
      again.push(i);
    });
  };
  const refill = setInterval(() => {
    for (let k = 0; k < 20 && again.length; k++) open(again.shift());
  }, 10);
  const start = () => {
    active = true;
    for (let i = 0; i < opt.flood; i++) open(i);
  };
  const end = () => {
    active = false;
    again.length = 0;
    for (const s of socks) s.destroy();
  };
  const cycle = setInterval(() => {
    start();
    setTimeout(end, opt.floodFor * 1000);
  }, opt.floodEvery * 1000);
  return {
    stop() {
      clearInterval(cycle);
      clearInterval(refill);
      end();
    },
  };
}

/** A publisher for the population, and a probe: connect and delivery latency. */
async function publisherAndProbe(srv, st) {
  const pub = await new Promise((resolve) => {
    const w = new Ws(srv.port, srv.key, {
      onMessage: (ws, m) => m.action === A.CONNECTED && resolve(ws),
    });
  });
  let serial = 0;
  const publish = (channel, data) =>
    pub.send({ action: A.MESSAGE, channel, msgSerial: serial++, messages: [{ name: 'm', data }] });
  const pubTimer = setInterval(() => {
    for (let i = 0; i < opt.rate / 10; i++) publish(`soak-${Math.floor(Math.random() * CHANNELS)}`, 'x'.repeat(100));
  }, 100);
  let probing = true;
  const probeLoop = (async () => {
    while (probing) {
      const ch = `probe-${st.probes}`;
      const t0 = performance.now();
      let tConnected;
      let tPub;
      const done = new Promise((resolve) => {
        const w = new Ws(srv.port, srv.key, {
          onMessage: (ws, m) => {
            if (m.action === A.CONNECTED) {
              tConnected = performance.now();
              ws.send({ action: A.ATTACH, channel: ch });
            } else if (m.action === A.ATTACHED) {
              tPub = performance.now();
              publish(ch, 'probe');
            } else if (m.action === A.MESSAGE) {
              st.connectMs.push(tConnected - t0);
              st.deliveryMs.push(performance.now() - tPub);
              ws.close(true);
              resolve(true);
            }
          },
          onClose: () => resolve(false),
        });
        setTimeout(() => {
          w.close(false);
          resolve(false);
        }, 10000).unref();
      });
      st.probes++;
      if (!(await done)) st.probeFailures++;
      await sleep(1000);
    }
  })();
  return {
    async stop() {
      probing = false;
      clearInterval(pubTimer);
      await probeLoop;
      pub.close(false);
    },
  };
}

async function run(n) {
  const srv = await startServer();
  const st = {
    delivered: 0,
    heldLost: 0,
    churned: 0,
    probes: 0,
    probeFailures: 0,
    connectMs: [],
    deliveryMs: [],
    floodOpened: 0,
    floodClosedByServer: 0,
  };
  const samples = [];
  const pop = population(srv, st);
  const t0 = Date.now();
  while (pop.held.size < opt.connections && Date.now() - t0 < 120000) await sleep(200);
  const rampS = (Date.now() - t0) / 1000;
  const pp = await publisherAndProbe(srv, st);
  const fl = flooder(srv, st);
  const hz = 100; // USER_HZ
  let last = procSample(srv.proc.pid);
  let lastDelivered = st.delivered;
  const tStart = Date.now();
  while (Date.now() - tStart < opt.minutes * 60000) {
    await sleep(1000);
    const s = procSample(srv.proc.pid);
    samples.push({
      t: (Date.now() - tStart) / 1000,
      rssKb: s.rssKb,
      fds: s.fds,
      cpu: (s.cpuTicks - last.cpuTicks) / hz,
      held: pop.held.size,
      deliveredPerS: st.delivered - lastDelivered,
    });
    last = s;
    lastDelivered = st.delivered;
  }
  fl.stop();
  await pp.stop();
  pop.stop();
  const alive = srv.proc.exitCode === null;
  await srv.stop();
  const minute1 = samples.filter((x) => x.t <= 60);
  const r = {
    run: n,
    minutes: opt.minutes,
    rampS,
    heldMin: Math.min(...samples.map((x) => x.held)),
    heldLost: st.heldLost,
    churned: st.churned,
    deliveredPerS: Math.round(percentile(samples.map((x) => x.deliveredPerS), 50)),
    probes: st.probes,
    probeFailures: st.probeFailures,
    connectP50: percentile(st.connectMs, 50),
    connectP99: percentile(st.connectMs, 99),
    connectMax: Math.max(...st.connectMs),
    deliveryP50: percentile(st.deliveryMs, 50),
    deliveryP99: percentile(st.deliveryMs, 99),
    deliveryMax: Math.max(...st.deliveryMs),
    rssMaxMb: Math.max(...samples.map((x) => x.rssKb)) / 1024,
    rssAfter1MinMb: Math.max(...minute1.map((x) => x.rssKb)) / 1024,
    rssEndMb: samples[samples.length - 1].rssKb / 1024,
    fdsMax: Math.max(...samples.map((x) => x.fds)),
    cpuAvgPct: (100 * samples.reduce((a, x) => a + x.cpu, 0)) / samples.length,
    floodOpened: st.floodOpened,
    floodClosedByServer: st.floodClosedByServer,
    serverAlive: alive,
  };
  console.log(JSON.stringify(r));
  return r;
}

const results = [];
for (let i = 1; i <= opt.runs; i++) results.push(await run(i));
const fmt = (v) => (Number.isInteger(v) ? String(v) : v.toFixed(1));
console.log(`\n${opt.runs} runs of ${opt.minutes} min, ${opt.connections} connections, churn ${opt.churn}/s, ` +
  `${opt.rate} msg/s, floods of ${opt.flood} sockets for ${opt.floodFor} s every ${opt.floodEvery} s`);
console.log('| figure | median | min–max |\n|---|---|---|');
for (const k of Object.keys(results[0])) {
  if (k === 'run' || k === 'minutes' || k === 'serverAlive') continue;
  const xs = results.map((r) => r[k]).sort((a, b) => a - b);
  console.log(`| ${k} | ${fmt(xs[Math.floor(xs.length / 2)])} | ${fmt(xs[0])}–${fmt(xs[xs.length - 1])} |`);
}
if (opt.json) writeFileSync(opt.json, JSON.stringify({ opt, results }, null, 2));
process.exit(results.every((r) => r.serverAlive && r.probeFailures === 0) ? 0 : 1);
