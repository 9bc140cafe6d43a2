// AI Transport streams by appending to one message: that needs the namespace
// rule `mutableMessages`. Without it the server refuses appends and updates
// with 93002, the code the SDK documents for a missing rule.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  useEnv, scope, userClient, agentClient, clientSession, runAgent, scriptedAnswer, transcript,
  withTimeout, settle, codec, uniqueId, waitUntil, sleep,
} from './lib/harness.mjs';

const env = useEnv();

/** Every Ably error code in an error's cause chain. */
const codes = (e) => {
  const out = [];
  for (let x = e; x && out.length < 10; x = x.cause) if (x.code !== undefined) out.push(x.code);
  return out;
};

test('RTL32 93002: appendMessage and updateMessage on a namespace without mutableMessages are refused', { timeout: 20_000 }, async (t) => {
  const s = scope(t);
  const agent = agentClient(s, env);
  for (const [ns, allowed] of [['plain', false], ['conversations', true]]) {
    const ch = agent.channels.get(`${ns}:${uniqueId('u')}`);
    const { serials } = await ch.publish({ name: 'ai-output', data: 'Hello' });
    const append = await settle(ch.appendMessage({ serial: serials[0], data: ' world' }));
    const update = await settle(ch.updateMessage({ serial: serials[0], data: 'Hi' }));
    if (allowed) {
      assert.equal(append.ok, true, `append on ${ns}: ${append.error?.code} ${append.error?.message}`);
      assert.equal(update.ok, true, `update on ${ns}: ${update.error?.code}`);
    } else {
      assert.equal(append.ok, false, `append on ${ns} must be refused`);
      assert.equal(append.error.code, 93002, `append on ${ns}: ${append.error.code} ${append.error.message}`);
      assert.equal(update.ok, false, `update on ${ns} must be refused`);
      assert.equal(update.error.code, 93002, `update on ${ns}: ${update.error.code}`);
      const history = await ch.history();
      assert.deepEqual(history.items.map((m) => m.data), ['Hello'], 'the message is unchanged');
    }
  }
});

test('AIT-CD6 93002: an agent streaming into a namespace without mutableMessages fails the stream; no tokens reach the client', { timeout: 20_000 }, async (t) => {
  const s = scope(t);
  const user = uniqueId('gina');
  const channelName = `plain:${user}`;
  const client = userClient(s, env, env.tokens.login(user));
  const session = await clientSession(s, client, channelName);
  const run = await session.view.send(codec.createUserMessage({ id: 'g1', role: 'user', text: 'hello?' }));
  const answer = scriptedAnswer('hello?', 10);
  const agent = agentClient(s, env);
  // The encoder fires appends without awaiting them and only collects their
  // outcome when it flushes (encoder.ts appendStream/_flushPending), so in
  // Node each refused append is reported as an unhandled rejection first.
  // That is SDK behaviour (the same against Ably); mark them handled here.
  const ch = agent.channels.get(channelName);
  const appendMessage = ch.appendMessage.bind(ch);
  ch.appendMessage = (...args) => {
    const p = appendMessage(...args);
    p.catch(() => {});
    return p;
  };
  const rec = await withTimeout(runAgent(agent, run.toInvocation().toJSON(), { answer, delayMs: 5 }), 10_000, 'agent done');
  assert.equal(rec.pipeReason, 'error', `pipe: ${rec.pipeReason}`);
  const all = rec.errors.flatMap(codes);
  assert.ok(all.includes(93002), `the SDK surfaced 93002 (codes: ${JSON.stringify(all)}; ${rec.errors.map((e) => e.message).join(' | ')})`);
  await waitUntil(() => session.view.runs().at(-1)?.status === 'error', 5000, 'run ended in error on the client', () => JSON.stringify(session.view.runs()));
  await sleep(100);
  const assistant = transcript(session.view).filter((m) => m.role === 'assistant');
  assert.ok(assistant.every((m) => m.text === ''), `no tokens reached the client: ${JSON.stringify(assistant)}`);
});
