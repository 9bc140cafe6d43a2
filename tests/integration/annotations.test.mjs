// Annotations (RTAN) with the real ably-js SDK: published on a message
// (annotation-publish), delivered live to clients attached with the
// ANNOTATION_SUBSCRIBE mode, stamped by the server (serial, clientId,
// connectionId), and refused where the namespace has no mutableMessages
// rule (93002), without the capability (40160) or for an unknown message
// serial (40400). Annotations are not stored or summarised (docs/compatibility.md).
import assert from 'node:assert/strict';
import { beforeEach } from 'node:test';
import {
  useServer,
  bothProtocols,
  clients,
  connected,
  createApp,
  uniqueChannel,
  withTimeout,
  waitUntil,
  settle,
  sleep,
} from './lib/server.mjs';

const env = useServer({ label: 'annotations' });
const K = {};
let appReady;
beforeEach(() => {
  appReady ??= (async () => {
    const app = await createApp(env.server, {
      keys: [{}, { capability: JSON.stringify({ 'mut:*': ['publish', 'subscribe'] }) }],
      namespaces: [{ id: 'mut', mutableMessages: true }],
    });
    K.all = app.keys[0].keyStr;
    K.noAnnotate = app.keys[1].keyStr;
  })();
  return appReady;
});

async function expectError(promise, code, what) {
  const r = await withTimeout(settle(promise), 6000, what);
  assert.equal(r.ok, false, `${what}: must fail`);
  assert.equal(r.error.code, code, `${what}: code ${r.error.code} (${r.error.message}), want ${code}`);
}

bothProtocols('RTAN1/RTAN4 an annotation reaches ANNOTATION_SUBSCRIBE subscribers, stamped by the server', async (t, binary) => {
  const c = clients(t);
  const name = `mut:${uniqueChannel('ann')}`;
  const alice = await connected(c, env.server, { key: K.all, binary, clientId: 'alice' });
  const bob = await connected(c, env.server, { key: K.all, binary: !binary, clientId: 'bob' });
  const carol = await connected(c, env.server, { key: K.all, binary, clientId: 'carol' });
  const got = [];
  const bch = bob.channels.get(name, { modes: ['SUBSCRIBE', 'ANNOTATION_SUBSCRIBE'] });
  await bch.annotations.subscribe((a) => got.push(a));
  // carol attaches without ANNOTATION_SUBSCRIBE: she must not get them.
  const cgot = [];
  const cch = carol.channels.get(name);
  await cch.attach();
  cch.annotations.subscribe((a) => cgot.push(a)).catch(() => {});
  const ach = alice.channels.get(name);
  const { serials } = await ach.publish('question', 'is this on?');
  await ach.annotations.publish(serials[0], { type: 'reaction:distinct.v1', name: 'thumbsup', data: 'x' });
  await waitUntil(() => got.length === 1, 5000, 'annotation delivered');
  const a = got[0];
  assert.equal(a.action, 'annotation.create');
  assert.equal(a.type, 'reaction:distinct.v1');
  assert.equal(a.name, 'thumbsup');
  assert.equal(a.data, 'x');
  assert.equal(a.messageSerial, serials[0]);
  assert.equal(a.clientId, 'alice');
  assert.equal(a.connectionId, alice.connection.id);
  assert.ok(typeof a.serial === 'string' && a.serial > serials[0], `annotation serial ${a.serial}`);
  await sleep(200);
  assert.equal(cgot.length, 0, 'no annotations without the ANNOTATION_SUBSCRIBE mode');
});

bothProtocols('RTAN refusals: 93002 without mutableMessages, 40160 without annotation-publish, 40400 unknown serial', async (t, binary) => {
  const c = clients(t);
  const alice = await connected(c, env.server, { key: K.all, binary, clientId: 'alice' });
  const plain = alice.channels.get(uniqueChannel('plain'));
  const { serials } = await plain.publish('m', 'v');
  await expectError(plain.annotations.publish(serials[0], { type: 'reaction:distinct.v1', name: 'x' }), 93002, 'plain channel');
  const mut = alice.channels.get(`mut:${uniqueChannel('unknown')}`);
  await mut.publish('m', 'v');
  await expectError(mut.annotations.publish('00000000000000ff', { type: 'reaction:distinct.v1', name: 'x' }), 40400, 'unknown serial');
  const limited = await connected(c, env.server, { key: K.noAnnotate, binary, clientId: 'lim' });
  const lch = limited.channels.get(`mut:${uniqueChannel('cap')}`);
  const r = await lch.publish('m', 'v');
  await expectError(lch.annotations.publish(r.serials[0], { type: 'reaction:distinct.v1', name: 'x' }), 40160, 'no capability');
  assert.equal(limited.connection.state, 'connected');
});
