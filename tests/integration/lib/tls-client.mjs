// The real ably SDK over TLS, in a child process (tls.test.mjs spawns it):
// ably-js takes no CA option, and Node reads NODE_EXTRA_CA_CERTS, which
// makes it trust the test's throwaway CA, only when a process starts.
//
//   NODE_EXTRA_CA_CERTS=ca.pem node tls-client.mjs '{"mode":"pubsub",...}'
//
// Writes JSON lines on stdout ({"event":"ready"}, {"event":"result",...});
// every wait has a timeout, so the process always ends.
//
// mode "pubsub" {port, key, binary, channel}: a Realtime client (tls: true)
//   subscribes, publishes a small, a 60 KB (several TLS records) and a binary
//   message and receives them; a Rest client (https) reads the history, the
//   time and publishes. Result: what arrived, what history held.
// mode "load" {port, key, binary, channel, clients}: `clients` subscribers
//   and a publisher sending a numbered message every 10 ms. "ready" once
//   every subscriber has one; on "stop" on stdin the publisher stops, the
//   subscribers get the rest, and the result says per subscriber what was
//   missing, duplicated or out of order and every connection state change.
import Ably from 'ably';
import readline from 'node:readline';

const p = JSON.parse(process.argv[2]);
const out = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);
const opts = (extra = {}) => ({
  key: p.key,
  endpoint: '127.0.0.1',
  tls: true,
  tlsPort: p.port,
  useBinaryProtocol: p.binary,
  logLevel: 0,
  ...extra,
});

function timeout(promise, ms, what) {
  let t;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      t = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(t));
}

function connected(client) {
  return timeout(
    new Promise((resolve, reject) => {
      if (client.connection.state === 'connected') return resolve();
      client.connection.on((sc) => {
        if (sc.current === 'connected') resolve();
        else if (sc.current === 'failed') reject(new Error(`failed: ${sc.reason?.code} ${sc.reason?.message}`));
      });
    }),
    10_000,
    'connected',
  );
}

async function pubsub() {
  const rt = new Ably.Realtime(opts());
  await connected(rt);
  const ch = rt.channels.get(p.channel);
  const got = [];
  let wake;
  await ch.subscribe((m) => {
    got.push(m);
    if (got.length === 3) wake(); // (the REST publish below comes too, later)
  });
  const all = new Promise((r) => (wake = r));
  const big = 'x'.repeat(60_000);
  await ch.publish('small', 'hello');
  await ch.publish('big', big);
  await ch.publish('binary', Buffer.from([0, 1, 2, 255]));
  await timeout(all, 10_000, 'three messages');
  const rest = new Ably.Rest(opts());
  await rest.channels.get(p.channel).publish('rest', 'over https');
  const history = await rest.channels.get(p.channel).history({ direction: 'forwards' });
  const time = await rest.time();
  const connectionId = rt.connection.id;
  rt.close();
  out({
    event: 'result',
    connectionId,
    received: got.slice(0, 3).map((m) => ({
      name: m.name,
      length: m.data.length,
      binary: Buffer.isBuffer(m.data) || m.data instanceof Uint8Array,
      bigOk: m.name !== 'big' || m.data === big,
    })),
    history: history.items.map((m) => m.name),
    time,
  });
}

async function load() {
  const subs = [];
  for (let i = 0; i < p.clients; i++) {
    const client = new Ably.Realtime(opts());
    const s = { client, seqs: [], states: [], firstId: null };
    client.connection.on((sc) => s.states.push(`${sc.previous}->${sc.current}${sc.reason ? ` ${sc.reason.code}` : ''}`));
    subs.push(s);
  }
  await Promise.all(subs.map((s) => connected(s.client)));
  for (const s of subs) {
    s.firstId = s.client.connection.id;
    s.states.length = 0; // only what happens from now on
    await s.client.channels.get(p.channel).subscribe((m) => s.seqs.push(Number(m.data)));
  }
  const pub = new Ably.Realtime(opts());
  await connected(pub);
  const pch = pub.channels.get(p.channel);
  let seq = 0;
  let acked = 0;
  const nacks = [];
  const timer = setInterval(() => {
    pch.publish('n', String(++seq)).then(() => acked++, (e) => nacks.push(e.code));
  }, 10);
  await timeout(
    new Promise((resolve) => {
      const t = setInterval(() => subs.every((s) => s.seqs.length) && (clearInterval(t), resolve()), 20);
    }),
    10_000,
    'the first message at every subscriber',
  );
  out({ event: 'ready' });
  await timeout(new Promise((resolve) => readline.createInterface({ input: process.stdin }).on('line', (l) => l === 'stop' && resolve())), 120_000, 'stop');
  clearInterval(timer);
  const last = seq;
  await timeout(
    new Promise((resolve) => {
      const t = setInterval(() => acked + nacks.length === last && subs.every((s) => s.seqs.at(-1) === last) && (clearInterval(t), resolve()), 20);
    }),
    15_000,
    'every message at every subscriber',
  ).catch(() => {});
  const first = Math.min(...subs.map((s) => s.seqs[0]));
  out({
    event: 'result',
    published: last,
    acked,
    nacks,
    subscribers: subs.map((s) => {
      const seen = new Set();
      let dup = 0;
      let disorder = 0;
      for (let i = 0; i < s.seqs.length; i++) {
        if (seen.has(s.seqs[i])) dup++;
        seen.add(s.seqs[i]);
        if (i && s.seqs[i] <= s.seqs[i - 1]) disorder++;
      }
      let missing = 0;
      for (let n = s.seqs[0] ?? first; n <= last; n++) if (!seen.has(n)) missing++;
      return {
        received: s.seqs.length,
        missing,
        dup,
        disorder,
        states: s.states,
        sameConnection: s.client.connection.id === s.firstId,
      };
    }),
  });
  for (const s of subs) s.client.close();
  pub.close();
}

try {
  await (p.mode === 'load' ? load() : pubsub());
  process.exit(0);
} catch (e) {
  out({ event: 'error', message: String(e?.message ?? e), code: e?.code });
  process.exit(1);
}
