// History and rewind: RSL2 (REST history), RTL10 (realtime history incl.
// RTL10b untilAttach), TG (PaginatedResult next/hasNext/isLast), RTL4k
// channel params (rewind).
import assert from 'node:assert/strict';
import {
  useServer,
  bothProtocols,
  clients,
  connected,
  collector,
  uniqueChannel,
  sleep,
  withTimeout,
} from './lib/server.mjs';

const env = useServer({ label: 'history' });
const key = () => env.app.keys[0].keyStr;

/** Publishes `count` messages named `${prefix}` with data `${prefix}${i}`, awaiting each ACK. */
async function publishSeq(rtChannel, prefix, count, start = 0) {
  for (let i = start; i < start + count; i++) {
    await withTimeout(rtChannel.publish(prefix, `${prefix}${i}`), 5000, `publish ${prefix}${i}`);
  }
}

/** Walks a PaginatedResult to the end; returns [pages of data arrays]. */
async function walk(page, maxPages = 20) {
  const pages = [];
  for (let n = 0; page; n++) {
    assert.ok(n < maxPages, 'pagination did not terminate');
    pages.push({
      data: page.items.map((m) => m.data),
      hasNext: page.hasNext(),
      isLast: page.isLast(),
    });
    const next = await withTimeout(page.next(), 5000, 'page.next()');
    if (!pages[pages.length - 1].hasNext) {
      assert.equal(next, null, 'next() on the last page resolves to null');
      break;
    }
    page = next;
  }
  return pages;
}

const ten = Array.from({ length: 10 }, (_, i) => `h${i}`);

bothProtocols('RSL2a/RSL2b REST history: default backwards, forwards, limit, 4 pages via next()/hasNext()/isLast()', async (t, binary) => {
  const c = clients(t);
  const name = uniqueChannel('rsl2');
  const rt = await connected(c, env.server, { key: key(), binary });
  await publishSeq(rt.channels.get(name), 'h', 10);
  const rest = c.rest(env.server, { key: key(), binary });
  const ch = rest.channels.get(name);

  const all = await withTimeout(ch.history(), 5000, 'history()');
  assert.deepEqual(all.items.map((m) => m.data), [...ten].reverse(), 'RSL2b2 default direction is backwards');
  assert.equal(all.hasNext(), false);
  assert.equal(all.isLast(), true);
  for (const m of all.items) {
    assert.equal(m.name, 'h');
    assert.equal(typeof m.id, 'string');
    assert.equal(typeof m.timestamp, 'number');
    assert.equal(typeof m.serial, 'string', 'history items carry serial');
    assert.equal(m.connectionId, rt.connection.id, 'history items carry the publisher connectionId');
  }

  const fwd = await ch.history({ direction: 'forwards' });
  assert.deepEqual(fwd.items.map((m) => m.data), ten);

  const pagesF = await walk(await ch.history({ direction: 'forwards', limit: 3 }));
  assert.deepEqual(
    pagesF.map((p) => p.data),
    [['h0', 'h1', 'h2'], ['h3', 'h4', 'h5'], ['h6', 'h7', 'h8'], ['h9']],
  );
  assert.deepEqual(pagesF.map((p) => p.hasNext), [true, true, true, false]);
  assert.deepEqual(pagesF.map((p) => p.isLast), [false, false, false, true]);

  const pagesB = await walk(await ch.history({ direction: 'backwards', limit: 4 }));
  assert.deepEqual(
    pagesB.map((p) => p.data),
    [['h9', 'h8', 'h7', 'h6'], ['h5', 'h4', 'h3', 'h2'], ['h1', 'h0']],
  );
  assert.deepEqual(pagesB.map((p) => p.hasNext), [true, true, false]);

  const one = await ch.history({ limit: 1 });
  assert.deepEqual(one.items.map((m) => m.data), ['h9']);
  assert.equal(one.hasNext(), true);

  // Exactly-divisible page size: the third page holds the last items and
  // there must be no phantom empty page after it.
  const pages5 = await walk(await ch.history({ direction: 'forwards', limit: 5 }));
  const nonEmpty = pages5.filter((p) => p.data.length > 0).map((p) => p.data);
  assert.deepEqual(nonEmpty, [ten.slice(0, 5), ten.slice(5)]);
});

bothProtocols('RTL10a realtime history: both directions and pagination over 3+ pages', async (t, binary) => {
  const c = clients(t);
  const name = uniqueChannel('rtl10');
  const rt = await connected(c, env.server, { key: key(), binary });
  const ch = rt.channels.get(name);
  await publishSeq(ch, 'h', 10);
  // RTL10d: another client reads the history after the ACKs.
  const other = await connected(c, env.server, { key: key(), binary });
  const och = other.channels.get(name);
  const back = await withTimeout(och.history(), 5000, 'realtime history()');
  assert.deepEqual(back.items.map((m) => m.data), [...ten].reverse());
  const pages = await walk(await och.history({ direction: 'forwards', limit: 3 }));
  assert.deepEqual(pages.map((p) => p.data), [['h0', 'h1', 'h2'], ['h3', 'h4', 'h5'], ['h6', 'h7', 'h8'], ['h9']]);
  const pagesB = await walk(await och.history({ limit: 3 }));
  assert.deepEqual(pagesB.map((p) => p.data).flat(), [...ten].reverse());
  assert.equal(pagesB.length, 4);
});

bothProtocols('RSL2b1 history start/end bound the time window (and ignore direction)', async (t, binary) => {
  const c = clients(t);
  const name = uniqueChannel('window');
  const rt = await connected(c, env.server, { key: key(), binary });
  const ch = rt.channels.get(name);
  await publishSeq(ch, 'a', 3);
  await sleep(60);
  await publishSeq(ch, 'b', 3);
  await sleep(60);
  await publishSeq(ch, 'c', 3);
  const rest = c.rest(env.server, { key: key(), binary });
  const rch = rest.channels.get(name);
  const all = (await rch.history({ direction: 'forwards' })).items;
  assert.equal(all.length, 9);
  const ts = (p) => all.filter((m) => m.name === p).map((m) => m.timestamp);
  const maxA = Math.max(...ts('a'));
  const minB = Math.min(...ts('b'));
  const maxB = Math.max(...ts('b'));
  const minC = Math.min(...ts('c'));
  assert.ok(maxA < minB && maxB < minC, `timestamps reflect the 60 ms gaps: ${all.map((m) => m.timestamp)}`);
  const start = Math.floor((maxA + minB) / 2);
  const end = Math.floor((maxB + minC) / 2);
  const fw = await rch.history({ start, end, direction: 'forwards' });
  assert.deepEqual(fw.items.map((m) => m.data), ['b0', 'b1', 'b2']);
  const bw = await rch.history({ start, end, direction: 'backwards' });
  assert.deepEqual(bw.items.map((m) => m.data), ['b2', 'b1', 'b0']);
  const fromB = await rch.history({ start, direction: 'forwards' });
  assert.deepEqual(fromB.items.map((m) => m.data), ['b0', 'b1', 'b2', 'c0', 'c1', 'c2']);
  const untilB = await rch.history({ end, direction: 'forwards' });
  assert.deepEqual(untilB.items.map((m) => m.data), ['a0', 'a1', 'a2', 'b0', 'b1', 'b2']);
  // Bounds are inclusive of a message exactly at the boundary timestamp.
  const exact = await rch.history({ start: minB, end: minB, direction: 'forwards' });
  assert.ok(exact.items.length >= 1 && exact.items.every((m) => m.timestamp === minB), 'start=end=ts returns messages at ts');
  // Paging inside a window.
  const pages = await walk(await rch.history({ start, end, direction: 'forwards', limit: 2 }));
  assert.deepEqual(pages.map((p) => p.data), [['b0', 'b1'], ['b2']]);
});

bothProtocols('RTL10b history untilAttach only returns messages up to the attach point', async (t, binary) => {
  const c = clients(t);
  const name = uniqueChannel('untilattach');
  const [pub, sub] = await Promise.all([
    connected(c, env.server, { key: key(), binary }),
    connected(c, env.server, { key: key(), binary }),
  ]);
  const pch = pub.channels.get(name);
  await publishSeq(pch, 'before', 3);
  const sch = sub.channels.get(name);
  await withTimeout(sch.attach(), 5000, 'attach');
  await publishSeq(pch, 'after', 2);
  const full = await sch.history();
  assert.deepEqual(full.items.map((m) => m.data), ['after1', 'after0', 'before2', 'before1', 'before0']);
  const until = await withTimeout(sch.history({ untilAttach: true }), 5000, 'history untilAttach');
  assert.deepEqual(until.items.map((m) => m.data), ['before2', 'before1', 'before0']);
  const untilFwd = await sch.history({ untilAttach: true, direction: 'forwards', limit: 2 });
  assert.deepEqual(untilFwd.items.map((m) => m.data), ['before0', 'before1']);
  assert.equal(untilFwd.hasNext(), true);
  const next = await untilFwd.next();
  assert.deepEqual(next.items.map((m) => m.data), ['before2']);
  assert.equal(next.hasNext(), false);
});

bothProtocols('RTL4k rewind=5 channel param: attach replays the last 5 messages in order', async (t, binary) => {
  const c = clients(t);
  const name = uniqueChannel('rewind');
  const pub = await connected(c, env.server, { key: key(), binary });
  await publishSeq(pub.channels.get(name), 'r', 10);
  const sub = await connected(c, env.server, { key: key(), binary });
  const ch = sub.channels.get(name, { params: { rewind: '5' } });
  const col = collector(ch);
  await withTimeout(col.subscribed, 5000, 'attach with rewind');
  await col.until(5);
  await sleep(300);
  assert.deepEqual(col.messages.map((m) => m.data), ['r5', 'r6', 'r7', 'r8', 'r9']);
  assert.equal(ch.params?.rewind, '5', `RTL4k1 ATTACHED echoes the accepted params, got ${JSON.stringify(ch.params)}`);
  // Live messages follow the replay without gaps or duplicates.
  await pub.channels.get(name).publish('r', 'live');
  await col.until(6);
  await sleep(200);
  assert.deepEqual(col.messages.map((m) => m.data), ['r5', 'r6', 'r7', 'r8', 'r9', 'live']);
});

bothProtocols('RTL4k rewind=2 via channels.get(name, {params}) and rewind larger than history', async (t, binary) => {
  const c = clients(t);
  const name = uniqueChannel('rewind2');
  const pub = await connected(c, env.server, { key: key(), binary });
  await publishSeq(pub.channels.get(name), 'r', 3);
  const sub = await connected(c, env.server, { key: key(), binary });
  const col = collector(sub.channels.get(name, { params: { rewind: '2' } }));
  await withTimeout(col.subscribed, 5000, 'attach');
  await col.until(2);
  const big = collector(sub.channels.get(uniqueChannel('rewind-empty'), { params: { rewind: '50' } }));
  await withTimeout(big.subscribed, 5000, 'attach empty channel with rewind');
  const sub2 = await connected(c, env.server, { key: key(), binary });
  const col50 = collector(sub2.channels.get(name, { params: { rewind: '50' } }));
  await withTimeout(col50.subscribed, 5000, 'attach rewind=50');
  await col50.until(3);
  await sleep(300);
  assert.deepEqual(col.messages.map((m) => m.data), ['r1', 'r2']);
  assert.deepEqual(col50.messages.map((m) => m.data), ['r0', 'r1', 'r2'], 'rewind beyond history returns all of it');
  assert.equal(big.messages.length, 0, 'rewind on an empty channel replays nothing');
});

bothProtocols('RTL4k rewind by time (rewind=1s / 10s) replays only messages inside the window', async (t, binary) => {
  const c = clients(t);
  const name = uniqueChannel('rewindt');
  const pub = await connected(c, env.server, { key: key(), binary });
  const pch = pub.channels.get(name);
  await publishSeq(pch, 'old', 2);
  await sleep(1500);
  await publishSeq(pch, 'new', 2);
  const sub = await connected(c, env.server, { key: key(), binary });
  const col1 = collector(sub.channels.get(name, { params: { rewind: '1s' } }));
  await withTimeout(col1.subscribed, 5000, 'attach rewind=1s');
  await col1.until(2);
  const sub2 = await connected(c, env.server, { key: key(), binary });
  const col10 = collector(sub2.channels.get(name, { params: { rewind: '10s' } }));
  await withTimeout(col10.subscribed, 5000, 'attach rewind=10s');
  await col10.until(4);
  await sleep(300);
  assert.deepEqual(col1.messages.map((m) => m.data), ['new0', 'new1'], 'rewind=1s excludes messages 1.5 s old');
  assert.deepEqual(col10.messages.map((m) => m.data), ['old0', 'old1', 'new0', 'new1']);
});

bothProtocols('TB2/RTL4k rewind via a [?rewind=3] channel name qualifier', async (t, binary) => {
  const c = clients(t);
  const name = uniqueChannel('rewindq');
  const pub = await connected(c, env.server, { key: key(), binary });
  await publishSeq(pub.channels.get(name), 'q', 6);
  const sub = await connected(c, env.server, { key: key(), binary });
  const col = collector(sub.channels.get(`[?rewind=3]${name}`));
  await withTimeout(col.subscribed, 5000, 'attach [?rewind=3]');
  await col.until(3);
  await sleep(300);
  assert.deepEqual(col.messages.map((m) => m.data), ['q3', 'q4', 'q5']);
  // Live traffic on the base channel reaches the qualified attachment.
  await pub.channels.get(name).publish('q', 'live');
  await col.until(4);
  assert.equal(col.messages[3].data, 'live');
});
