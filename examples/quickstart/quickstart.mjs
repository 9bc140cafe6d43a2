import Ably from 'ably';

// The key `switchboard serve` printed on its first start (`switchboard apps` shows it again).
const key = process.argv[2] ?? process.env.SWITCHBOARD_KEY;
const port = Number(process.env.SWITCHBOARD_PORT ?? 8080);
if (!key) throw new Error('usage: node quickstart.mjs KEY');
const client = new Ably.Realtime({ key, endpoint: '127.0.0.1', port, tls: false });
setTimeout(() => {
  console.error(`nothing received within 10 s: is switchboard listening on 127.0.0.1:${port}?`);
  process.exit(1);
}, 10_000).unref();

const channel = client.channels.get('chat');
await channel.subscribe('greeting', (message) => {
  console.log(`received: ${message.data}`);
  client.close();
});
await channel.publish('greeting', 'hello');
