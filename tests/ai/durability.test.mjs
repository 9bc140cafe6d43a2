// Durable sessions: the client's socket cut mid-stream, the agent's socket cut
// mid-stream, a second device of the same user (live and from history), and a
// page reload mid-stream. Real SDKs, real sockets, the built server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  useEnv, scope, userClient, agentClient, connected, clientSession, runAgent, scriptedAnswer,
  transcript, recordGrowth, waitForAnswer, waitUntil, withTimeout, codec, uniqueId, dropFor,
  recordStates, lastAssistant,
} from './lib/harness.mjs';

const env = useEnv();

/** Channel state changes after the first attach (RTL2f: resumed flag). */
function recordChannel(channel) {
  const changes = [];
  channel.on((sc) => changes.push({ current: sc.current, resumed: sc.resumed, reason: sc.reason?.code }));
  return changes;
}

for (const binary of [true, false]) {
  const proto = binary ? 'msgpack' : 'json';
  test(`RTN15 AIT-CT19 AIT-CD8: the client's socket cut mid-stream: after resuming it holds the whole answer, no token lost or repeated [${proto}]`, { timeout: 30_000 }, async (t) => {
    const s = scope(t);
    const user = uniqueId('alice');
    const channelName = `conversations:${user}`;
    const client = userClient(s, env, env.tokens.login(user), { useBinaryProtocol: binary });
    await connected(client);
    const connId = client.connection.id;
    const session = await clientSession(s, client, channelName);
    const chan = recordChannel(client.channels.get(channelName));
    const states = recordStates(client);
    const growth = recordGrowth(session.view);
    const agent = agentClient(s, env, { useBinaryProtocol: binary });

    const run = await session.view.send(codec.createUserMessage({ id: 'u1', role: 'user', text: 'long answer please' }));
    const answer = scriptedAnswer('long answer please', 60);
    let atDrop = null;
    let atReconnect = null;
    client.connection.on('connected', () => {
      if (atDrop && atReconnect === null) atReconnect = rec.sent;
    });
    const rec = { sent: 0 };
    const agentDone = runAgent(agent, run.toInvocation().toJSON(), {
      answer,
      delayMs: 15,
      onDelta: (n) => { rec.sent = n; },
    });
    // Cut the client's socket once it has shown a good part of the answer.
    await waitUntil(() => (lastAssistant(session.view)?.text.length ?? 0) > answer.length / 4, 10_000, 'a quarter of the answer');
    atDrop = rec.sent;
    dropFor(client, 400);
    await waitUntil(() => atReconnect !== null, 10_000, 'the client to reconnect', () => JSON.stringify(states.map((x) => x.current)));
    await waitForAnswer(session.view, answer);
    const agentRec = await withTimeout(agentDone, 10_000, 'agent done');
    assert.equal(agentRec.pipeReason, 'complete', 'the agent never noticed');

    assert.ok(atReconnect > atDrop, `the agent streamed while the client was away (words ${atDrop} -> ${atReconnect})`);
    assert.ok(atReconnect < 61, `the client came back before the answer ended (words at reconnect: ${atReconnect})`);
    assert.ok(states.some((x) => x.current === 'disconnected'), 'went through DISCONNECTED');
    assert.equal(client.connection.id, connId, 'RTN15c6 resumed the same connection');
    const reattach = chan.filter((c) => c.current === 'attached');
    assert.ok(reattach.length >= 1, `the channel re-attached: ${JSON.stringify(chan)}`);
    for (const c of reattach) assert.equal(c.resumed, true, `RTL2f re-attach after resume is RESUMED: ${JSON.stringify(chan)}`);
    growth.assertMonotonic(assert);
    assert.deepEqual(transcript(session.view), [
      { role: 'user', text: 'long answer please', done: true },
      { role: 'assistant', text: answer, done: true },
    ]);
    await waitUntil(() => run.status === 'complete', 5000, 'run complete on the client');
    assert.deepEqual(session.errors.map((e) => e.code), [], 'AIT-CT19: no continuity loss reported');
  });
}

test('RTN19a AIT-CD6: the agent\'s socket cut mid-stream: appends in flight are resent once, the stored answer is whole', { timeout: 30_000 }, async (t) => {
  const s = scope(t);
  const user = uniqueId('alice');
  const channelName = `conversations:${user}`;
  const client = userClient(s, env, env.tokens.login(user));
  const session = await clientSession(s, client, channelName);
  const growth = recordGrowth(session.view);
  const agent = agentClient(s, env);
  await connected(agent);
  const agentConn = agent.connection.id;
  const run = await session.view.send(codec.createUserMessage({ id: 'u1', role: 'user', text: 'go' }));
  const answer = scriptedAnswer('go', 60);
  let dropped = false;
  const agentRec = await withTimeout(
    runAgent(agent, run.toInvocation().toJSON(), {
      answer,
      delayMs: 10,
      onDelta: (n) => {
        if (n === 20 && !dropped) {
          dropped = true;
          dropFor(agent, 300);
        }
      },
    }),
    20_000,
    'agent done',
  );
  assert.ok(dropped, 'the agent socket was cut');
  assert.equal(agentRec.pipeReason, 'complete', `pipe: ${agentRec.pipeReason} ${agentRec.errors.map((e) => e.message)}`);
  assert.deepEqual(agentRec.errors.map((e) => `${e.code} ${e.message}`), [], 'no encoder recovery was needed');
  assert.equal(agent.connection.id, agentConn, 'the agent resumed its connection');
  await waitForAnswer(session.view, answer);
  growth.assertMonotonic(assert);

  // A fresh reader (history) sees exactly the answer: no append applied twice.
  const reader = userClient(s, env, env.tokens.login(user));
  const later = await clientSession(s, reader, channelName);
  while (later.view.hasOlder()) await later.view.loadOlder();
  assert.deepEqual(transcript(later.view), transcript(session.view));
});

test('AIT-CT10b AIT-CT11: a second device of the same user sees the conversation live, a third loads it from history', { timeout: 30_000 }, async (t) => {
  const s = scope(t);
  const user = uniqueId('dave');
  const channelName = `conversations:${user}`;
  const phone = userClient(s, env, env.tokens.login(user));
  const laptop = userClient(s, env, env.tokens.login(user));
  const phoneSession = await clientSession(s, phone, channelName);
  const laptopSession = await clientSession(s, laptop, channelName);
  const laptopGrowth = recordGrowth(laptopSession.view);
  const agent = agentClient(s, env);

  const prompt = 'sent from the phone';
  const run = await phoneSession.view.send(codec.createUserMessage({ id: 'u1', role: 'user', text: prompt }));
  const answer = scriptedAnswer(prompt, 30);
  await waitUntil(() => transcript(laptopSession.view).some((m) => m.role === 'user' && m.text === prompt), 5000, 'the prompt on the laptop');
  const agentDone = runAgent(agent, run.toInvocation().toJSON(), { answer, delayMs: 15 });
  await Promise.all([waitForAnswer(phoneSession.view, answer), waitForAnswer(laptopSession.view, answer)]);
  await withTimeout(agentDone, 10_000, 'agent done');

  assert.ok(laptopGrowth.seen.length >= 10, `the laptop saw the answer stream (${laptopGrowth.seen.length} steps)`);
  laptopGrowth.assertMonotonic(assert);
  const expected = [
    { role: 'user', text: prompt, done: true },
    { role: 'assistant', text: answer, done: true },
  ];
  assert.deepEqual(transcript(laptopSession.view), expected);
  await waitUntil(() => laptopSession.view.runs().at(-1)?.status === 'complete', 5000, 'run complete on the laptop');
  assert.equal(laptopSession.view.runs().at(-1).runId, run.runId);
  assert.equal(laptopSession.view.runs().at(-1).clientId, user);

  // A third device opens the conversation afterwards: history (untilAttach).
  const tablet = userClient(s, env, env.tokens.login(user));
  const tabletSession = await clientSession(s, tablet, channelName);
  assert.equal(tabletSession.view.hasOlder(), true, 'there is history to load');
  while (tabletSession.view.hasOlder()) await tabletSession.view.loadOlder();
  assert.deepEqual(transcript(tabletSession.view), expected);
  assert.equal(tabletSession.view.runs().at(-1)?.status, 'complete');
});

test('AIT-CT11 AIT-CD9: a page reload mid-stream: the new client session recovers the whole answer', { timeout: 30_000 }, async (t) => {
  const s = scope(t);
  const user = uniqueId('erin');
  const channelName = `conversations:${user}`;
  const cookie = env.tokens.login(user);
  const first = userClient(s, env, cookie);
  const firstSession = await clientSession(s, first, channelName);
  const agent = agentClient(s, env);
  const prompt = 'reload while you answer';
  const run = await firstSession.view.send(codec.createUserMessage({ id: 'u1', role: 'user', text: prompt }));
  const answer = scriptedAnswer(prompt, 100);
  const agentDone = runAgent(agent, run.toInvocation().toJSON(), { answer, delayMs: 15 });
  await waitUntil(() => (lastAssistant(firstSession.view)?.text.length ?? 0) > answer.length / 4, 10_000, 'a third of the answer');

  // The page goes away: session and client closed, nothing kept.
  await firstSession.close();
  first.close();

  const second = userClient(s, env, cookie);
  const secondSession = await clientSession(s, second, channelName);
  const growth = recordGrowth(secondSession.view);
  while (secondSession.view.hasOlder()) await secondSession.view.loadOlder();
  const partial = lastAssistant(secondSession.view);
  assert.ok(partial, `the reloaded page shows the answer so far: ${JSON.stringify(transcript(secondSession.view))}`);
  await waitForAnswer(secondSession.view, answer);
  const rec = await withTimeout(agentDone, 10_000, 'agent done');
  assert.equal(rec.pipeReason, 'complete');
  assert.equal(partial.done, false, 'the answer was still streaming when the reloaded page loaded it');
  assert.ok(answer.startsWith(partial.text) && partial.text.length > answer.length / 4, `history served the answer so far: ${JSON.stringify(partial.text)}`);
  growth.assertMonotonic(assert);
  assert.deepEqual(transcript(secondSession.view), [
    { role: 'user', text: prompt, done: true },
    { role: 'assistant', text: answer, done: true },
  ]);
  await waitUntil(() => secondSession.view.runs().at(-1)?.status === 'complete', 5000, 'run complete after reload');
  assert.deepEqual(secondSession.errors.map((e) => e.code), []);
});
