// bench/chart.mjs RESULTS.json OUT.svg: the chart of docs/benchmarks.md, drawn
// from bench/run.sh's results.json without any plotting package: one panel
// per figure, a bar per server at the median of its runs, a whisker from the
// lowest to the highest run. A panel whose figures were not run says so.
import { readFileSync, writeFileSync } from 'node:fs';

const [resPath, outPath] = process.argv.slice(2);
if (!resPath || !outPath) {
  console.error('usage: node bench/chart.mjs RESULTS.json OUT.svg');
  process.exit(2);
}
const res = JSON.parse(readFileSync(resPath, 'utf8'));
const byLabel = new Map(res.figures.map((f) => [f.label, f]));
const stat = (label, key) => byLabel.get(label)?.stats?.[key] ?? null;

const SB = '#3465a4', PEER = '#cc0000', OTHER = '#75507b', FLOOR = '#888a85';
const panels = [
  { title: 'Fan-out: deliveries/s (higher is better)', bars: [
    ['switchboard', 'fanout-switchboard', 'deliveries_per_s', SB],
    ['sb --memory', 'fanout-switchboard-memory', 'deliveries_per_s', SB],
    ['Redis', 'fanout-redis', 'deliveries_per_s', PEER],
    ['mosquitto', 'fanout-mosquitto', 'deliveries_per_s', OTHER]] },
  { title: 'Fan-out: server CPU per delivery, µs (lower is better)', bars: [
    ['switchboard', 'fanout-switchboard', 'server_us_per_delivery', SB],
    ['sb --memory', 'fanout-switchboard-memory', 'server_us_per_delivery', SB],
    ['Redis', 'fanout-redis', 'server_us_per_delivery', PEER],
    ['mosquitto', 'fanout-mosquitto', 'server_us_per_delivery', OTHER]] },
  { title: 'Idle: RSS per connection at steady state, bytes (lower is better)', bars: [
    ['switchboard', 'idle-switchboard', 'rss_per_conn_bytes', SB],
    ['Redis', 'idle-redis', 'rss_per_conn_bytes', PEER],
    ['mosquitto', 'idle-mosquitto', 'rss_per_conn_bytes', OTHER]], line: [1024, '1,024 B target'] },
  { title: 'Connect storm: connects/s (higher is better)', bars: [
    ['libsw 1 proc', 'connect', 'connects_per_s', SB],
    ['libsw 2 procs', 'connect-2procs', 'connects_per_s', SB],
    ['raw 1 proc', 'connect-raw', 'connects_per_s', SB],
    ['raw 2 procs', 'connect-raw-2procs', 'connects_per_s', SB]], line: [25000, '25k target'] },
  { title: 'AI streams: append → delivery p99, ms (lower is better)', bars: [
    ['rollup 0', 'ai-r0', 'latency_p99_ms', SB],
    ['floor', 'floor-r0', 'latency_p99_ms', FLOOR],
    ['rollup 40', 'ai-r40', 'latency_p99_ms', SB],
    ['floor', 'floor-r40', 'latency_p99_ms', FLOOR]] },
  { title: 'Durable publish, synchronous=FULL: messages/s (higher is better)', bars: [
    ['switchboard', 'durable-full', 'messages_per_s', SB]] },
  { title: 'Ably JWT full verification: tokens/s on one core (higher is better)', bars: [
    ['switchboard full_server', 'jwt', 'full_server', SB],
    ['node jsonwebtoken', 'jwt', 'node_jsonwebtoken_verify', OTHER]] },
  { title: 'Cluster fan-out: server CPU per delivery, all nodes + Redis, µs (lower is better)', bars: [
    ['1 node SQLite', 'cluster-sqlite-fanout', 'server_us_per_delivery', SB],
    ['1 node + Redis', 'cluster-1-fanout', 'server_us_per_delivery', OTHER],
    ['2 nodes + Redis', 'cluster-2-fanout', 'server_us_per_delivery', OTHER],
    ['3 nodes + Redis', 'cluster-3-fanout', 'server_us_per_delivery', OTHER]],
    line: (() => { const s = stat('cluster-sqlite-fanout', 'server_us_per_delivery');
      return s && s.median != null ? [1.5 * s.median, '1.5× single node'] : undefined; })() },
  { title: `Cluster: publish ACK p99 at ${res.meta.cluster_rate ?? '?'}/s, ms (lower is better)`, bars: [
    ['1 node SQLite', 'cluster-sqlite-ack', 'ack_p99_ms', SB],
    ['1 node + Redis', 'cluster-1-ack', 'ack_p99_ms', OTHER],
    ['2 nodes + Redis', 'cluster-2-ack', 'ack_p99_ms', OTHER],
    ['3 nodes + Redis', 'cluster-3-ack', 'ack_p99_ms', OTHER]], line: [10, '10 ms target'] },
];

const W = 1400, PH = 330, COLS = 2, PW = W / COLS;
const rows = Math.ceil(panels.length / COLS);
const H = 60 + rows * PH + 30;
const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const fmt = (x) => {
  const a = Math.abs(x);
  if (Number.isInteger(x) && a < 1e4) return String(x);
  if (a >= 1e6) return (x / 1e6).toFixed(2) + 'M';
  if (a >= 1e4) return (x / 1e3).toFixed(1) + 'k';
  if (a >= 100) return x.toFixed(0);
  if (a >= 10) return x.toFixed(1);
  return x.toFixed(2);
};
// A round axis maximum above v: 1, 2 or 5 times a power of ten.
const niceMax = (v) => {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
};

const out = [];
const m = res.meta;
out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="DejaVu Sans, Arial, sans-serif" font-size="12">`);
out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
out.push(`<text x="${W / 2}" y="24" text-anchor="middle" font-size="16">switchboard beside Redis and mosquitto: medians of ${m.runs} runs (connects ${m.connect_runs}), whiskers min–max</text>`);
out.push(`<text x="${W / 2}" y="44" text-anchor="middle" fill="#555">commit ${esc(m.commit)}${m.dirty ? ' (dirty)' : ''}, ${esc(m.date)}, nproc ${m.nproc}${m.quick ? ', QUICK MODE: not figures' : ''}</text>`);

panels.forEach((p, i) => {
  const x0 = (i % COLS) * PW + 70, y0 = 60 + Math.floor(i / COLS) * PH + 30;
  const pw = PW - 110, ph = PH - 90;
  out.push(`<text x="${x0 + pw / 2}" y="${y0 - 10}" text-anchor="middle" font-size="13" font-weight="bold">${esc(p.title)}</text>`);
  const bars = p.bars.map(([name, label, key, color, scale = 1]) => {
    const s = stat(label, key);
    return s && s.median != null ? { name, color, med: s.median * scale, lo: s.min * scale, hi: s.max * scale } : { name, color, missing: true };
  });
  const present = bars.filter((b) => !b.missing);
  out.push(`<line x1="${x0}" y1="${y0 + ph}" x2="${x0 + pw}" y2="${y0 + ph}" stroke="#000"/>`);
  out.push(`<line x1="${x0}" y1="${y0}" x2="${x0}" y2="${y0 + ph}" stroke="#000"/>`);
  if (!present.length) {
    out.push(`<text x="${x0 + pw / 2}" y="${y0 + ph / 2}" text-anchor="middle" fill="#888">not run</text>`);
    return;
  }
  const top = niceMax(Math.max(...present.map((b) => b.hi), p.line ? p.line[0] : 0) * 1.1);
  const y = (v) => y0 + ph - (v / top) * ph;
  for (let k = 0; k <= 4; k++) {
    const v = (top * k) / 4;
    out.push(`<line x1="${x0}" y1="${y(v)}" x2="${x0 + pw}" y2="${y(v)}" stroke="#ddd"/>`);
    out.push(`<text x="${x0 - 6}" y="${y(v) + 4}" text-anchor="end" fill="#333">${fmt(v)}</text>`);
  }
  const slot = pw / bars.length, bw = slot * 0.55;
  bars.forEach((b, k) => {
    const cx = x0 + slot * (k + 0.5);
    out.push(`<text x="${cx}" y="${y0 + ph + 18}" text-anchor="middle">${esc(b.name)}</text>`);
    if (b.missing) {
      out.push(`<text x="${cx}" y="${y0 + ph - 6}" text-anchor="middle" fill="#888">not run</text>`);
      return;
    }
    out.push(`<rect x="${cx - bw / 2}" y="${y(b.med)}" width="${bw}" height="${y0 + ph - y(b.med)}" fill="${b.color}" fill-opacity="0.85"/>`);
    out.push(`<line x1="${cx}" y1="${y(b.lo)}" x2="${cx}" y2="${y(b.hi)}" stroke="#000" stroke-width="1.5"/>`);
    for (const v of [b.lo, b.hi]) out.push(`<line x1="${cx - 8}" y1="${y(v)}" x2="${cx + 8}" y2="${y(v)}" stroke="#000" stroke-width="1.5"/>`);
    out.push(`<text x="${cx}" y="${y(b.hi) - 6}" text-anchor="middle" font-weight="bold">${fmt(b.med)}</text>`);
  });
  if (p.line) {
    out.push(`<line x1="${x0}" y1="${y(p.line[0])}" x2="${x0 + pw}" y2="${y(p.line[0])}" stroke="#cc0000" stroke-dasharray="6 4"/>`);
    out.push(`<text x="${x0 + 4}" y="${y(p.line[0]) - 4}" fill="#cc0000">${esc(p.line[1])}</text>`);
  }
});
out.push('</svg>');
writeFileSync(outPath, out.join('\n') + '\n');
