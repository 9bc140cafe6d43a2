// A real browser against the example app: Debian's chromium, headless, driven
// by playwright-core. Starts the example exactly as its README does
// (`node examples/ai-chat/start.mjs`: switchboard + app server), logs in, sends
// a prompt and watches the answer stream in, reloads mid-stream and still gets
// the whole answer, cancels a second one, and opens the conversation on a
// second "device". Screenshots go to tests/ai/artifacts/.
//
// browserSuite({ tls: true }) runs it all over HTTPS and WSS: the example
// with TLS_CERT/TLS_KEY (switchboard's --tls-cert/--tls-key and the page's
// server), a throwaway CA the example's Node trusts (NODE_EXTRA_CA_CERTS)
// and Chromium trusts the certificate's key (--ignore-certificate-errors-spki-list);
// every WebSocket the page opens must be wss://.
//
// Needs: apt-get install -y chromium; npm ci --prefix examples/ai-chat.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { REPO_ROOT, ARTIFACTS_DIR, SERVER_BIN, withTimeout, uniqueId } from './harness.mjs';
import { makePki, spkiHash } from '../../lib/tls-certs.mjs';

const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const EXAMPLE = path.join(REPO_ROOT, 'examples', 'ai-chat');
const WORD_DELAY_MS = 40;

export function browserSuite({ tls = false } = {}) {
  const label = tls ? 'browser-tls' : 'browser';
  const env = { app: null, browser: null, url: null, log: '', shots: [], sockets: [] };

  before(async () => {
    assert.ok(existsSync(CHROMIUM), `${CHROMIUM} not found: apt-get install -y chromium`);
    assert.ok(existsSync(path.join(EXAMPLE, 'node_modules', '@ably', 'ai-transport')), 'example not installed: npm ci --prefix examples/ai-chat');
    mkdirSync(ARTIFACTS_DIR, { recursive: true });
    const extraEnv = {};
    const browserArgs = [];
    if (tls) {
      env.pki = makePki('sw-browser-tls-');
      const leaf = env.pki.issue('chat');
      Object.assign(extraEnv, { TLS_CERT: leaf.cert, TLS_KEY: leaf.key, NODE_EXTRA_CA_CERTS: env.pki.caFile });
      browserArgs.push(`--ignore-certificate-errors-spki-list=${spkiHash(leaf.pem)}`);
    }
    env.app = spawn(process.execPath, [path.join(EXAMPLE, 'start.mjs')], {
      env: { ...process.env, SWITCHBOARD_BIN: SERVER_BIN, PORT: '0', WORD_DELAY_MS: String(WORD_DELAY_MS), ...extraEnv },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    env.exited = new Promise((r) => env.app.on('exit', (code, signal) => r({ code, signal })));
    env.app.stderr.setEncoding('utf8').on('data', (d) => (env.log += d));
    env.url = await withTimeout(
      new Promise((resolve, reject) => {
        env.app.stdout.setEncoding('utf8').on('data', (d) => {
          env.log += d;
          const m = /ai-chat: open (\S+)/.exec(env.log);
          if (m) resolve(m[1]);
        });
        env.exited.then((e) => reject(new Error(`example exited ${JSON.stringify(e)}:\n${env.log}`)));
      }),
      20_000,
      'the example app to start',
    );
    const { chromium } = await import('playwright-core');
    env.browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync', ...browserArgs],
    });
    if (tls) assert.match(env.url, /^https:\/\//, 'the example serves its page over HTTPS');
    // The agent's scripted answer (same code the example runs).
    env.scriptedAnswer = (await import(path.join(EXAMPLE, 'agent.mjs'))).scriptedAnswer;
  });

  after(async () => {
    await env.browser?.close().catch(() => {});
    env.pki?.cleanup();
    for (const f of env.shots) console.log(`screenshot: ${f}`);
    if (!env.app) return;
    let exit = null;
    if (env.app.exitCode === null) {
      env.app.kill('SIGTERM'); // start.mjs stops the app server and switchboard
      exit = await withTimeout(env.exited, 8000, 'example exit').catch(() => null);
      if (!exit) env.app.kill('SIGKILL');
    }
    const log = path.join(ARTIFACTS_DIR, `${label}-example.log`);
    writeFileSync(log, env.log);
    const san = ['ERROR: AddressSanitizer', 'ERROR: LeakSanitizer', 'runtime error:'].find((p) => env.log.includes(p));
    assert.ok(!san, `sanitizer report from switchboard (${san}); see ${log}`);
    assert.deepEqual(exit, { code: 0, signal: null }, `the example (and switchboard) shut down cleanly; see ${log}`);
  });

  /** A page with console errors and page errors recorded. */
  async function newPage() {
    const context = await env.browser.newContext({ viewport: { width: 1100, height: 760 } });
    const page = await context.newPage();
    page.on('websocket', (ws) => env.sockets.push(ws.url()));
    page.problems = [];
    page.on('pageerror', (e) => page.problems.push(`pageerror: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error') page.problems.push(`console.error: ${m.text()}`);
    });
    return page;
  }

  async function shot(page, name) {
    const file = path.join(ARTIFACTS_DIR, `${label}-${String(env.shots.length + 1).padStart(2, '0')}-${name}.png`);
    await page.screenshot({ path: file, fullPage: true });
    env.shots.push(file);
    return file;
  }

  const lastAssistant = (page) => page.locator('.msg.assistant').last();
  const assistantText = async (page) => (await lastAssistant(page).locator('.text').textContent()) ?? '';
  const status = (page) => lastAssistant(page).getAttribute('data-status');
  const waitForStatus = (page, want) =>
    page.waitForFunction(
      (w) => [...document.querySelectorAll('.msg.assistant')].at(-1)?.dataset.status === w,
      want,
      { timeout: 10_000 },
    );

  async function waitForText(page, pred, what, ms = 15_000) {
    const deadline = Date.now() + ms;
    for (;;) {
      const text = (await page.locator('.msg.assistant').count()) ? await assistantText(page) : '';
      if (pred(text)) return text;
      if (page.problems.length || Date.now() > deadline) throw new Error(`timed out waiting for ${what}; text: ${JSON.stringify(text)}\n${page.problems.join('\n')}`);
      await page.waitForTimeout(25);
    }
  }

  /** Waits for the chat to be ready (connected, history loaded); fails at the first page error. */
  async function chatReady(page, ms = 15_000) {
    const deadline = Date.now() + ms;
    while (!(await page.locator('#chat[data-ready=true]').count())) {
      if (page.problems.length) throw new Error(`the page failed while opening the chat:\n${page.problems.join('\n')}`);
      if (Date.now() > deadline) throw new Error(`the chat did not become ready within ${ms} ms`);
      await page.waitForTimeout(25);
    }
  }

  async function login(page, user) {
    await page.goto(env.url);
    await page.fill('#user', user);
    await page.click('#login-button');
    await chatReady(page);
    assert.equal(await page.textContent('#who'), user);
  }

  async function ask(page, prompt) {
    const before = await page.locator('.msg.assistant').count();
    await page.fill('#prompt', prompt);
    await page.press('#prompt', 'Enter');
    await page.locator('.msg.user', { hasText: prompt }).waitFor({ timeout: 10_000 });
    await page.waitForFunction((n) => document.querySelectorAll('.msg.assistant').length > n, before, { timeout: 10_000 });
  }

  const user = uniqueId('alice');
  let page;
  const passed = new Set(); // later tests continue the conversation of earlier ones
  const requires = (name) => assert.ok(passed.has(name), `needs the conversation of the "${name}" test, which failed`);

  test(`${label}: log in, send a prompt, the answer streams in word by word`, { timeout: 60_000 }, async () => {
    page = await newPage();
    await login(page, user);
    assert.equal(await page.textContent('#connection'), 'connected');
    // Record every text the answer shows, in the page.
    await page.evaluate(() => {
      window.__seen = [];
      new MutationObserver(() => {
        const el = [...document.querySelectorAll('.msg.assistant .text')].at(-1);
        if (el && el.textContent !== window.__seen.at(-1)) window.__seen.push(el.textContent);
      }).observe(document.querySelector('#messages'), { childList: true, subtree: true, characterData: true });
    });
    const prompt = 'What is switchboard?';
    const expected = env.scriptedAnswer(prompt);
    await ask(page, prompt);
    await waitForText(page, (t) => t.length > expected.length / 3, 'a third of the answer');
    assert.equal(await status(page), 'streaming');
    assert.equal(await page.isEnabled('#cancel'), true, 'Stop is enabled while streaming');
    await shot(page, 'streaming');
    await waitForText(page, (t) => t === expected, 'the whole answer');
    await waitForStatus(page, 'complete');
    assert.equal(await page.isEnabled('#cancel'), false, 'Stop is disabled once complete');
    const seen = await page.evaluate(() => window.__seen);
    assert.ok(seen.length >= 10, `the answer appeared in ${seen.length} steps`);
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i].startsWith(seen[i - 1]), `step ${i} extends the previous text`);
    assert.equal(seen.at(-1), expected);
    await shot(page, 'complete');
    assert.deepEqual(page.problems, [], 'no errors in the page');
    passed.add('stream');
  });

  test(`${label}: reload mid-stream, the page recovers the whole answer`, { timeout: 60_000 }, async () => {
    requires('stream');
    const prompt = 'Tell me more, slowly';
    const expected = env.scriptedAnswer(prompt);
    await ask(page, prompt);
    const before = await waitForText(page, (t) => t.length > expected.length / 4, 'a quarter of the answer');
    await shot(page, 'before-reload');
    await page.reload();
    await chatReady(page);
    const after = await assistantText(page);
    assert.ok(after.length >= before.length && expected.startsWith(after), `after the reload the page shows the answer so far (${before.length} -> ${after.length} chars)`);
    assert.equal(await status(page), 'streaming', 'still streaming after the reload');
    await shot(page, 'after-reload');
    await waitForText(page, (t) => t === expected, 'the whole answer after the reload');
    await waitForStatus(page, 'complete');
    const texts = await page.locator('.msg .text').allTextContents();
    assert.deepEqual(texts, ['What is switchboard?', env.scriptedAnswer('What is switchboard?'), prompt, expected], 'the whole conversation after the reload');
    await shot(page, 'reloaded-complete');
    assert.deepEqual(page.problems, [], 'no errors in the page');
    passed.add('reload');
  });

  test(`${label}: cancel an answer with the Stop button`, { timeout: 60_000 }, async () => {
    requires('reload');
    const prompt = 'Please stop me';
    const expected = env.scriptedAnswer(prompt);
    await ask(page, prompt);
    await waitForText(page, (t) => t.length > 60, 'the answer to start');
    await page.click('#cancel');
    await waitForStatus(page, 'cancelled');
    const stopped = await assistantText(page);
    assert.ok(expected.startsWith(stopped) && stopped.length < expected.length, `a strict prefix of the answer (${stopped.length} of ${expected.length} chars)`);
    await page.waitForTimeout(WORD_DELAY_MS * 8);
    assert.equal(await assistantText(page), stopped, 'no more words after the cancel');
    assert.equal(await page.isEnabled('#cancel'), false);
    await shot(page, 'cancelled');
    assert.deepEqual(page.problems, [], 'no errors in the page');
    assert.match(env.log, new RegExp(`cancel for run \\S+ from ${user} \\(owner ${user}\\): accepted`), 'the agent\'s onCancel saw the owner\'s cancel');
    passed.add('cancel');
  });

  test(`${label}: a second device of the same user sees the whole conversation`, { timeout: 60_000 }, async () => {
    requires('cancel');
    const other = await newPage();
    await login(other, user);
    const texts = await other.locator('.msg .text').allTextContents();
    assert.equal(texts.length, 6, `three turns: ${JSON.stringify(texts)}`);
    assert.deepEqual(await other.locator('.msg.assistant').evaluateAll((els) => els.map((e) => e.dataset.status)), ['complete', 'complete', 'cancelled']);
    await shot(other, 'second-device');
    assert.deepEqual(other.problems, [], 'no errors in the page');
    await other.context().close();
  });

  if (tls) {
    test(`${label}: every WebSocket the page opened was wss://`, () => {
      assert.ok(env.sockets.length > 0, 'the page opened WebSockets');
      for (const u of env.sockets) assert.match(u, /^wss:\/\//, u);
    });
  }
}
