// The packaged server answers: GET /time (RSC16), then the real ably SDK
// connects with the development app's key, publishes, receives its message
// back and reads it from history. Every wait has a timeout.
// Usage: node smoke.mjs PORT KEY
import { createRequire } from 'node:module';

// The SDK comes from the integration tests' node_modules (npm ci there).
const require = createRequire(new URL('../integration/package.json', import.meta.url));
const Ably = require('ably');

const [port, key] = [Number(process.argv[2]), process.argv[3]];
const within = (p, ms, what) =>
  Promise.race([p, new Promise((_, rej) => setTimeout(() => rej(new Error(`timed out: ${what}`)), ms).unref())]);

const res = await within(fetch(`http://127.0.0.1:${port}/time`), 5000, 'GET /time');
const body = await res.json();
if (res.status !== 200 || !Array.isArray(body) || typeof body[0] !== 'number' || Math.abs(body[0] - Date.now()) > 60_000) {
  throw new Error(`GET /time: ${res.status} ${JSON.stringify(body)}`);
}
console.log(`ok: GET /time -> ${JSON.stringify(body)}`);

const opts = { key, endpoint: '127.0.0.1', port, tls: false, useBinaryProtocol: false, logLevel: 0 };
const client = new Ably.Realtime(opts);
try {
  await within(client.connection.once('connected'), 10_000, 'CONNECTED');
  const ch = client.channels.get('package-smoke');
  const got = new Promise((resolve) => ch.subscribe('greeting', resolve));
  await within(ch.attach(), 5000, 'ATTACHED');
  await within(ch.publish('greeting', 'hello from the package'), 5000, 'publish ACK');
  const msg = await within(got, 5000, 'the message back');
  if (msg.data !== 'hello from the package') throw new Error(`received ${JSON.stringify(msg.data)}`);
  const rest = new Ably.Rest(opts);
  const page = await within(rest.channels.get('package-smoke').history(), 5000, 'history');
  if (page.items.length !== 1 || page.items[0].data !== 'hello from the package') {
    throw new Error(`history: ${JSON.stringify(page.items)}`);
  }
  console.log('ok: ably SDK connected, published, received and read history');
} finally {
  client.close();
}
