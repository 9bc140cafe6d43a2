// The Assistant Cloud API (issue 16 items 4 and 5) with the real npm
// `assistant-cloud` client and the real `ably` SDK: all three client modes
// (apiKey + userId + workspaceId from a backend, authToken, anonymous),
// threads and messages, workspace isolation, durability across a restart,
// the thread's realtime channel, anonymous users (rate limit, refresh, off
// unless configured). docs/identity.md, "Assistant Cloud" and "Anonymous
// users", is the user's view of what these tests check.

import { after, before, beforeEach } from 'node:test';
import { AssistantCloud, CloudAPIError } from 'assistant-cloud';
import {
  Ably,
  assert,
  test,
  http,
  startServer,
  makeTempDir,
  clients,
  connected,
  waitForChannelState,
  waitUntil,
} from './lib/server.mjs';
import { ablyJwt, decodeJwt } from './lib/auth.mjs';

// The anonymous endpoint's bound in these tests: 3 new identities a minute
// from one address (the default is 10), 100 for the app.
const ANON = { ttl: 600000, rateLimit: { perAddressPerMinute: 3, perMinute: 100 } };

let server;
let app; // with anonymous users
let plain; // without
const key = (a, i = 0) => a.keys[i];

async function newApp(srv, spec) {
  const res = await http(srv, 'POST', '/apps', { body: spec });
  assert.equal(res.status, 201, res.text);
  return res.body;
}

before(async () => {
  server = await startServer({ label: 'cloud' });
  app = await newApp(server, { keys: [{}, { capability: { 'chat:*': ['publish', 'subscribe'] } }], anonymous: ANON });
  plain = await newApp(server, { keys: [{}] });
});

beforeEach(() => {
  if (server.exit !== null) throw new Error(`server is not running\n${server.tail()}`);
});

after(async () => {
  if (server) await server.stop();
});

const baseUrl = (srv, a) => `${srv.baseUrl}/cloud/${a.appId}`;

/** The client in its backend mode: the app key as the API key. */
function backendCloud(srv, a, { userId = 'user-1', workspaceId = 'ws-1', k = key(a) } = {}) {
  return new AssistantCloud({ baseUrl: baseUrl(srv, a), apiKey: k.keyStr, userId, workspaceId, telemetry: false });
}

/** Raw HTTP to /cloud/{app}/v1{path} with the backend headers. */
function raw(srv, a, method, path, { body, workspaceId = 'ws-1', userId = 'user-1', headers } = {}) {
  const h = headers ?? {
    authorization: `Bearer ${key(a).keyStr}`,
    'aui-workspace-id': workspaceId,
    'aui-user-id': userId,
  };
  return http(srv, method, `/cloud/${a.appId}/v1${path}`, { body, headers: h });
}

/** Asserts an Ably error response: status, code, and the X-Ably headers. */
function assertAblyError(res, code, what) {
  assert.equal(res.status, Math.floor(code / 100), `${what}: ${res.status} ${res.text}`);
  assert.equal(res.body?.error?.code, code, `${what}: ${res.text}`);
  assert.equal(res.headers.get('x-ably-errorcode'), String(code), what);
}

/** Rejects with the CloudAPIError of a client call, checking its status. */
async function cloudError(promise, status, what) {
  const err = await promise.then(
    () => assert.fail(`${what}: expected HTTP ${status}`),
    (e) => e,
  );
  assert.ok(err instanceof CloudAPIError, `${what}: ${err}`);
  assert.equal(err.status, status, `${what}: ${err.message}`);
  return err;
}

const content = (text) => ({ role: 'user', content: [{ type: 'text', text }] });

// ---------------------------------------------------------------------------
// Backend mode: apiKey + userId + workspaceId
// ---------------------------------------------------------------------------

test('apiKey mode: thread create (with upsert), get, list with is_archived / external_id / limit / after, update, delete', async () => {
  const cloud = backendCloud(server, app, { workspaceId: 'crud' });
  const t0 = new Date('2026-01-01T00:00:00.000Z');
  const ids = [];
  for (let i = 0; i < 5; i++) {
    const { thread_id } = await cloud.threads.create({
      title: `thread ${i}`,
      last_message_at: new Date(t0.getTime() + i * 1000),
      metadata: { n: i },
      external_id: `ext-${i}`,
    });
    assert.match(thread_id, /^thread_/);
    ids.push(thread_id);
  }
  // upsert returns the thread that holds the external_id; without it, 409.
  assert.deepEqual(await cloud.threads.create({ last_message_at: new Date(), external_id: 'ext-2', upsert: true }), {
    thread_id: ids[2],
  });
  await cloudError(cloud.threads.create({ last_message_at: new Date(), external_id: 'ext-2' }), 409, 'duplicate external_id');

  const t = await cloud.threads.get(ids[1]);
  assert.equal(t.id, ids[1]);
  assert.equal(t.title, 'thread 1');
  assert.deepEqual(t.metadata, { n: 1 });
  assert.equal(t.external_id, 'ext-1');
  assert.equal(t.workspace_id, 'crud');
  assert.equal(t.project_id, app.appId);
  assert.equal(t.is_archived, false);
  assert.equal(t.last_message_at.toISOString(), '2026-01-01T00:00:01.000Z');
  assert.ok(t.created_at instanceof Date && t.updated_at instanceof Date);

  // Most recent last_message_at first.
  let list = await cloud.threads.list();
  assert.deepEqual(
    list.threads.map((x) => x.id),
    [...ids].reverse(),
  );
  // Paging: limit and after (the last id of the page before).
  const p1 = await cloud.threads.list({ limit: 2 });
  const p2 = await cloud.threads.list({ limit: 2, after: p1.threads[1].id });
  const p3 = await cloud.threads.list({ limit: 2, after: p2.threads[1].id });
  assert.deepEqual(
    [...p1.threads, ...p2.threads, ...p3.threads].map((x) => x.id),
    [...ids].reverse(),
  );
  // external_id filter (the client passes any query field through).
  list = await cloud.threads.list({ external_id: 'ext-3' });
  assert.deepEqual(
    list.threads.map((x) => x.id),
    [ids[3]],
  );

  await cloud.threads.update(ids[0], { title: 'renamed', is_archived: true });
  await cloud.threads.update(ids[4], { is_archived: true, metadata: { changed: true } });
  const archived = await cloud.threads.list({ is_archived: true });
  assert.deepEqual(
    archived.threads.map((x) => x.id),
    [ids[4], ids[0]],
  );
  const active = await cloud.threads.list({ is_archived: false });
  assert.deepEqual(
    active.threads.map((x) => x.id),
    [ids[3], ids[2], ids[1]],
  );
  const renamed = await cloud.threads.get(ids[0]);
  assert.equal(renamed.title, 'renamed');
  assert.equal(renamed.is_archived, true);
  assert.deepEqual((await cloud.threads.get(ids[4])).metadata, { changed: true });

  await cloud.threads.delete(ids[0]);
  await cloudError(cloud.threads.get(ids[0]), 404, 'get after delete');
  await cloudError(cloud.threads.delete(ids[0]), 404, 'delete twice');
  assert.equal((await cloud.threads.list()).threads.length, 4);

  // Bounds: limit 1..100, is_archived true/false.
  assertAblyError(await raw(server, app, 'GET', '/threads?limit=101', { workspaceId: 'crud' }), 40003, 'limit 101');
  assertAblyError(await raw(server, app, 'GET', '/threads?is_archived=yes', { workspaceId: 'crud' }), 40003, 'is_archived');
});

test('apiKey mode: messages create with parent_id (heights), list newest first with limit / after / format, update, delete, feedback', async () => {
  const cloud = backendCloud(server, app, { workspaceId: 'msgs' });
  const { thread_id } = await cloud.threads.create({ last_message_at: new Date() });
  const m0 = await cloud.threads.messages.create(thread_id, { parent_id: null, format: 'aui/v0', content: content('a') });
  const m1 = await cloud.threads.messages.create(thread_id, {
    parent_id: m0.message_id,
    format: 'aui/v0',
    content: content('b'),
    external_id: 'local-1',
  });
  // A branch: a second child of m0; a child named by its parent's external id.
  const m2 = await cloud.threads.messages.create(thread_id, { parent_id: m0.message_id, format: 'aui/v0', content: content('c') });
  const m3 = await cloud.threads.messages.create(thread_id, {
    parent_id: null,
    parent_external_id: 'local-1',
    format: 'other/v1',
    content: content('d'),
  });
  assert.equal(m3.run, undefined);

  const { messages } = await cloud.threads.messages.list(thread_id);
  assert.deepEqual(
    messages.map((m) => m.id),
    [m3.message_id, m2.message_id, m1.message_id, m0.message_id],
  );
  const byId = Object.fromEntries(messages.map((m) => [m.id, m]));
  assert.equal(byId[m0.message_id].parent_id, null);
  assert.equal(byId[m0.message_id].height, 0);
  assert.equal(byId[m1.message_id].parent_id, m0.message_id);
  assert.equal(byId[m1.message_id].height, 1);
  assert.equal(byId[m1.message_id].external_id, 'local-1');
  assert.equal(byId[m2.message_id].height, 1);
  assert.equal(byId[m3.message_id].parent_id, m1.message_id);
  assert.equal(byId[m3.message_id].height, 2);
  assert.deepEqual(byId[m2.message_id].content, content('c'));
  assert.equal(byId[m3.message_id].format, 'other/v1');

  const page1 = await cloud.threads.messages.list(thread_id, { limit: 2 });
  const page2 = await cloud.threads.messages.list(thread_id, { limit: 2, after: page1.messages[1].id });
  assert.deepEqual(
    [...page1.messages, ...page2.messages].map((m) => m.id),
    messages.map((m) => m.id),
  );
  const aui = await cloud.threads.messages.list(thread_id, { format: 'aui/v0' });
  assert.equal(aui.messages.length, 3);

  // An unknown parent is 404 (40400).
  await cloudError(
    cloud.threads.messages.create(thread_id, { parent_id: 'msg_nope', format: 'aui/v0', content: content('x') }),
    404,
    'unknown parent',
  );
  // Run leases are not served: 400, which the client's persistence takes as
  // "retry without open_run".
  await cloudError(
    cloud.threads.messages.create(thread_id, { parent_id: null, format: 'aui/v0', content: {}, open_run: true }),
    400,
    'open_run',
  );

  await cloud.threads.messages.update(thread_id, m1.message_id, { content: content('b2') });
  const after = (await cloud.threads.messages.list(thread_id)).messages.find((m) => m.id === m1.message_id);
  assert.deepEqual(after.content, content('b2'));
  assert.ok(after.updated_at >= after.created_at);
  await cloudError(cloud.threads.messages.update(thread_id, 'msg_nope', { content: {} }), 404, 'update unknown');

  const fb = await cloud.threads.messages.feedback(thread_id, m1.message_id, { type: 'negative', comment: 'missed it' });
  assert.match(fb.feedback_id, /^feedback_/);
  assert.equal(fb.type, 'negative');
  assert.equal(fb.comment, 'missed it');
  const fb2 = await cloud.threads.messages.feedback(thread_id, m0.message_id, { type: 'positive' });
  assert.equal(fb2.comment, null);
  await cloudError(cloud.threads.messages.feedback(thread_id, 'msg_nope', { type: 'positive' }), 404, 'feedback unknown');
  assertAblyError(
    await raw(server, app, 'POST', `/threads/${thread_id}/messages/${m0.message_id}/feedback`, {
      workspaceId: 'msgs',
      body: { type: 'meh' },
    }),
    40003,
    'feedback type',
  );

  await cloud.threads.messages.delete(thread_id, [m2.message_id, m3.message_id]);
  assert.deepEqual(
    (await cloud.threads.messages.list(thread_id)).messages.map((m) => m.id),
    [m1.message_id, m0.message_id],
  );
  // A thread that is not there has no messages: 404.
  await cloudError(cloud.threads.messages.list('thread_nope'), 404, 'list of unknown thread');
  await cloudError(
    cloud.threads.messages.create('thread_nope', { parent_id: null, format: 'aui/v0', content: {} }),
    404,
    'create in unknown thread',
  );
});

test('sizes a client controls are bounded before they are stored', async () => {
  const cloud = backendCloud(server, app, { workspaceId: 'bounds' });
  const { thread_id } = await cloud.threads.create({ last_message_at: new Date() });
  const big = { text: 'x'.repeat(262144) };
  assertAblyError(
    await raw(server, app, 'POST', `/threads/${thread_id}/messages`, {
      workspaceId: 'bounds',
      body: { parent_id: null, format: 'aui/v0', content: big },
    }),
    40009,
    'content over 256 KiB',
  );
  assertAblyError(
    await raw(server, app, 'POST', '/threads', { workspaceId: 'bounds', body: { title: 't'.repeat(1025) } }),
    40003,
    'title over 1 KiB',
  );
  assertAblyError(
    await raw(server, app, 'POST', '/threads', { workspaceId: 'bounds', body: { metadata: { m: 'm'.repeat(16384) } } }),
    40009,
    'metadata over 16 KiB',
  );
  assertAblyError(
    await raw(server, app, 'POST', '/threads', { workspaceId: 'bounds', body: { external_id: 'e'.repeat(257) } }),
    40003,
    'external_id over 256 bytes',
  );
  assertAblyError(
    await raw(server, app, 'GET', `/threads/${thread_id}/messages?limit=201`, { workspaceId: 'bounds' }),
    40003,
    'message limit over 200',
  );
  assertAblyError(
    await raw(server, app, 'DELETE', `/threads/${thread_id}/messages`, {
      workspaceId: 'bounds',
      body: { message_ids: Array.from({ length: 201 }, (_, i) => `m${i}`) },
    }),
    40003,
    'over 200 ids in one delete',
  );
  assertAblyError(
    await raw(server, app, 'POST', '/threads', { workspaceId: 'bad:ws', body: {} }),
    40004,
    'workspace with a colon',
  );
  assertAblyError(await raw(server, app, 'POST', '/threads', { workspaceId: '', body: {} }), 40004, 'no workspace');
  assertAblyError(await raw(server, app, 'POST', '/threads', { body: 'not json' }), 40001, 'a body that is not JSON');
  // Routes not served: files, runs, scores, events.
  for (const path of ['/files/pdf-to-images', '/runs', '/scores', '/events']) {
    assertAblyError(await raw(server, app, 'POST', path, { body: {} }), 40400, path);
  }
});

// ---------------------------------------------------------------------------
// Workspace isolation
// ---------------------------------------------------------------------------

test('one workspace cannot read, update or delete another workspace’s threads and messages (40400)', async () => {
  const alice = backendCloud(server, app, { workspaceId: 'alice', userId: 'alice' });
  const bob = backendCloud(server, app, { workspaceId: 'bob', userId: 'bob' });
  const { thread_id } = await alice.threads.create({ title: 'secret', last_message_at: new Date() });
  const { message_id } = await alice.threads.messages.create(thread_id, {
    parent_id: null,
    format: 'aui/v0',
    content: content('private'),
  });

  assert.deepEqual((await bob.threads.list()).threads, []);
  await cloudError(bob.threads.get(thread_id), 404, 'bob reads alice’s thread');
  await cloudError(bob.threads.update(thread_id, { title: 'mine' }), 404, 'bob renames it');
  await cloudError(bob.threads.delete(thread_id), 404, 'bob deletes it');
  await cloudError(bob.threads.messages.list(thread_id), 404, 'bob lists its messages');
  await cloudError(
    bob.threads.messages.create(thread_id, { parent_id: null, format: 'aui/v0', content: {} }),
    404,
    'bob writes into it',
  );
  await cloudError(bob.threads.messages.update(thread_id, message_id, { content: {} }), 404, 'bob edits a message');
  await cloudError(bob.threads.messages.feedback(thread_id, message_id, { type: 'negative' }), 404, 'bob rates it');
  await cloudError(bob.threads.messages.delete(thread_id, [message_id]), 404, 'bob deletes a message');
  // The raw answer: an Ably error with code 40400.
  assertAblyError(await raw(server, app, 'GET', `/threads/${thread_id}`, { workspaceId: 'bob' }), 40400, 'raw get');

  // Nothing changed for alice.
  const t = await alice.threads.get(thread_id);
  assert.equal(t.title, 'secret');
  const { messages } = await alice.threads.messages.list(thread_id);
  assert.deepEqual(
    messages.map((m) => [m.id, m.content]),
    [[message_id, content('private')]],
  );

  // A token's workspace is its own: bob's token does not reach alice's thread either.
  const bobToken = ablyJwt(key(app), { clientId: 'bob', ttlSec: 600 });
  const bobByToken = new AssistantCloud({ baseUrl: baseUrl(server, app), authToken: async () => bobToken, telemetry: false });
  await cloudError(bobByToken.threads.get(thread_id), 404, 'bob’s token');
  // Nor does an app's key reach another app's threads.
  const other = backendCloud(server, plain, { workspaceId: 'alice', userId: 'alice' });
  await cloudError(other.threads.get(thread_id), 404, 'same workspace name, other app');
  // A key of one app on another app's baseUrl is refused (40101).
  assertAblyError(
    await http(server, 'GET', `/cloud/${app.appId}/v1/threads`, {
      headers: { authorization: `Bearer ${key(plain).keyStr}`, 'aui-workspace-id': 'alice', 'aui-user-id': 'alice' },
    }),
    40101,
    'another app’s key',
  );
});

test('credentials: a wrong key secret is 40101; no credentials 40101; a key capability without cloud:* is 40160', async () => {
  const wrong = `${key(app).keyName}:not-the-secret`;
  assertAblyError(
    await raw(server, app, 'GET', '/threads', {
      headers: { authorization: `Bearer ${wrong}`, 'aui-workspace-id': 'w', 'aui-user-id': 'u' },
    }),
    40101,
    'wrong secret',
  );
  assertAblyError(await raw(server, app, 'GET', '/threads', { headers: {} }), 40101, 'no credentials');
  const chatOnly = backendCloud(server, app, { k: key(app, 1), workspaceId: 'w' });
  const err = await cloudError(chatOnly.threads.list(), 401, 'key capability without cloud:*');
  assert.match(err.message, /40160/);
  assertAblyError(await http(server, 'GET', '/cloud/nope/v1/threads'), 40400, 'unknown app');
});

// ---------------------------------------------------------------------------
// authToken mode
// ---------------------------------------------------------------------------

test('authToken mode: an Ably JWT works; the server answers with its own short-lived token in Authorization, which the client then uses', async () => {
  let calls = 0;
  const cloud = new AssistantCloud({
    baseUrl: baseUrl(server, app),
    authToken: async () => {
      calls += 1;
      return ablyJwt(key(app), { clientId: 'carol', capability: { 'cloud:carol:*': ['history', 'publish', 'subscribe'] } });
    },
    telemetry: false,
  });
  const { thread_id } = await cloud.threads.create({ title: 'by token', last_message_at: new Date() });
  await cloud.threads.messages.create(thread_id, { parent_id: null, format: 'aui/v0', content: content('hi') });
  const t = await cloud.threads.get(thread_id);
  assert.equal(t.workspace_id, 'carol'); // the clientId, as the token has no workspace
  assert.equal(calls, 1, 'the client keeps using the token the server gave it');

  // The exchange, seen raw: a JWT of ours with the workspace and the same
  // identity, at most 15 minutes long, which works as a credential itself.
  const token = ablyJwt(key(app), { clientId: 'carol', ttlSec: 3600 });
  const res = await http(server, 'GET', `/cloud/${app.appId}/v1/threads/${thread_id}`, {
    headers: { authorization: `Bearer ${token}` },
  });
  assert.equal(res.status, 200, res.text);
  const [scheme, ours] = (res.headers.get('authorization') || '').split(' ');
  assert.equal(scheme, 'Bearer');
  assert.match(res.headers.get('access-control-expose-headers') || '', /Authorization/);
  const { header, payload } = decodeJwt(ours);
  assert.equal(header.kid, key(app).keyName);
  assert.equal(payload['x-ably-clientId'], 'carol');
  assert.equal(payload['x-switchboard-workspace'], 'carol');
  assert.ok(payload.exp - payload.iat <= 900 && payload.exp - payload.iat > 60, JSON.stringify(payload));
  const again = await http(server, 'GET', `/cloud/${app.appId}/v1/threads/${thread_id}`, {
    headers: { authorization: `Bearer ${ours}` },
  });
  assert.equal(again.status, 200);
  assert.equal(again.headers.get('authorization'), null, 'a token of ours is not exchanged again');

  // The x-switchboard-workspace claim names the workspace (several users, one workspace).
  const team = ablyJwt(key(app), { clientId: 'dave', claims: { 'x-switchboard-workspace': 'carol' } });
  const byClaim = new AssistantCloud({ baseUrl: baseUrl(server, app), authToken: async () => team, telemetry: false });
  assert.equal((await byClaim.threads.get(thread_id)).title, 'by token');
});

test('authToken mode: a token without clientId or workspace is 40161; one whose capability lacks the thread channel is 40160', async () => {
  const anonToken = ablyJwt(key(app), {});
  assertAblyError(
    await http(server, 'GET', `/cloud/${app.appId}/v1/threads`, { headers: { authorization: `Bearer ${anonToken}` } }),
    40161,
    'no identity',
  );
  const narrow = ablyJwt(key(app), { clientId: 'erin', capability: { 'chat:*': ['publish', 'subscribe'] } });
  assertAblyError(
    await http(server, 'GET', `/cloud/${app.appId}/v1/threads`, { headers: { authorization: `Bearer ${narrow}` } }),
    40160,
    'no cloud capability',
  );
  // Read-only: history without publish lists but cannot create.
  const ro = ablyJwt(key(app), { clientId: 'erin', capability: { 'cloud:erin:*': ['history'] } });
  assert.equal(
    (await http(server, 'GET', `/cloud/${app.appId}/v1/threads`, { headers: { authorization: `Bearer ${ro}` } })).status,
    200,
  );
  assertAblyError(
    await http(server, 'POST', `/cloud/${app.appId}/v1/threads`, { headers: { authorization: `Bearer ${ro}` }, body: {} }),
    40160,
    'create without publish',
  );
  // Expired tokens are refused as everywhere (40142).
  const expired = ablyJwt(key(app), { clientId: 'erin', iatOffsetSec: -7200, ttlSec: 60 });
  assertAblyError(
    await http(server, 'GET', `/cloud/${app.appId}/v1/threads`, { headers: { authorization: `Bearer ${expired}` } }),
    40142,
    'expired',
  );
});

test('POST /v1/auth/tokens: a backend mints a token for its user (apiKey + Aui-User-Id + Aui-Workspace-Id) that authToken mode uses', async () => {
  const backend = backendCloud(server, app, { userId: 'frank', workspaceId: 'team-f' });
  const { token } = await backend.auth.tokens.create();
  const { payload } = decodeJwt(token);
  assert.equal(payload['x-ably-clientId'], 'frank');
  assert.equal(payload['x-switchboard-workspace'], 'team-f');
  assert.deepEqual(JSON.parse(payload['x-ably-capability']), { 'cloud:team-f:*': ['history', 'publish', 'subscribe'] });
  const browser = new AssistantCloud({ baseUrl: baseUrl(server, app), authToken: async () => token, telemetry: false });
  const { thread_id } = await browser.threads.create({ last_message_at: new Date() });
  assert.equal((await backend.threads.get(thread_id)).workspace_id, 'team-f');
  // Only a key may mint (40162).
  assertAblyError(
    await http(server, 'POST', `/cloud/${app.appId}/v1/auth/tokens`, { headers: { authorization: `Bearer ${token}` } }),
    40162,
    'a token minting tokens',
  );
});

// ---------------------------------------------------------------------------
// Realtime: a thread is a channel
// ---------------------------------------------------------------------------

test('a message written through the API is published on cloud:{workspace}:{threadId}: an ably subscriber sees it live', async (t) => {
  const set = clients(t);
  const backend = backendCloud(server, app, { userId: 'gina', workspaceId: 'gina' });
  const { thread_id } = await backend.threads.create({ last_message_at: new Date() });
  // The other device subscribes with the token the backend minted for it.
  const { token } = await backend.auth.tokens.create();
  const rt = await connected(set, server, { token });
  const ch = rt.channels.get(`cloud:gina:${thread_id}`);
  const events = [];
  const got = (n) => waitUntil(() => events.length >= n, 8000, `${n} events on the thread channel`);
  await ch.subscribe((m) => events.push(m));
  await waitForChannelState(ch, 'attached');

  const { message_id } = await backend.threads.messages.create(thread_id, {
    parent_id: null,
    format: 'aui/v0',
    content: content('live'),
  });
  await got(1);
  assert.equal(events[0].name, 'message.created');
  assert.equal(events[0].clientId, 'gina');
  assert.equal(events[0].data.thread_id, thread_id);
  assert.equal(events[0].data.message.id, message_id);
  assert.deepEqual(events[0].data.message.content, content('live'));
  assert.equal(events[0].data.message.height, 0);
  assert.equal(events[0].data.message.parent_id, null);

  await backend.threads.messages.update(thread_id, message_id, { content: content('edited') });
  await got(2);
  assert.equal(events[1].name, 'message.updated');
  assert.deepEqual(events[1].data.message.content, content('edited'));

  await backend.threads.messages.delete(thread_id, [message_id]);
  await got(3);
  assert.equal(events[2].name, 'message.deleted');
  assert.deepEqual(events[2].data.message_ids, [message_id]);

  // Content beyond maxMessageSize (64 KiB) is stored in full, and announced
  // without it: the subscriber reads it from the API.
  const big = { role: 'assistant', content: [{ type: 'text', text: 'y'.repeat(100000) }] };
  const large = await backend.threads.messages.create(thread_id, { parent_id: null, format: 'aui/v0', content: big });
  await got(4);
  assert.equal(events[3].name, 'message.created');
  assert.equal(events[3].data.truncated, true);
  assert.equal(events[3].data.message.id, large.message_id);
  assert.equal(events[3].data.message.content, undefined);
  const stored = (await backend.threads.messages.list(thread_id)).messages[0];
  assert.deepEqual(stored.content, big);

  // The token's capability is its workspace: another user's threads are not attachable.
  const other = rt.channels.get('cloud:someone-else:thread_x');
  await assert.rejects(other.attach(), (e) => e.code === 40160);
});

// ---------------------------------------------------------------------------
// Anonymous users
// ---------------------------------------------------------------------------

/** A localStorage for the client (Node has none): where it keeps the refresh token. */
function memoryStorage() {
  const m = new Map();
  return {
    getItem: (k) => (m.has(k) ? m.get(k) : null),
    setItem: (k, v) => m.set(k, String(v)),
    removeItem: (k) => m.delete(k),
    clear: () => m.clear(),
    key: (i) => [...m.keys()][i] ?? null,
    get length() {
      return m.size;
    },
  };
}

test('anonymous: true; refresh keeps the identity; the endpoint is rate limited (42910 beyond 3 a minute from one address); off unless configured (40300)', async () => {
  // Refresh tokens live in localStorage; give the client one for this test.
  const storage = memoryStorage();
  globalThis.localStorage = storage;
  try {
    const first = new AssistantCloud({ baseUrl: baseUrl(server, app), anonymous: true, telemetry: false });
    const { thread_id } = await first.threads.create({ title: 'anon', last_message_at: new Date() });
    const mine = await first.threads.get(thread_id);
    assert.match(mine.workspace_id, /^anon-[A-Za-z0-9_-]{20}$/);
    const stored = JSON.parse(storage.getItem(`aui:refresh_token:${baseUrl(server, app)}`));
    assert.match(stored.token, /^sbr1\./);
    assert.ok(new Date(stored.expires_at).getTime() > Date.now() + 29 * 24 * 3600 * 1000);

    // A new client in the same browser refreshes: same identity, same threads.
    const second = new AssistantCloud({ baseUrl: baseUrl(server, app), anonymous: true, telemetry: false });
    const list = await second.threads.list();
    assert.deepEqual(
      list.threads.map((x) => x.id),
      [thread_id],
    );
    // Raw refresh: the same clientId, a fresh access token and refresh token.
    const r = await http(server, 'POST', `/cloud/${app.appId}/v1/auth/tokens/refresh`, { body: { refresh_token: stored.token } });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.client_id, mine.workspace_id);
    const claims = decodeJwt(r.body.access_token).payload;
    assert.equal(claims['x-ably-clientId'], mine.workspace_id);
    assert.equal(claims['x-switchboard-workspace'], mine.workspace_id);
    assert.equal(claims.exp - claims.iat, 600); // anonymous.ttl
    assert.match(r.body.refresh_token.token, /^sbr1\./);
    // A tampered refresh token is refused (40101); anonymous users of another app too.
    const bad = stored.token.slice(0, -2) + (stored.token.endsWith('AA') ? 'BB' : 'AA');
    assertAblyError(
      await http(server, 'POST', `/cloud/${app.appId}/v1/auth/tokens/refresh`, { body: { refresh_token: bad } }),
      40101,
      'tampered refresh token',
    );
    // A stranger (a fresh browser) is another identity and sees nothing.
    globalThis.localStorage = memoryStorage();
    const stranger = new AssistantCloud({ baseUrl: baseUrl(server, app), anonymous: true, telemetry: false });
    assert.deepEqual((await stranger.threads.list()).threads, []);
    await cloudError(stranger.threads.get(thread_id), 404, 'another anonymous identity');

    // Three new identities were made from this address this minute (first,
    // stranger... and the bound is 3): the next ones are refused with 42910.
    let res;
    for (let i = 0; i < 3; i++) {
      res = await http(server, 'POST', `/cloud/${app.appId}/v1/auth/tokens/anonymous`);
      if (res.status !== 200) break;
    }
    assertAblyError(res, 42910, 'over the per-address bound');
    // Refresh is not a sign-up: it still works.
    const r2 = await http(server, 'POST', `/cloud/${app.appId}/v1/auth/tokens/refresh`, { body: { refresh_token: stored.token } });
    assert.equal(r2.status, 200, r2.text);

    // Off unless configured.
    assertAblyError(await http(server, 'POST', `/cloud/${plain.appId}/v1/auth/tokens/anonymous`), 40300, 'anonymous off');
    assertAblyError(
      await http(server, 'POST', `/cloud/${plain.appId}/v1/auth/tokens/refresh`, { body: { refresh_token: stored.token } }),
      40300,
      'refresh with anonymous off',
    );
    globalThis.localStorage = memoryStorage();
    const offClient = new AssistantCloud({ baseUrl: baseUrl(server, plain), anonymous: true, telemetry: false });
    await assert.rejects(offClient.threads.list(), /Authorization failed/);
  } finally {
    delete globalThis.localStorage;
  }
});

test('anonymous: a bad "anonymous" app config is refused when the app is created (40000)', async () => {
  for (const anonymous of [
    { clientId: 'no-placeholder' },
    { clientId: 'anon:{id}' },
    { ttl: 10 },
    { capability: 'not an object' },
    { key: 'nope' },
  ]) {
    const res = await http(server, 'POST', '/apps', { body: { keys: [{}], anonymous } });
    assertAblyError(res, 40000, JSON.stringify(anonymous));
  }
  // A capability the signing key does not allow at all.
  const res = await http(server, 'POST', '/apps', {
    body: { keys: [{ capability: { 'chat:*': ['subscribe'] } }], anonymous: {} },
  });
  assertAblyError(res, 40000, 'anonymous capability outside the key');
});

// ---------------------------------------------------------------------------
// Durability
// ---------------------------------------------------------------------------

test('threads and messages are durable in the store: they survive a server restart', async () => {
  const { dir, cleanup } = makeTempDir('switchboard-cloud-');
  let srv = await startServer({ data: dir, label: 'cloud-durable' });
  try {
    const a = await newApp(srv, { keys: [{}] });
    let cloud = backendCloud(srv, a, { workspaceId: 'keep' });
    const { thread_id } = await cloud.threads.create({ title: 'kept', last_message_at: new Date() });
    const m0 = await cloud.threads.messages.create(thread_id, { parent_id: null, format: 'aui/v0', content: content('one') });
    await cloud.threads.messages.create(thread_id, { parent_id: m0.message_id, format: 'aui/v0', content: content('two') });
    await srv.stop();
    srv = await startServer({ data: dir, label: 'cloud-durable' });
    cloud = backendCloud(srv, a, { workspaceId: 'keep' });
    assert.equal((await cloud.threads.get(thread_id)).title, 'kept');
    const { messages } = await cloud.threads.messages.list(thread_id);
    assert.deepEqual(
      messages.map((m) => m.content),
      [content('two'), content('one')],
    );
    assert.equal(messages[0].parent_id, m0.message_id);
  } finally {
    await srv.stop();
    cleanup();
  }
});
