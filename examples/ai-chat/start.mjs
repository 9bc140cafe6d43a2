// One command for the whole demo (`npm start`): starts switchboard from
// ../../build/switchboard (or $SWITCHBOARD_BIN) in memory with an app whose
// `conversations` namespace has the rules AI Transport needs, then the app
// server. Ctrl-C stops both.
//
// Environment: SWITCHBOARD_BIN, PORT (app server, default 3000; 0 = any),
// SWITCHBOARD_LISTEN (default 127.0.0.1:0), WORD_DELAY_MS (default 120),
// TLS_CERT and TLS_KEY (PEM files: the page, switchboard and the agent's
// connection over HTTPS and WSS; Node must trust the certificate, e.g. with
// NODE_EXTRA_CA_CERTS=ca.pem for a private CA).
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startChat, keepRunningOnUnhandledRejections } from './server.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const bin = process.env.SWITCHBOARD_BIN || path.resolve(here, '..', '..', 'build', 'switchboard');

const secret = crypto.randomBytes(24).toString('base64url');
const config = {
  apps: [
    {
      id: 'aichat',
      keys: [{ id: 'server', secret }],
      namespaces: [
        // mutableMessages: the agent streams by appending to one message.
        // cancelByTurnOwnerOnly: only the user who started a turn may cancel it.
        { id: 'conversations', mutableMessages: true, cancelByTurnOwnerOnly: true, persisted: true },
      ],
    },
  ],
};
const dir = mkdtempSync(path.join(tmpdir(), 'ai-chat-'));
const configFile = path.join(dir, 'switchboard.json');
writeFileSync(configFile, JSON.stringify(config, null, 2), { mode: 0o600 });

const tls = process.env.TLS_CERT && process.env.TLS_KEY ? { cert: process.env.TLS_CERT, key: process.env.TLS_KEY } : null;
const tlsArgs = tls ? ['--tls-cert', tls.cert, '--tls-key', tls.key] : [];
const sb = spawn(bin, ['serve', '--config', configFile, '--memory', '--listen', process.env.SWITCHBOARD_LISTEN || '127.0.0.1:0', ...tlsArgs], {
  stdio: ['ignore', 'pipe', 'inherit'],
});
sb.on('error', (e) => {
  console.error(`cannot start ${bin}: ${e.message}\nbuild it first: cmake -S ../.. -B ../../build && cmake --build ../../build -j2`);
  process.exit(1);
});
const switchboardUrl = await new Promise((resolve, reject) => {
  let out = '';
  sb.stdout.setEncoding('utf8').on('data', (d) => {
    out += d;
    const m = /listening on (https?:\/\/[0-9.]+:\d+)/.exec(out);
    if (m) resolve(m[1]);
  });
  sb.on('exit', (code) => reject(new Error(`switchboard exited (${code}) before listening:\n${out}`)));
});
sb.stdout.resume();
console.log(`switchboard: ${switchboardUrl} (app aichat, key aichat.server)`);

keepRunningOnUnhandledRejections();
let chat;
try {
  chat = await startChat({
    ablyKey: `aichat.server:${secret}`,
    switchboardUrl,
    port: Number(process.env.PORT ?? 3000),
    wordDelayMs: Number(process.env.WORD_DELAY_MS ?? 120),
    tls: tls && { cert: readFileSync(tls.cert), key: readFileSync(tls.key) },
  });
} catch (e) {
  console.error(`ai-chat: ${e.message}`);
  sb.kill('SIGTERM');
  process.exit(1);
}
console.log(`ai-chat: open ${chat.url}`);

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  await chat.close().catch(() => {});
  sb.kill('SIGTERM');
  const code = await new Promise((r) => (sb.exitCode !== null ? r(sb.exitCode) : sb.once('exit', (c) => r(c ?? 1))));
  rmSync(dir, { recursive: true, force: true });
  process.exit(code); // switchboard's own status: 0 after a clean shutdown
}
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
sb.on('exit', (code) => {
  if (!stopping) {
    console.error(`switchboard exited unexpectedly (${code})`);
    process.exit(1);
  }
});
