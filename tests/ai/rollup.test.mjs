// Append rollup with @ably/ai-transport: the agent's connection sets Ably's
// `appendRollupWindow` transport param (0, 40 = Ably's default, 500 ms); the
// answer streams as appends to one message, and switchboard delivers the
// appends published within a window as one message.append. Every watcher
// (two devices live, one joining mid-answer, one after) must end with exactly
// the agent's text; history is unchanged (one version per append, the head
// is the whole answer); deliveries are counted on the wire.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  useEnv, scope, userClient, agentClient, clientSession, runAgent, scriptedAnswer, transcript, recordGrowth,
  waitForAnswer, waitUntil, withTimeout, codec, Ably, uniqueId, sleep,
} from './lib/harness.mjs';

const env = useEnv();

/** Deliveries of the streamed answer on a client's channel: the create, then appends or whole updates. */
function wireOf(client, channelName) {
  const wire = [];
  client.channels.get(channelName).subscribe((m) => wire.push(m));
  return {
    wire,
    output: () => wire.find((m) => m.action === 'message.create' && m.extras?.ai?.transport?.stream === 'true'),
    deliveries() {
      const create = this.output();
      return create ? wire.filter((m) => m.serial === create.serial && m.action !== 'message.create') : [];
    },
  };
}

for (const windowMs of [0, 40, 500]) {
  test(`append rollup, appendRollupWindow ${windowMs} ms: AIT-CT2 AIT-CT10b AIT-CT11 every watcher gets exactly the agent's text; history unchanged; deliveries counted`, { timeout: 40_000 }, async (t) => {
    const s = scope(t);
    const user = uniqueId('rollup');
    const channelName = `conversations:${user}`;
    const phone = userClient(s, env, env.tokens.login(user));
    const laptop = userClient(s, env, env.tokens.login(user), { useBinaryProtocol: false });
    const phoneSession = await clientSession(s, phone, channelName);
    const laptopSession = await clientSession(s, laptop, channelName);
    const phoneWire = wireOf(phone, channelName);
    const laptopWire = wireOf(laptop, channelName);
    const growth = recordGrowth(laptopSession.view);
    const agent = agentClient(s, env, { transportParams: { appendRollupWindow: windowMs } });

    const prompt = `stream at ${windowMs} ms`;
    const run = await phoneSession.view.send(codec.createUserMessage({ id: uniqueId('u'), role: 'user', text: prompt }));
    const answer = scriptedAnswer(prompt, 80);
    const times = [];
    let joiner = null;
    const agentDone = runAgent(agent, run.toInvocation().toJSON(), {
      answer,
      delayMs: 5,
      onDelta: (n) => {
        times.push(Date.now());
        // A third device opens the conversation mid-answer.
        if (n === 25) {
          joiner = (async () => {
            const tablet = userClient(s, env, env.tokens.login(user));
            const session = await clientSession(s, tablet, channelName);
            while (session.view.hasOlder()) await session.view.loadOlder();
            return session;
          })();
        }
      },
    });
    const rec = await withTimeout(agentDone, 20_000, 'agent done');
    assert.equal(rec.pipeReason, 'complete');
    assert.deepEqual(rec.errors, [], 'the agent saw no errors');
    await Promise.all([waitForAnswer(phoneSession.view, answer), waitForAnswer(laptopSession.view, answer)]);
    const tabletSession = await withTimeout(joiner, 10_000, 'the mid-answer joiner');
    await waitForAnswer(tabletSession.view, answer, 15_000, 'the mid-answer joiner\'s whole answer');
    const expected = [
      { role: 'user', text: prompt, done: true },
      { role: 'assistant', text: answer, done: true },
    ];
    for (const [who, session] of [['phone', phoneSession], ['laptop', laptopSession], ['tablet', tabletSession]]) {
      assert.deepEqual(transcript(session.view), expected, `${who}: exactly the agent's text`);
      assert.deepEqual(session.errors, [], `${who}: no session errors`);
    }
    growth.off();
    growth.assertMonotonic(assert);

    // History is unchanged: one stored version per append, the head is the whole answer.
    const create = phoneWire.output();
    assert.ok(create, 'the streamed output message');
    const rest = new Ably.Rest({ key: env.app.keyStr, endpoint: env.server.host, port: env.server.port, tls: false });
    const rch = rest.channels.get(channelName);
    const head = await rch.getMessage(create.serial);
    assert.equal(head.data, answer, 'RSL11 the head is the whole answer');
    assert.equal(head.extras?.ai?.transport?.status, 'complete');
    let appendsStored = 0;
    for (let page = await rch.getMessageVersions(create.serial, { limit: 1000 }); page; page = page.hasNext() ? await page.next() : null) {
      appendsStored += page.items.filter((m) => m.action === 'message.append').length;
    }
    assert.ok(appendsStored >= 80, `every word is its own stored append: ${appendsStored}`);
    const later = await clientSession(s, userClient(s, env, env.tokens.login(user)), channelName);
    while (later.view.hasOlder()) await later.view.loadOlder();
    assert.deepEqual(transcript(later.view), expected, 'a device opened afterwards loads the same answer from history');

    // Deliveries: the same grouping for every subscriber (the window is the publisher's).
    await sleep(windowMs + 100);
    const n = phoneWire.deliveries().length;
    const span = times.at(-1) - times[0];
    assert.equal(laptopWire.deliveries().length, n, 'both devices got the same number of deliveries');
    assert.deepEqual(phoneWire.deliveries().map((m) => m.version.serial), laptopWire.deliveries().map((m) => m.version.serial));
    t.diagnostic(`window ${windowMs} ms: ${appendsStored} appends stored, ${n} deliveries, stream of ${span} ms`);
    if (windowMs === 0) {
      assert.equal(n, appendsStored, 'a window of 0: one delivery per append');
      assert.ok(phoneWire.deliveries().every((m) => m.action === 'message.append'));
    } else {
      assert.ok(n <= 3 + Math.ceil((span + 50) / windowMs), `at most one delivery per window: ${n} for a stream of ${span} ms`);
      if (windowMs === 500) assert.ok(n * 3 <= appendsStored, `far fewer deliveries than appends: ${n} for ${appendsStored}`);
    }
  });
}
