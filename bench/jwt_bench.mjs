// Node side of bench/jwt.sh.
//
//   node bench/jwt_bench.mjs mint   KEYNAME SECRET
//     prints an Ably JWT made exactly as Ably's docs show (jsonwebtoken, HS256,
//     keyid = key name, expiresIn 1h, the secret as a UTF-8 string)
//   node bench/jwt_bench.mjs verify TOKEN SECRET SECONDS [ROUNDS]
//     runs jsonwebtoken.verify on TOKEN for SECONDS with a KeyObject secret
//     (crypto.createSecretKey, so no per-call key import) and prints
//     "node_jsonwebtoken_verify <ops/s>", the best of ROUNDS (default 3)
//     rounds as on the C side
import { createSecretKey } from 'node:crypto';
import jwt from 'jsonwebtoken';

const [mode, a1, a2, a3, a4] = process.argv.slice(2);

if (mode === 'mint') {
  const keyName = a1, keySecret = a2;
  const userId = 'user-42';
  const token = jwt.sign(
    {
      'x-ably-capability': JSON.stringify({ 'chat:*': ['publish', 'subscribe', 'presence'] }),
      'x-ably-clientId': userId,
    },
    keySecret,
    { algorithm: 'HS256', keyid: keyName, expiresIn: '1h' },
  );
  process.stdout.write(token + '\n');
} else if (mode === 'verify') {
  const token = a1, key = createSecretKey(Buffer.from(a2, 'utf8')), seconds = Number(a3 || 2);
  const opts = { algorithms: ['HS256'] };
  const run = (ms) => {
    const end = process.hrtime.bigint() + BigInt(Math.round(ms * 1e6));
    let n = 0, sink = 0;
    for (;;) {
      for (let i = 0; i < 256; i++) sink += jwt.verify(token, key, opts).exp;
      n += 256;
      if (process.hrtime.bigint() >= end) break;
    }
    if (sink === 0) throw new Error('unreachable');
    return n;
  };
  // Sanity: the token verifies and carries what the snippet put in.
  const claims = jwt.verify(token, key, opts);
  if (claims['x-ably-clientId'] !== 'user-42') throw new Error('unexpected claims');
  run(500); // warm-up: let V8 optimise the hot path
  let best = 0;
  const rounds = Math.min(Math.max(Number(a4) || 3, 1), 100);
  for (let round = 0; round < rounds; round++) {
    const t0 = process.hrtime.bigint();
    const n = run(seconds * 1000);
    const dt = Number(process.hrtime.bigint() - t0) / 1e9;
    best = Math.max(best, n / dt);
  }
  console.log(`node_jsonwebtoken_verify ${Math.round(best)}`);
} else {
  console.error('usage: jwt_bench.mjs mint KEYNAME SECRET | verify TOKEN SECRET SECONDS');
  process.exit(2);
}
