// A strict parser of the Prometheus text exposition format (version 0.0.4),
// for checking what GET /metrics writes. Stricter than Prometheus itself:
// anything the format does not allow, and anything a well-formed exposition
// should not do, throws with the offending line:
//   - every line ends with "\n"; no blank lines; comments only "# HELP" and
//     "# TYPE" (at most one each per family, before its samples);
//   - metric and label names follow the grammar; label values use only the
//     escapes \\, \" and \n; no label repeated in a sample;
//   - every sample belongs to a declared family (TYPE first) and a family's
//     samples are contiguous; no series appears twice;
//   - a value is a float in Go's syntax (or NaN, +Inf, -Inf); counters and
//     histogram parts are >= 0; no timestamps (the server writes none);
//   - a histogram has le buckets in strictly ascending order ending with
//     +Inf, cumulative counts that never decrease, +Inf == _count, and _sum.
//
// Returns a Map: family name -> {name, type, help, samples: [{name, labels, value}]}.

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const FLOAT = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

function parseValue(s, where) {
  if (s === 'NaN') return NaN;
  if (s === '+Inf') return Infinity;
  if (s === '-Inf') return -Infinity;
  if (!FLOAT.test(s)) throw new Error(`${where}: bad value ${JSON.stringify(s)}`);
  return Number(s);
}

/** Parses `{a="x",b="y"}` starting at s[i] === '{'; returns [labels, nextIndex]. */
function parseLabels(s, i, where) {
  const labels = {};
  i++; // '{'
  if (s[i] === '}') return [labels, i + 1];
  for (;;) {
    const m = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(s.slice(i));
    if (!m) throw new Error(`${where}: bad label name at column ${i}`);
    const name = m[0];
    i += name.length;
    if (s[i] !== '=' || s[i + 1] !== '"') throw new Error(`${where}: expected =" after label ${name}`);
    i += 2;
    let value = '';
    for (;;) {
      const c = s[i];
      if (c === undefined) throw new Error(`${where}: unterminated label value`);
      if (c === '"') break;
      if (c === '\\') {
        const e = s[i + 1];
        if (e === '\\') value += '\\';
        else if (e === '"') value += '"';
        else if (e === 'n') value += '\n';
        else throw new Error(`${where}: bad escape \\${e} in label ${name}`);
        i += 2;
      } else {
        value += c;
        i++;
      }
    }
    i++; // closing quote
    if (Object.hasOwn(labels, name)) throw new Error(`${where}: label ${name} repeated`);
    if (!LABEL_NAME.test(name) || name.startsWith('__')) throw new Error(`${where}: bad label name ${name}`);
    labels[name] = value;
    if (s[i] === ',') {
      i++;
      if (s[i] === '}') return [labels, i + 1]; // a trailing comma is allowed
      continue;
    }
    if (s[i] === '}') return [labels, i + 1];
    throw new Error(`${where}: expected , or } after label ${name}`);
  }
}

function familyOf(sampleName, families) {
  if (families.has(sampleName)) return families.get(sampleName);
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (sampleName.endsWith(suffix)) {
      const f = families.get(sampleName.slice(0, -suffix.length));
      if (f && (f.type === 'histogram' || (f.type === 'summary' && suffix !== '_bucket'))) return f;
    }
  }
  return null;
}

function checkHistogram(f) {
  const where = `histogram ${f.name}`;
  const groups = new Map(); // labels without le -> {buckets, sum, count}
  for (const s of f.samples) {
    const { le, ...rest } = s.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    if (!groups.has(key)) groups.set(key, { buckets: [], sum: undefined, count: undefined });
    const g = groups.get(key);
    if (s.name === `${f.name}_bucket`) {
      if (le === undefined) throw new Error(`${where}: bucket without le`);
      g.buckets.push({ le: parseValue(le, `${where} le`), value: s.value });
    } else if (le !== undefined) {
      throw new Error(`${where}: le on ${s.name}`);
    } else if (s.name === `${f.name}_sum`) g.sum = s.value;
    else if (s.name === `${f.name}_count`) g.count = s.value;
    else throw new Error(`${where}: unexpected sample ${s.name}`);
  }
  if (groups.size === 0) throw new Error(`${where}: no samples`);
  for (const g of groups.values()) {
    if (g.buckets.length === 0) throw new Error(`${where}: no buckets`);
    for (let i = 1; i < g.buckets.length; i++) {
      if (!(g.buckets[i].le > g.buckets[i - 1].le)) throw new Error(`${where}: le not ascending at ${g.buckets[i].le}`);
      if (g.buckets[i].value < g.buckets[i - 1].value) throw new Error(`${where}: bucket le=${g.buckets[i].le} decreases`);
    }
    const last = g.buckets[g.buckets.length - 1];
    if (last.le !== Infinity) throw new Error(`${where}: no +Inf bucket`);
    if (g.count === undefined || g.sum === undefined) throw new Error(`${where}: _sum or _count missing`);
    if (last.value !== g.count) throw new Error(`${where}: +Inf bucket ${last.value} != _count ${g.count}`);
    if (!(g.sum >= 0)) throw new Error(`${where}: negative _sum`);
  }
}

export function parsePrometheus(text) {
  if (text.length && !text.endsWith('\n')) throw new Error('exposition does not end with a newline');
  const lines = text.length ? text.slice(0, -1).split('\n') : [];
  const families = new Map();
  const series = new Set();
  let current = null; // the family whose samples are being read
  const finished = new Set();
  lines.forEach((line, idx) => {
    const where = `line ${idx + 1} (${JSON.stringify(line.slice(0, 120))})`;
    if (line === '') throw new Error(`${where}: blank line`);
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (!m) throw new Error(`${where}: a comment other than HELP or TYPE`);
      const [, kind, name, rest] = m;
      if (!METRIC_NAME.test(name)) throw new Error(`${where}: bad metric name`);
      if (finished.has(name) || (current && current.name === name && current.samples.length)) {
        throw new Error(`${where}: ${kind} after the samples of ${name}`);
      }
      if (current && current.name !== name) {
        finished.add(current.name);
        current = null;
      }
      if (!families.has(name)) families.set(name, { name, type: undefined, help: undefined, samples: [] });
      const f = families.get(name);
      if (kind === 'HELP') {
        if (f.help !== undefined) throw new Error(`${where}: second HELP`);
        if (/\\(?![\\n])/.test(rest)) throw new Error(`${where}: bad escape in HELP`);
        f.help = rest.replace(/\\(\\|n)/g, (_, c) => (c === 'n' ? '\n' : '\\'));
      } else {
        if (f.type !== undefined) throw new Error(`${where}: second TYPE`);
        if (!TYPES.has(rest)) throw new Error(`${where}: unknown type ${rest}`);
        f.type = rest;
      }
      current = f;
      return;
    }
    const nm = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line);
    if (!nm) throw new Error(`${where}: bad sample name`);
    const name = nm[0];
    let i = name.length;
    let labels = {};
    if (line[i] === '{') [labels, i] = parseLabels(line, i, where);
    if (line[i] !== ' ') throw new Error(`${where}: expected a space before the value`);
    const parts = line.slice(i + 1).split(' ');
    if (parts.length !== 1) throw new Error(`${where}: a timestamp or trailing text`);
    const value = parseValue(parts[0], where);
    const f = familyOf(name, families);
    if (!f || f.type === undefined) throw new Error(`${where}: sample of an undeclared family (TYPE first)`);
    if (current !== f) {
      if (finished.has(f.name) || f.samples.length) throw new Error(`${where}: samples of ${f.name} not contiguous`);
      if (current) finished.add(current.name);
      current = f;
    }
    const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
    if (series.has(key)) throw new Error(`${where}: series repeated`);
    series.add(key);
    if ((f.type === 'counter' || f.type === 'histogram') && !(value >= 0)) throw new Error(`${where}: negative ${f.type}`);
    f.samples.push({ name, labels, value });
  });
  for (const f of families.values()) {
    if (f.type === undefined) throw new Error(`family ${f.name} has HELP but no TYPE`);
    if (f.type === 'histogram') checkHistogram(f);
  }
  return families;
}

/** The value of one series (name + exact labels), or undefined. */
export function sampleValue(families, name, labels = {}) {
  const f = familyOf(name, families);
  if (!f) return undefined;
  const want = JSON.stringify(Object.entries(labels).sort());
  const s = f.samples.find((x) => x.name === name && JSON.stringify(Object.entries(x.labels).sort()) === want);
  return s?.value;
}
