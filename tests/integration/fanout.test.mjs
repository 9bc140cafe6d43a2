// A fan-out to many subscribers while more publishes of the channel are
// being committed: the server may let a flush wait one loop turn so that the
// next commit's messages share its writes (core/sock.h, SW_FLUSH_HOLD_MS).
// Every subscriber must still get every message, in order, and the publisher
// every ACK.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { useServer, uniqueChannel, withTimeout, sleep, clients, connected } from './lib/server.mjs';

const env = useServer({ label: 'fanout' });
const key = () => env.app.keys[0].keyStr;

async function subscriber(name) {
  const ws = new WebSocket(`ws://${env.server.host}:${env.server.port}/?format=json&key=${encodeURIComponent(key())}`);
  const got = [];
  let attached = false;
  ws.on('message', (d) => {
    const m = JSON.parse(d.toString());
    if (m.action === 11) attached = true;
    if (m.action === 15) for (const x of m.messages) got.push(x.data);
  });
  ws.on('error', () => {});
  await withTimeout(new Promise((r) => ws.on('open', r)), 5000, 'open');
  ws.send(JSON.stringify({ action: 10, channel: name }));
  const t0 = Date.now();
  while (!attached) {
    if (Date.now() - t0 > 5000) assert.fail('no ATTACHED');
    await sleep(10);
  }
  return { ws, got };
}

test('RTL7 a burst published to 40 subscribers reaches each of them whole and in order', { timeout: 60_000 }, async (t) => {
  const name = uniqueChannel('fan');
  const subs = [];
  for (let i = 0; i < 40; i++) subs.push(await subscriber(name));
  const c = clients(t);
  const pub = await connected(c, env.server, { key: key(), binary: true });
  const ch = pub.channels.get(name);
  const N = 200;
  const acks = [];
  for (let i = 0; i < N; i++) acks.push(ch.publish('m', `m${i}`)); // all in flight at once
  const results = await withTimeout(Promise.allSettled(acks), 30_000, 'the ACKs');
  assert.equal(results.filter((r) => r.status === 'rejected').length, 0, 'every publish is ACKed');
  const t0 = Date.now();
  while (subs.some((s) => s.got.length < N)) {
    if (Date.now() - t0 > 20_000) assert.fail(`deliveries missing: ${subs.map((s) => s.got.length).join(',')}`);
    await sleep(20);
  }
  const want = Array.from({ length: N }, (_, i) => `m${i}`);
  for (const s of subs) assert.deepEqual(s.got, want);
  for (const s of subs) s.ws.close();
});
