// Auth as Ably's AI Transport docs prescribe: the app's token endpoint signs
// Ably JWTs scoped to `conversations:<userId>` with clientId = userId; the
// browser's SDK fetches them through authCallback and renews them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  useEnv, scope, userClient, agentClient, connected, clientSession, runAgent, scriptedAnswer,
  transcript, waitForAnswer, withTimeout, settle, codec, uniqueId, http, startTokenEndpoint,
  recordStates, recordGrowth, Ably, jwt,
} from './lib/harness.mjs';

const env = useEnv();

/** The Ably error code of an error, looking through SDK wrappers (cause). */
const codeOf = (e) => {
  for (let x = e; x; x = x.cause) if (typeof x.code === 'number' && x.code !== 104001 && x.code !== 104005) return x.code;
  return e?.code;
};

test('a user\'s token cannot read or write another user\'s conversation (40160): client session, realtime, REST', { timeout: 30_000 }, async (t) => {
  const s = scope(t);
  const alice = uniqueId('alice');
  const bob = uniqueId('bob');
  const bobChannel = `conversations:${bob}`;

  // Bob has a conversation.
  const bobClient = userClient(s, env, env.tokens.login(bob));
  const bobSession = await clientSession(s, bobClient, bobChannel);
  const run = await bobSession.view.send(codec.createUserMessage({ id: 'b1', role: 'user', text: 'bob\'s secret' }));
  const answer = scriptedAnswer('secret', 5);
  await runAgent(agentClient(s, env), run.toInvocation().toJSON(), { answer, delayMs: 1 });
  await waitForAnswer(bobSession.view, answer);

  // Alice, with her own valid token, tries to open it.
  const aliceCookie = env.tokens.login(alice);
  const aliceClient = userClient(s, env, aliceCookie);
  await connected(aliceClient);
  assert.equal(aliceClient.auth.clientId, alice);
  const { AIT } = await import('./lib/harness.mjs');
  const intrusion = AIT.createClientSession({ client: aliceClient, channelName: bobChannel, codec });
  s.add(() => intrusion.close());
  const opened = await settle(withTimeout(intrusion.connect(), 8000, 'client session connect'));
  assert.equal(opened.ok, false, 'a client session on another user\'s conversation must not connect');
  assert.equal(codeOf(opened.error), 40160, `session connect: ${opened.error?.code} ${opened.error?.message} (cause ${opened.error?.cause?.code})`);

  const ch = aliceClient.channels.get(`${bobChannel}`);
  const attach = await settle(ch.attach());
  assert.equal(attach.ok, false);
  assert.equal(attach.error.code, 40160, 'realtime attach');
  // A publish on a channel never attached before (the SDK attaches implicitly).
  const fresh = userClient(s, env, aliceCookie);
  const pub = await settle(fresh.channels.get(bobChannel).publish('ai-input', 'let me in'));
  assert.equal(pub.ok, false);
  assert.equal(pub.error.code, 40160, `realtime publish: ${pub.error?.code} ${pub.error?.message}`);

  // REST with the same JWT (Bearer).
  const token = await (await fetch(env.tokens.url, { headers: { cookie: aliceCookie } })).text();
  const auth = { authorization: `Bearer ${token}` };
  const path = `/channels/${encodeURIComponent(bobChannel)}/messages`;
  const restPub = await http(env.server.baseUrl, 'POST', path, { body: { name: 'ai-input', data: 'x' }, headers: auth });
  assert.equal(restPub.status, 401, `REST publish: ${restPub.text}`);
  assert.equal(restPub.body?.error?.code, 40160);
  const restHist = await http(env.server.baseUrl, 'GET', path, { headers: auth });
  assert.equal(restHist.status, 401, `REST history: ${restHist.text}`);
  assert.equal(restHist.body?.error?.code, 40160);
  assert.ok(!restHist.text.includes('secret'), 'nothing of bob\'s conversation leaks');

  // Bob's conversation is untouched.
  const later = await clientSession(s, userClient(s, env, env.tokens.login(bob)), bobChannel);
  while (later.view.hasOlder()) await later.view.loadOlder();
  assert.deepEqual(transcript(later.view), transcript(bobSession.view));
});

test('the JWT binds the identity: inputs carry the user\'s clientId, impersonation is refused (40012)', { timeout: 30_000 }, async (t) => {
  const s = scope(t);
  const alice = uniqueId('alice');
  const channelName = `conversations:${alice}`;
  const client = userClient(s, env, env.tokens.login(alice));
  const session = await clientSession(s, client, channelName);
  const wire = [];
  client.channels.get(channelName).subscribe((m) => wire.push(m));
  const run = await session.view.send(codec.createUserMessage({ id: 'a1', role: 'user', text: 'hi' }));
  await runAgent(agentClient(s, env), run.toInvocation().toJSON(), { answer: 'hello there', delayMs: 1 });
  await waitForAnswer(session.view, 'hello there');
  const input = wire.find((m) => m.name === 'ai-input');
  assert.equal(input.clientId, alice, 'the server stamps the token\'s clientId on the input');
  assert.equal(input.extras.ai.transport['run-client-id'], alice);
  const start = wire.find((m) => m.name === 'ai-run-start');
  assert.equal(start.clientId, 'agent');
  assert.equal(start.extras.ai.transport['input-client-id'], alice, 'the agent attributes the turn to the input\'s publisher');

  const spoof = await settle(client.channels.get(channelName).publish({ name: 'ai-input', data: 'x', clientId: 'someone-else' }));
  assert.equal(spoof.ok, false);
  assert.equal(spoof.error.code, 40012, `impersonation: ${spoof.error?.code} ${spoof.error?.message}`);
});

test('RTN22 RSA4: a short-lived token is renewed through authCallback mid-stream; the answer streams on without loss', { timeout: 40_000 }, async (t) => {
  const s = scope(t);
  // 8 s: a token adopted with 5.5 s or less to live is not asked to renew
  // (Ably's rule); it would expire with 40142 instead.
  const tokens = await startTokenEndpoint(env.app, { ttlSeconds: 8 });
  s.add(() => tokens.close());
  const user = uniqueId('frank');
  const client = userClient(s, { ...env, tokens }, tokens.login(user));
  await connected(client);
  const connId = client.connection.id;
  const states = recordStates(client);
  const session = await clientSession(s, client, `conversations:${user}`);
  const growth = recordGrowth(session.view);
  const run = await session.view.send(codec.createUserMessage({ id: 'f1', role: 'user', text: 'take your time' }));
  const answer = scriptedAnswer('take your time', 180); // 9 s: past the 8 s expiry
  const rec = await withTimeout(
    runAgent(agentClient(s, env), run.toInvocation().toJSON(), { answer, delayMs: 50 }),
    20_000,
    'agent done',
  );
  assert.equal(rec.pipeReason, 'complete');
  await waitForAnswer(session.view, answer);
  assert.ok(tokens.issued.length >= 2, `the token was renewed (${tokens.issued.length} issued)`);
  assert.equal(client.connection.id, connId, 'same connection throughout');
  const changes = JSON.stringify(states.map((x) => [x.event, x.current, x.reason?.code]));
  assert.deepEqual(states.filter((x) => x.event !== 'update').map((x) => x.current), [], `no connection state change: ${changes}`);
  assert.ok(states.some((x) => x.event === 'update'), `RTN24 the in-band reauth shows as an update event: ${changes}`);
  growth.assertMonotonic(assert);
  assert.deepEqual(session.errors.map((e) => e.code), []);
  // Sanity: the renewed token is still scoped to the user.
  const r = new Ably.Rest({ endpoint: env.server.host, port: env.server.port, tls: false, token: await (await fetch(tokens.url, { headers: { cookie: tokens.login(user) } })).text() });
  const other = await settle(r.channels.get(`conversations:${uniqueId('x')}`).history());
  assert.equal(other.error?.code, 40160);
});

test('an agent on its own token: conversations:* with publish, subscribe, history and message-update-own streams; without message-update-own its appends are refused (40160)', { timeout: 30_000 }, async (t) => {
  const s = scope(t);
  const agentToken = (ops) =>
    jwt.sign({ 'x-ably-capability': JSON.stringify({ 'conversations:*': ops }), 'x-ably-clientId': 'agent' }, env.app.keySecret, {
      algorithm: 'HS256', keyid: env.app.keyName, expiresIn: 600,
    });
  for (const [ops, ok] of [[['publish', 'subscribe', 'history', 'message-update-own'], true], [['publish', 'subscribe', 'history'], false]]) {
    const user = uniqueId('hana');
    const channelName = `conversations:${user}`;
    const session = await clientSession(s, userClient(s, env, env.tokens.login(user)), channelName);
    const agent = new Ably.Realtime({ endpoint: env.server.host, port: env.server.port, tls: false, token: agentToken(ops) });
    s.add(() => agent.close());
    // See mutable.test.mjs: refused fire-and-forget appends surface as unhandled rejections in the SDK.
    const ch = agent.channels.get(channelName);
    const appendMessage = ch.appendMessage.bind(ch);
    ch.appendMessage = (...args) => {
      const p = appendMessage(...args);
      p.catch(() => {});
      return p;
    };
    const run = await session.view.send(codec.createUserMessage({ id: 'h1', role: 'user', text: 'hi' }));
    const answer = scriptedAnswer('hi', 8);
    const rec = await withTimeout(runAgent(agent, run.toInvocation().toJSON(), { answer, delayMs: 2 }), 10_000, 'agent done');
    if (ok) {
      assert.equal(rec.pipeReason, 'complete', `with ${ops}: ${rec.errors.map((e) => e.message)}`);
      await waitForAnswer(session.view, answer);
    } else {
      assert.equal(rec.pipeReason, 'error', `with ${ops} the stream must fail`);
      const codes = rec.errors.flatMap((e) => { const out = []; for (let x = e; x; x = x.cause) out.push(x.code); return out; });
      assert.ok(codes.includes(40160), `40160 in ${JSON.stringify(codes)}`);
    }
  }
});
