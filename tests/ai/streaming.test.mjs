// Streaming a whole answer from an agent to a user's client session over
// switchboard, with @ably/ai-transport's core SDK (custom text codec) on the
// real ably SDK, in msgpack and JSON.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  useEnv, scope, userClient, agentClient, connected, clientSession, runAgent, scriptedAnswer,
  transcript, recordGrowth, waitForAnswer, waitUntil, withTimeout, codec, Ably, uniqueId,
} from './lib/harness.mjs';

const env = useEnv();

for (const binary of [true, false]) {
  const proto = binary ? 'msgpack' : 'json';
  test(`AIT-CT2 AIT-CT3 AIT-ST4 AIT-CD2 AIT-CD3 AIT-CD4 AIT-CD8: a whole answer streams word by word to the client [${proto}]`, { timeout: 30_000 }, async (t) => {
    const s = scope(t);
    const user = uniqueId('alice');
    const channelName = `conversations:${user}`;
    const client = userClient(s, env, env.tokens.login(user), { useBinaryProtocol: binary });
    await connected(client);
    assert.equal(client.auth.clientId, user, 'the JWT binds the clientId');
    const session = await clientSession(s, client, channelName);

    // The raw wire as the client's channel sees it.
    const wire = [];
    client.channels.get(channelName).subscribe((m) => wire.push(m));
    const growth = recordGrowth(session.view);

    // One delivery per word (appendRollupWindow 0), as Ably's own AI Transport
    // tests do, so that the wire below has an append for each; the default
    // window (40 ms) is rollup.test.mjs's.
    const agent = agentClient(s, env, { useBinaryProtocol: binary, transportParams: { appendRollupWindow: 0 } });
    const prompt = 'tell me a story';
    const run = await session.view.send(codec.createUserMessage({ id: 'u1', role: 'user', text: prompt }));
    const answer = scriptedAnswer(prompt, 30);
    const agentDone = runAgent(agent, run.toInvocation().toJSON(), { answer, delayMs: 15 });

    await withTimeout(run.started, 8000, 'ai-run-start for the send');
    assert.match(run.runId, /.+/, 'the agent-minted run id reached the client');
    await waitForAnswer(session.view, answer);
    const rec = await withTimeout(agentDone, 10_000, 'agent finished');
    assert.equal(rec.pipeReason, 'complete');
    assert.deepEqual(rec.errors, [], 'agent saw no errors');
    await withTimeout(
      (async () => { while (run.status !== 'complete') await new Promise((r) => setTimeout(r, 20)); })(),
      5000, 'run status complete on the client',
    );

    assert.deepEqual(transcript(session.view), [
      { role: 'user', text: prompt, done: true },
      { role: 'assistant', text: answer, done: true },
    ]);
    const info = session.view.runs().find((r) => r.runId === run.runId);
    assert.equal(info?.status, 'complete', `runs(): ${JSON.stringify(session.view.runs())}`);
    assert.equal(info.clientId, user, 'the run is owned by the user (run-client-id)');

    // Streamed, not delivered in one piece: the client saw the text grow, each
    // step a prefix of the next.
    growth.off();
    assert.ok(growth.seen.length >= 10, `text grew in ${growth.seen.length} steps: ${JSON.stringify(growth.seen)}`);
    growth.assertMonotonic(assert);

    // On the wire: one ai-output message created with stream=true, then grown
    // by message.append actions on the same serial, closed with status complete.
    const outputs = wire.filter((m) => m.name === 'ai-output' || m.action === 'message.append');
    const create = outputs.find((m) => m.action === 'message.create' && m.extras?.ai?.transport?.stream === 'true');
    assert.ok(create, `a streamed ai-output create: ${JSON.stringify(wire.map((m) => [m.name, m.action]))}`);
    const appends = wire.filter((m) => m.action === 'message.append' && m.serial === create.serial);
    assert.ok(appends.length >= 30, `appends on ${create.serial}: ${appends.length}`);
    assert.equal(create.data + appends.map((m) => m.data).join(''), answer, 'create + appends = the answer');
    assert.equal(appends.at(-1).extras?.ai?.transport?.status, 'complete', 'the last append closes the stream');
    const versions = appends.map((m) => m.version?.serial);
    assert.ok(versions.every((v) => typeof v === 'string' && v > create.serial), 'each append has a version serial after the message serial');
    assert.deepEqual([...versions].sort(), versions, 'append versions increase');
    assert.equal(new Set(versions).size, versions.length, 'append versions are unique');
    for (const name of ['ai-input', 'ai-run-start', 'ai-run-end']) {
      assert.ok(wire.some((m) => m.name === name), `${name} on the wire`);
    }
    const runEnd = wire.find((m) => m.name === 'ai-run-end');
    assert.equal(runEnd.extras.ai.transport['run-reason'], 'complete');
    assert.equal(runEnd.extras.ai.transport['run-client-id'], user);

    // The server keeps one aggregated message: REST history and getMessage
    // serve the whole answer (action message.update, status complete).
    const rest = new Ably.Rest({ key: env.app.keyStr, endpoint: env.server.host, port: env.server.port, tls: false, useBinaryProtocol: binary });
    const page = await rest.channels.get(channelName).history({ limit: 100 });
    const stored = page.items.filter((m) => m.serial === create.serial);
    assert.equal(stored.length, 1, 'history holds the streamed message once');
    assert.equal(stored[0].action, 'message.update');
    assert.equal(stored[0].data, answer);
    assert.equal(stored[0].extras?.ai?.transport?.status, 'complete');
    const got = await rest.channels.get(channelName).getMessage(create.serial);
    assert.equal(got.data, answer, 'getMessage(serial) is the aggregate');
    assert.deepEqual(session.errors, [], 'client session saw no errors');
  });
}

test('AIT-CT3c AIT-CT10: two prompts in one conversation: answers thread under their prompts', { timeout: 30_000 }, async (t) => {
  const s = scope(t);
  const user = uniqueId('carol');
  const client = userClient(s, env, env.tokens.login(user));
  const session = await clientSession(s, client, `conversations:${user}`);
  const agent = agentClient(s, env);
  const expected = [];
  for (const prompt of ['first question', 'second question']) {
    const run = await session.view.send(codec.createUserMessage({ id: uniqueId('u'), role: 'user', text: prompt }));
    const answer = scriptedAnswer(prompt, 8);
    const rec = await runAgent(agent, run.toInvocation().toJSON(), { answer, delayMs: 5 });
    assert.equal(rec.pipeReason, 'complete');
    await waitForAnswer(session.view, answer);
    expected.push({ role: 'user', text: prompt, done: true }, { role: 'assistant', text: answer, done: true });
  }
  assert.deepEqual(transcript(session.view), expected);
  /* A run's status comes with its own event, which can land a moment after
   * the answer's last words (seen under ASan): wait for it, then check. */
  const statuses = () => session.view.runs().map((r) => r.status);
  await waitUntil(() => statuses().every((st) => st === 'complete') && statuses().length === 2, 10_000,
    'both runs complete', () => JSON.stringify(statuses()));
  assert.deepEqual(statuses(), ['complete', 'complete']);
});
