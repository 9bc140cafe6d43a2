// The REST batch API with the real ably-js SDK (issue 13): RSC22
// batchPublish (POST /messages) and RSC24 batchPresence (GET /presence),
// with the test app's key[2] whose capability lets some channels through
// and not others, as ably-js's own batch tests do.
import assert from 'node:assert/strict';
import {
  useServer,
  bothProtocols,
  clients,
  connected,
  collector,
  http,
  uniqueChannel,
  withTimeout,
  settle,
  test,
} from './lib/server.mjs';

const env = useServer({ label: 'batch' });
// key[2]: pub-1 publish, sub-only subscribe, members presence+publish+subscribe, presence-only presence.
const k2 = () => env.app.keys[2].keyStr;
const k0 = () => env.app.keys[0].keyStr;

bothProtocols('RSC22/BAR2/BPR2/BPF2 batchPublish with an array of specs: one BatchResult per spec, a result per channel in order (messageId and serials, or an error 401 where the capability refuses), and the messages in history', async (t, binary) => {
  const c = clients(t);
  const rest = c.rest(env.server, { key: k2(), binary });
  const tag = uniqueChannel('b');
  const specs = [
    { channels: ['pub-1', 'sub-only'], messages: [{ data: `m1-${tag}` }, { data: `m2-${tag}` }] },
    { channels: ['members', 'presence-only'], messages: [{ name: 'e', data: `m3-${tag}` }, { data: { k: tag } }] },
  ];
  const res = await withTimeout(rest.batchPublish(specs), 5000, 'batchPublish');
  assert.equal(res.length, 2);
  for (const [i, r] of res.entries()) {
    assert.equal(r.successCount, 1, `spec ${i}: ${JSON.stringify(r)}`);
    assert.equal(r.failureCount, 1);
    assert.deepEqual(r.results.map((x) => x.channel), specs[i].channels);
    const [ok, bad] = r.results;
    assert.equal(typeof ok.messageId, 'string');
    assert.ok(ok.messageId.length > 0);
    assert.equal('error' in ok, false);
    assert.equal(ok.serials.length, 2, 'BPR2c a serial per message');
    assert.equal('messageId' in bad, false);
    assert.equal(bad.error.statusCode, 401);
    assert.equal(bad.error.code, 40160);
  }
  const verify = c.rest(env.server, { key: k0(), binary });
  const h0 = (await verify.channels.get('pub-1').history({ limit: 2 })).items;
  assert.deepEqual(new Set(h0.map((m) => m.data)), new Set([`m1-${tag}`, `m2-${tag}`]));
  assert.ok(h0.every((m) => m.id.startsWith(`${res[0].results[0].messageId}:`)), `ids share the messageId prefix: ${h0.map((m) => m.id)}`);
  assert.deepEqual(h0.map((m) => m.serial).sort(), [...res[0].results[0].serials].sort());
  const h4 = (await verify.channels.get('members').history({ limit: 2, direction: 'backwards' })).items;
  assert.deepEqual(h4.map((m) => m.data).reverse(), [`m3-${tag}`, { k: tag }]);
  assert.equal(h4[1].name, 'e');
});

bothProtocols('RSC22 batchPublish with a single spec returns a single BatchResult; realtime subscribers of each channel get the messages', async (t, binary) => {
  const c = clients(t);
  const [a, b] = [uniqueChannel('bp-a'), uniqueChannel('bp-b')];
  const sub = await connected(c, env.server, { key: k0(), binary: !binary });
  const ca = collector(sub.channels.get(a));
  const cb = collector(sub.channels.get(b));
  await withTimeout(Promise.all([ca.subscribed, cb.subscribed]), 5000, 'attach');
  const rest = c.rest(env.server, { key: k0(), binary });
  const r = await rest.batchPublish({ channels: [a, b], messages: [{ name: 'x', data: Buffer.from([1, 2, 3]) }] });
  assert.equal(r.successCount, 2, JSON.stringify(r));
  assert.equal(r.failureCount, 0);
  for (const col of [ca, cb]) {
    const [m] = await col.until(1, 5000);
    assert.equal(m.name, 'x');
    assert.deepEqual(Buffer.from(m.data), Buffer.from([1, 2, 3]), 'binary data crosses the batch unchanged');
  }
});

test('RSC22 raw: refusals of the whole batch: over 100 channels 40003, a malformed spec 40000, no credentials 40101; a message too large fails its channels alone (40009)', async () => {
  const many = Array.from({ length: 101 }, (_, i) => `many-${i}`);
  let res = await http(env.server, 'POST', '/messages', { key: k0(), body: [{ channels: many, messages: [{ data: 'x' }] }] });
  assert.equal(res.status, 400, res.text);
  assert.equal(res.body.error.code, 40003);
  res = await http(env.server, 'POST', '/messages', { key: k0(), body: [{ channels: ['a'] }] });
  assert.equal(res.status, 400, res.text);
  assert.equal(res.body.error.code, 40000);
  res = await http(env.server, 'POST', '/messages', { body: [{ channels: ['a'], messages: [{ data: 'x' }] }] });
  assert.equal(res.status, 401, res.text);
  const big = 'x'.repeat(70 * 1024);
  res = await http(env.server, 'POST', '/messages', {
    key: k0(),
    body: { channels: [uniqueChannel('big'), uniqueChannel('ok')], messages: [{ data: big }] },
  });
  assert.equal(res.status, 201, res.text);
  assert.equal(res.body[0].failureCount, 2);
  assert.ok(res.body[0].results.every((r) => r.error.code === 40009), JSON.stringify(res.body[0].results.map((r) => r.error)));
});

bothProtocols('RSC24/BGR2/BGF2 batchPresence: members per channel, an error 401 where the capability refuses presence', async (t, binary) => {
  const c = clients(t);
  const member = await connected(c, env.server, { key: k0(), clientId: 'batchPresenceTest', binary });
  const empty = uniqueChannel('bpres-empty');
  await withTimeout(member.channels.get('pub-1').presence.enter(), 5000, 'enter pub-1');
  await withTimeout(member.channels.get('members').presence.enter('here'), 5000, 'enter members');
  const rest = c.rest(env.server, { key: k2(), binary });
  const r = await withTimeout(rest.batchPresence(['pub-1', 'members']), 5000, 'batchPresence');
  assert.equal(r.successCount, 1, JSON.stringify(r));
  assert.equal(r.failureCount, 1);
  assert.equal(r.results[0].channel, 'pub-1');
  assert.equal('presence' in r.results[0], false);
  assert.equal(r.results[0].error.statusCode, 401);
  assert.equal(r.results[1].channel, 'members');
  assert.equal('error' in r.results[1], false);
  const mine = r.results[1].presence.filter((p) => p.clientId === 'batchPresenceTest');
  assert.equal(mine.length, 1, JSON.stringify(r.results[1].presence));
  assert.equal(mine[0].data, 'here');
  const all = c.rest(env.server, { key: k0(), binary });
  const r2 = await all.batchPresence([empty]);
  assert.deepEqual(r2.results, [{ channel: empty, presence: [] }]);
  const bad = await settle(all.batchPresence([]));
  assert.equal(bad.ok, false, 'no channels: refused');
  assert.equal(bad.error.statusCode, 400);
});

// ably-js's rest/request test request_batch_api_success (RSC19f, HP3-HP7)
// asks for a batch publish with X-Ably-Version 2 and a single spec object,
// and counts a flat array of channel results: Ably's answer before
// protocol version 3. An array of specs, or a newer version, keeps BAR2.
bothProtocols('RSC19f/RSC22 request() batch publish with X-Ably-Version 2 and a single spec: a flat array of per-channel results (201); a failed channel gives 400 with error 40020 and batchResponse', async (t, binary) => {
  const c = clients(t);
  const [a, b] = [uniqueChannel('v2-a'), uniqueChannel('v2-b')];
  const rest = c.rest(env.server, { key: k0(), binary });
  const res = await withTimeout(rest.request('POST', '/messages', 2, {}, { channels: [a, b], messages: { data: 'foo' } }, {}), 5000, 'request v2');
  assert.equal(res.success, true);
  assert.equal(res.statusCode, 201);
  assert.equal(res.errorCode, null);
  assert.equal(res.items.length, 2, JSON.stringify(res.items));
  assert.deepEqual(res.items.map((x) => x.channel), [a, b]);
  for (const it of res.items) {
    assert.equal('error' in it, false);
    assert.equal('batchResponse' in it, false);
    assert.equal(typeof it.messageId, 'string');
  }
  const h = (await c.rest(env.server, { key: k0(), binary }).channels.get(b).history()).items;
  assert.deepEqual(h.map((m) => m.data), ['foo']);

  // key[2] may publish on pub-1 but not on sub-only: a partial failure.
  const r2 = c.rest(env.server, { key: k2(), binary });
  const part = await withTimeout(r2.request('POST', '/messages', 2, {}, { channels: ['pub-1', 'sub-only'], messages: { data: 'x' } }, {}), 5000, 'request v2 partial');
  assert.equal(part.success, false);
  assert.equal(part.statusCode, 400);
  assert.equal(part.errorCode, 40020);
  assert.equal(part.items.length, 1, JSON.stringify(part.items));
  const [body] = part.items;
  assert.equal(body.error.code, 40020);
  assert.equal(body.batchResponse.length, 2);
  assert.equal(body.batchResponse[0].channel, 'pub-1');
  assert.equal('error' in body.batchResponse[0], false);
  assert.equal(body.batchResponse[1].channel, 'sub-only');
  assert.equal(body.batchResponse[1].error.code, 40160);

  // An array of specs at version 2, and a single spec at a newer version:
  // BatchResults, as before.
  const arr = await rest.request('POST', '/messages', 2, {}, [{ channels: [a], messages: { data: 'y' } }], {});
  assert.equal(arr.statusCode, 201);
  assert.equal(arr.items.length, 1);
  assert.equal(arr.items[0].successCount, 1, JSON.stringify(arr.items));
  const v6 = await rest.request('POST', '/messages', 6, {}, { channels: [a, b], messages: { data: 'z' } }, {});
  assert.equal(v6.statusCode, 201);
  assert.equal(v6.items.length, 1);
  assert.equal(v6.items[0].successCount, 2, JSON.stringify(v6.items));
});
