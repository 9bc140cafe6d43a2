// Node side of bench/idp.sh: Node's `jose` verifying the very tokens
// bench_idp verified (its --tokens file), with the checks the server makes:
// signature, iss, aud, exp/nbf/iat, the algorithm allow-list.
//
//   node bench/idp_jose.mjs TOKENS.json [SECONDS]
//
// For each algorithm: jwtVerify(token, createLocalJWKSet(jwks), {issuer,
// audience, algorithms}), the way a Node server verifies provider tokens
// (the JWK Set object imports each key once and keeps it). jose's verify is
// asynchronous (WebCrypto), so two ways: "jose" runs 16 at a time
// (Promise.all), as a server with many connecting clients would, and
// "jose1" one at a time (await each), as a simple loop does; the first is
// the faster. Prints "<alg> jose <ops/s> cpu=<share>" and the same for
// jose1: ops per second of the process's CPU time (user + system, all
// threads: WebCrypto work runs on libuv's thread pool), as bench_idp and
// `openssl speed` count, and the share of the wall-clock time the process
// had a CPU.
import { readFileSync } from 'node:fs';
import { createLocalJWKSet, jwtVerify } from 'jose';

const [file, secondsArg] = process.argv.slice(2);
if (!file) {
  console.error('usage: idp_jose.mjs TOKENS.json [SECONDS]');
  process.exit(2);
}
const seconds = Number(secondsArg || 1);
const tokens = JSON.parse(readFileSync(file, 'utf8'));

const cpuSeconds = (since) => {
  const u = process.cpuUsage(since);
  return (u.user + u.system) / 1e6;
};

async function measure(verifyOnce, inFlight, cpuBudget) {
  const c0 = process.cpuUsage();
  const w0 = process.hrtime.bigint();
  let n = 0;
  let cpu = 0;
  const batch = new Array(inFlight);
  do {
    for (let i = 0; i < inFlight; i++) batch[i] = verifyOnce();
    await Promise.all(batch);
    n += inFlight;
    cpu = cpuSeconds(c0);
  } while (cpu < cpuBudget);
  const wall = Number(process.hrtime.bigint() - w0) / 1e9;
  return { rate: n / cpu, share: cpu / wall };
}

for (const [alg, t] of Object.entries(tokens)) {
  const jwks = createLocalJWKSet(t.jwks);
  const opts = { issuer: t.issuer, audience: t.audience, algorithms: [alg] };
  const verifyOnce = () => jwtVerify(t.token, jwks, opts);
  const { payload } = await verifyOnce(); // it verifies, and it is the token we think
  if (payload.iss !== t.issuer || payload.aud !== t.audience) throw new Error(`${alg}: unexpected claims`);
  await measure(verifyOnce, 16, Math.min(0.3, seconds)); // warm-up: let V8 optimise the path
  for (const [stage, inFlight] of [['jose', 16], ['jose1', 1]]) {
    const { rate, share } = await measure(verifyOnce, inFlight, seconds);
    console.log(`${alg} ${stage} ${Math.round(rate)} cpu=${share.toFixed(2)}`);
  }
}
