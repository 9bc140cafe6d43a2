// Cancelling a run: by its owner (accepted; the agent's onCancel sees who
// asked and whose turn it is), by someone else under the namespace rule
// `cancelByTurnOwnerOnly` (refused by the server with 40160, the run goes on),
// and by someone else without the rule (delivered; the agent's onCancel hook
// decides).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  useEnv, scope, userClient, agentClient, clientSession, runAgent, scriptedAnswer, transcript,
  waitForAnswer, waitUntil, withTimeout, settle, codec, uniqueId, lastAssistant, http, Ably, AIT, sleep, USER_OPS,
} from './lib/harness.mjs';

const env = useEnv();

/** An ai-cancel message as the SDK builds it (cancel-envelope.ts buildCancelMessage). */
const cancelMessage = (target) => ({
  name: 'ai-cancel',
  extras: {
    ai: {
      transport: {
        'event-id': crypto.randomUUID(),
        ...(target.runId && { 'run-id': target.runId }),
        ...(target.inputCodecMessageId && { 'input-codec-message-id': target.inputCodecMessageId }),
      },
    },
  },
});

/** Starts a conversation for `owner` on `ns` and an agent answering slowly; resolves mid-stream. */
async function startTurn(s, { ns, owner, words = 80, delayMs = 20, onCancel, ownerSession }) {
  const channelName = `${ns}:${owner}`;
  let session = ownerSession;
  if (!session) {
    const client = userClient(s, env, env.tokens.login(owner));
    session = await clientSession(s, client, channelName);
  }
  const agent = agentClient(s, env);
  const prompt = `question from ${owner}`;
  const run = await session.view.send(codec.createUserMessage({ id: uniqueId('u'), role: 'user', text: prompt }));
  const answer = scriptedAnswer(prompt, words);
  const agentDone = runAgent(agent, run.toInvocation().toJSON(), { answer, delayMs, onCancel });
  agentDone.catch(() => {});
  await withTimeout(run.started, 8000, 'run started');
  // This run's own turn (BaseRun.messages): its prompt, then its answer so far.
  await waitUntil(() => (run.messages.find((m) => m.role === 'assistant')?.text.length ?? 0) > 20, 8000, 'the answer to start streaming');
  return { channelName, session, run, answer, agentDone, prompt };
}

for (const ns of ['conversations', 'guarded']) {
  test(`AIT-CT7 AIT-ST3a: the owner cancels by run-id (session.cancel) on ${ns}: accepted, the agent's onCancel sees who asked and the owner, the run ends cancelled`, { timeout: 30_000 }, async (t) => {
    const s = scope(t);
    const owner = uniqueId('alice');
    const turn = await startTurn(s, { ns, owner });
    await turn.session.cancel(turn.run.runId);
    const rec = await withTimeout(turn.agentDone, 10_000, 'agent done');
    assert.equal(rec.cancelRequests.length, 1, `onCancel calls: ${JSON.stringify(rec.cancelRequests)}`);
    assert.deepEqual(rec.cancelRequests[0], { runId: turn.run.runId, from: owner, owner });
    assert.equal(rec.pipeReason, 'cancelled');
    assert.equal(rec.status, 'cancelled');
    assert.ok(rec.sent < 81, `the agent stopped early (${rec.sent} of 81 words)`);
    await waitUntil(() => turn.run.status === 'cancelled', 5000, 'run cancelled on the client', () => turn.run.status);
    assert.equal(turn.session.view.runs().at(-1).status, 'cancelled');
    const partial = lastAssistant(turn.session.view).text;
    assert.ok(turn.answer.startsWith(partial) && partial.length < turn.answer.length, `a strict prefix of the answer: ${JSON.stringify(partial)}`);

    // History keeps the partial answer, closed as cancelled, and the run-end.
    const rest = new Ably.Rest({ key: env.app.keyStr, endpoint: env.server.host, port: env.server.port, tls: false });
    const items = (await rest.channels.get(turn.channelName).history({ limit: 100 })).items;
    const streamed = items.find((m) => m.name === 'ai-output' && m.extras?.ai?.transport?.stream === 'true');
    assert.equal(streamed?.extras.ai.transport.status, 'cancelled', `stored stream status: ${JSON.stringify(streamed?.extras)}`);
    assert.equal(streamed.data, partial, 'history holds exactly the part the client saw');
    const end = items.find((m) => m.name === 'ai-run-end');
    assert.equal(end?.extras.ai.transport['run-reason'], 'cancelled');
  });
}

test('AIT-CT7a: the owner cancels by input-codec-message-id (run.cancel) under cancelByTurnOwnerOnly: accepted', { timeout: 30_000 }, async (t) => {
  const s = scope(t);
  const owner = uniqueId('alice');
  const turn = await startTurn(s, { ns: 'guarded', owner });
  await turn.run.cancel();
  const rec = await withTimeout(turn.agentDone, 10_000, 'agent done');
  assert.deepEqual(rec.cancelRequests, [{ runId: turn.run.runId, from: owner, owner }]);
  assert.equal(rec.status, 'cancelled');
  await waitUntil(() => turn.run.status === 'cancelled', 5000, 'run cancelled on the client');
});

test('cancelByTurnOwnerOnly: another user on the same conversation cannot cancel (40160, realtime and REST, by run-id and by input), the run goes on', { timeout: 30_000 }, async (t) => {
  const s = scope(t);
  const owner = uniqueId('alice');
  const other = uniqueId('mallory');
  const channelName = `guarded:${owner}`;
  // The conversation is shared with the other user: their token may publish on it.
  const intruder = userClient(s, env, env.tokens.login(other, { share: [channelName] }));
  const intruderSession = await clientSession(s, intruder, channelName);
  const turn = await startTurn(s, { ns: 'guarded', owner, words: 60, delayMs: 20 });
  await waitUntil(() => intruderSession.view.runs().some((r) => r.runId === turn.run.runId), 5000, 'the intruder sees the run');
  const inputId = turn.run.inputCodecMessageId;

  const attempts = {
    'session.cancel(runId)': await settle(intruderSession.cancel(turn.run.runId)),
    'publish {run-id}': await settle(intruder.channels.get(channelName).publish(cancelMessage({ runId: turn.run.runId }))),
    'publish {input-codec-message-id}': await settle(intruder.channels.get(channelName).publish(cancelMessage({ inputCodecMessageId: inputId }))),
    'publish {both}': await settle(intruder.channels.get(channelName).publish(cancelMessage({ runId: turn.run.runId, inputCodecMessageId: inputId }))),
  };
  // Over REST with the intruder's own token (Bearer JWT).
  const jwtRes = await fetch(env.tokens.url, { headers: { cookie: env.tokens.login(other, { share: [channelName] }) } });
  const token = await jwtRes.text();
  const restRes = await http(env.server.baseUrl, 'POST', `/channels/${encodeURIComponent(channelName)}/messages`, {
    body: cancelMessage({ runId: turn.run.runId }),
    headers: { authorization: `Bearer ${token}` },
  });
  for (const [how, r] of Object.entries(attempts)) {
    assert.equal(r.ok, false, `${how} must be refused`);
    assert.equal(r.error.code, 40160, `${how}: ${r.error.code} ${r.error.message}`);
  }
  assert.equal(restRes.status, 401, `REST cancel: ${restRes.status} ${restRes.text}`);
  assert.equal(restRes.body?.error?.code, 40160, `REST cancel: ${restRes.text}`);

  // The intruder can still talk on the shared conversation (only the cancel is refused).
  await intruder.channels.get(channelName).publish('note', 'hello');

  const rec = await withTimeout(turn.agentDone, 15_000, 'agent done');
  assert.deepEqual(rec.cancelRequests, [], 'no cancel reached the agent');
  assert.equal(rec.pipeReason, 'complete');
  assert.equal(rec.status, 'complete');
  await waitForAnswer(turn.session.view, turn.answer);
  await waitUntil(() => turn.run.status === 'complete', 5000, 'run complete');

  // The owner can still cancel a later turn of theirs on the same channel.
  const turn2 = await startTurn(s, { ns: 'guarded', owner, ownerSession: turn.session });
  await turn2.session.cancel(turn2.run.runId);
  const rec2 = await withTimeout(turn2.agentDone, 10_000, "second agent done");
  assert.equal(rec2.status, 'cancelled');
});

test('cancelByTurnOwnerOnly: a cancel naming the intruder\'s own run-id plus the owner\'s input-codec-message-id is refused (40160)', { timeout: 30_000 }, async (t) => {
  // The agent routes a cancel by run-id first and, when that run is not live
  // in its session, buffers it by input-codec-message-id and fires it when that
  // input's run starts (agent-session.ts _handleCancelMessage /
  // _pullDeferredCancel). So every identifier a cancel carries must belong to
  // the sender, not just the first one the server finds.
  const s = scope(t);
  const owner = uniqueId('alice');
  const other = uniqueId('mallory');
  const channelName = `guarded:${owner}`;
  const intruder = userClient(s, env, env.tokens.login(other, { share: [channelName] }));
  const intruderSession = await clientSession(s, intruder, channelName);
  const ownerClient = userClient(s, env, env.tokens.login(owner));
  const ownerSession = await clientSession(s, ownerClient, channelName);
  const agentRealtime = agentClient(s, env);

  // The intruder owns a (finished) turn of their own on the shared channel.
  const own = await intruderSession.view.send(codec.createUserMessage({ id: 'm1', role: 'user', text: 'mine' }));
  const ownRec = await runAgent(agentRealtime, own.toInvocation().toJSON(), { answer: 'ok', delayMs: 1 });
  assert.equal(ownRec.status, 'complete');

  // The owner sends; the agent endpoint is woken and attaches.
  const run = await ownerSession.view.send(codec.createUserMessage({ id: 'm2', role: 'user', text: 'important' }));
  const invocation = AIT.Invocation.fromJSON(run.toInvocation().toJSON());
  const session = AIT.createAgentSession({ client: agentRealtime, channelName, codec });
  s.add(() => session.end());
  await session.connect();

  // Before the agent starts the owner's run, the intruder sends the mixed cancel.
  const mixed = await settle(
    intruder.channels.get(channelName).publish(cancelMessage({ runId: ownRec.runId, inputCodecMessageId: run.inputCodecMessageId })),
  );
  await sleep(100); // let it reach the agent (if the server let it through)

  const cancels = [];
  const agentRun = session.createRun(invocation, undefined, {
    onCancel: async (req) => {
      cancels.push(req.message.clientId);
      return true; // the SDK default: accept every cancel
    },
  });
  agentRun.located.catch(() => {});
  while (agentRun.view.hasOlder()) await agentRun.view.loadOlder();
  const started = await settle(agentRun.start());
  assert.equal(mixed.ok, false, `the server accepted a cancel for ${owner}'s input from ${other}; the agent then saw cancels from ${JSON.stringify(cancels)} and start() ${started.ok ? 'succeeded' : `failed: ${started.error?.message}`}`);
  assert.equal(mixed.error.code, 40160);
  assert.equal(started.ok, true, `start: ${started.error?.message}`);
  assert.deepEqual(cancels, []);
  await agentRun.end({ reason: 'complete' });
});

test('cancelByTurnOwnerOnly: turning one\'s own message into an ai-cancel with updateMessage (message-update-own) is refused (40160)', { timeout: 30_000 }, async (t) => {
  // The agent treats any delivered message named ai-cancel as a cancel, also a
  // message.update (agent-session.ts _handleChannelMessage checks only the
  // name), so the rule has to cover updates as well as creates.
  const s = scope(t);
  const owner = uniqueId('alice');
  const other = uniqueId('mallory');
  const channelName = `guarded:${owner}`;
  // An app that lets users edit their own messages grants message-update-own.
  const intruder = userClient(s, env, env.tokens.login(other, { share: { [channelName]: [...USER_OPS, 'message-update-own'] } }));
  const ich = intruder.channels.get(channelName);
  await ich.attach();
  const turn = await startTurn(s, { ns: 'guarded', owner, words: 60 });
  const note = await ich.publish('note', 'an ordinary message');
  const update = await settle(
    ich.updateMessage({ serial: note.serials[0], ...cancelMessage({ runId: turn.run.runId }) }),
  );
  const rec = await withTimeout(turn.agentDone, 15_000, 'agent done');
  assert.equal(update.ok, false, `the update to an ai-cancel was accepted; the agent saw cancels ${JSON.stringify(rec.cancelRequests)} and the run ended ${rec.status}`);
  assert.equal(update.error.code, 40160);
  assert.deepEqual(rec.cancelRequests, []);
  assert.equal(rec.status, 'complete');
});

test('AIT-ST3a without the rule: another participant\'s cancel reaches the agent, whose onCancel sees who asked and the owner and may refuse it', { timeout: 30_000 }, async (t) => {
  const s = scope(t);
  const owner = uniqueId('alice');
  const other = uniqueId('bob');
  const channelName = `conversations:${owner}`;
  const guest = userClient(s, env, env.tokens.login(other, { share: [channelName] }));
  const guestSession = await clientSession(s, guest, channelName);
  // The agent's own authorization: only the turn's owner may cancel it.
  const turn = await startTurn(s, {
    ns: 'conversations',
    owner,
    words: 60,
    onCancel: async (_req, { from, owner: turnOwner }) => from === turnOwner,
  });
  await waitUntil(() => guestSession.view.runs().some((r) => r.runId === turn.run.runId), 5000, 'the guest sees the run');
  await guestSession.cancel(turn.run.runId); // the server delivers it: no rule here
  const rec = await withTimeout(turn.agentDone, 15_000, 'agent done');
  assert.deepEqual(rec.cancelRequests, [{ runId: turn.run.runId, from: other, owner }], 'onCancel saw the guest\'s cancel');
  assert.equal(rec.status, 'complete', 'the agent refused it and finished the answer');
  await waitForAnswer(turn.session.view, turn.answer);
  assert.deepEqual(transcript(guestSession.view).map((m) => m.role), ['user', 'assistant']);
});
