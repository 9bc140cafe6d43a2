// Fragmented WebSocket messages (RFC 6455 §5.4) on a realtime connection.
// The server keeps reassembly state only while a message is fragmented
// (core/sock.c: allocated with the first fragment, freed once the message is
// delivered), so these check that one connection can send several fragmented
// messages, interleaved with control frames and whole messages, and that a
// continuation without a start is still a protocol error (close 1002).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { useServer, uniqueChannel, withTimeout, sleep } from './lib/server.mjs';

const env = useServer({ label: 'fragments' });
const key = () => env.app.keys[0].keyStr;

function open() {
  const ws = new WebSocket(`ws://${env.server.host}:${env.server.port}/?format=json&key=${encodeURIComponent(key())}`);
  const frames = [];
  ws.on('message', (d) => frames.push(JSON.parse(d.toString())));
  ws.on('error', () => {});
  const closed = new Promise((resolve) => ws.on('close', (code) => resolve(code)));
  return { ws, frames, closed, opened: withTimeout(new Promise((r) => ws.on('open', r)), 5000, 'open') };
}

async function waitFor(frames, pred, what) {
  const t0 = Date.now();
  for (;;) {
    const f = frames.find(pred);
    if (f) return f;
    if (Date.now() - t0 > 5000) assert.fail(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** Sends text in n fragments (TEXT, then CONT..., the last with FIN). */
function sendFragmented(ws, text, n) {
  const step = Math.ceil(text.length / n);
  for (let i = 0; i < n; i++) {
    ws.send(text.slice(i * step, (i + 1) * step), { fin: i === n - 1 });
  }
}

test('RTN2 a connection sends several fragmented messages, with pings between fragments and whole messages between them', async () => {
  const c = open();
  await c.opened;
  await waitFor(c.frames, (f) => f.action === 4, 'CONNECTED');
  const names = [uniqueChannel('frag'), uniqueChannel('frag'), uniqueChannel('frag')];
  // A fragmented ATTACH, with a ping between two of its fragments.
  const first = JSON.stringify({ action: 10, channel: names[0] });
  c.ws.send(first.slice(0, 5), { fin: false });
  c.ws.ping();
  c.ws.send(first.slice(5), { fin: true });
  await waitFor(c.frames, (f) => f.action === 11 && f.channel === names[0], 'ATTACHED 1');
  // A whole one, then another fragmented one (the reassembly starts again).
  c.ws.send(JSON.stringify({ action: 10, channel: names[1] }));
  await waitFor(c.frames, (f) => f.action === 11 && f.channel === names[1], 'ATTACHED 2');
  sendFragmented(c.ws, JSON.stringify({ action: 10, channel: names[2] }), 4);
  await waitFor(c.frames, (f) => f.action === 11 && f.channel === names[2], 'ATTACHED 3');
  // A fragmented publish is delivered to the attached channel (echo is on).
  sendFragmented(c.ws, JSON.stringify({ action: 15, msgSerial: 0, channel: names[2], messages: [{ name: 'n', data: 'x'.repeat(3000) }] }), 3);
  const msg = await waitFor(c.frames, (f) => f.action === 15 && f.channel === names[2], 'the MESSAGE');
  assert.equal(msg.messages[0].data.length, 3000);
  await waitFor(c.frames, (f) => f.action === 1 && f.msgSerial === 0, 'the ACK');
  c.ws.close();
  await withTimeout(c.closed, 5000, 'close');
});

test('RFC 6455 §5.4 a continuation frame with nothing to continue closes the connection with 1002', async () => {
  const c = open();
  await c.opened;
  await waitFor(c.frames, (f) => f.action === 4, 'CONNECTED');
  // ws has no API for a bare continuation: write the frame ourselves
  // (FIN + opcode 0, masked, 1-byte payload).
  c.ws._socket.write(Buffer.from([0x80, 0x81, 1, 2, 3, 4, 0x78 ^ 1]));
  const code = await withTimeout(c.closed, 5000, 'the close');
  assert.equal(code, 1002);
});
