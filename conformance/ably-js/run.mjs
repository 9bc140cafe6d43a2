// Runs ably-js's node test suite (test/{unit,rest,realtime}) against
// switchboard: each test file in its own mocha process, against a fresh
// switchboard (provision.mjs), over WebSocket only, with every test's timeout
// capped. Writes one JSON line a test, a summary table, and compares the
// in-scope failures with known-failures.json. See README.md for the commands.
//
//   node conformance/ably-js/run.mjs --sdk-dir DIR [--server-bin PATH] [--out DIR]
//        [--files a.test.js,b.test.js] [--timeout-cap MS] [--file-timeout S]
//   node conformance/ably-js/run.mjs --report OUT/results.jsonl     (no run: re-score)
//
// Exit status: 0 when every in-scope test did what known-failures.json says,
// 1 on an unexpected failure or an unexpected pass, 2 on a usage error.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startSandbox, DEFAULT_SERVER_BIN } from './provision.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const SUITE_DIRS = ['test/unit', 'test/rest', 'test/realtime'];
const CATEGORIES = ['cannot-pass-locally', 'liveobjects-push-stats'];

function usage(msg) {
  if (msg) console.error(msg);
  console.error(
    'usage: node run.mjs --sdk-dir DIR [--server-bin PATH] [--out DIR] [--files LIST]\n' +
      '                    [--timeout-cap MS] [--file-timeout S] [--transports LIST]\n' +
      '       node run.mjs --report RESULTS.jsonl [--out DIR]',
  );
  process.exit(2);
}

function parseArgs(argv) {
  const o = {
    sdkDir: null,
    serverBin: DEFAULT_SERVER_BIN,
    out: path.join(here, 'out'),
    files: null,
    timeoutCap: 30_000,
    fileTimeout: 1800,
    transports: 'web_socket',
    report: null,
    scope: path.join(here, 'scope.json'),
    known: path.join(here, 'known-failures.json'),
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--sdk-dir') o.sdkDir = path.resolve(val());
    else if (a === '--server-bin') o.serverBin = path.resolve(val());
    else if (a === '--out') o.out = path.resolve(val());
    else if (a === '--files') o.files = val().split(',').filter(Boolean);
    else if (a === '--timeout-cap') o.timeoutCap = Number(val());
    else if (a === '--file-timeout') o.fileTimeout = Number(val());
    else if (a === '--transports') o.transports = val();
    else if (a === '--report') o.report = path.resolve(val());
    else if (a === '--scope') o.scope = path.resolve(val());
    else if (a === '--known') o.known = path.resolve(val());
    else if (a === '--help' || a === '-h') usage();
    else usage(`unknown argument ${a}`);
  }
  if (!o.report && !o.sdkDir) usage('--sdk-dir is required');
  return o;
}

// ---------------------------------------------------------------------------
// Scope and known failures
// ---------------------------------------------------------------------------

/* scope.json: { rules: [{ category, reason, file?, title? (a RegExp source),
 * titles? (exact full titles) }] }; the first rule whose file, title and
 * titles all match (an absent one matches anything) classifies a test; no
 * rule: in scope. */
function loadScope(file) {
  const s = JSON.parse(fs.readFileSync(file, 'utf8'));
  const rules = (s.rules || []).map((r) => {
    if (!CATEGORIES.includes(r.category)) throw new Error(`scope.json: unknown category ${r.category}`);
    if (!r.reason) throw new Error(`scope.json: a rule without a reason: ${JSON.stringify(r)}`);
    return { ...r, re: r.title ? new RegExp(r.title) : null, exact: r.titles ? new Set(r.titles) : null };
  });
  return (file, title) => {
    for (const r of rules) {
      if (r.file && r.file !== file) continue;
      if (r.re && !r.re.test(title)) continue;
      if (r.exact && !r.exact.has(title)) continue;
      return { scope: r.category, scopeReason: r.reason };
    }
    return { scope: 'in-scope', scopeReason: null };
  };
}

/** known-failures.json: { causes: { id: { reason, flaky?, tests: [title | {title, note}, ...] } } }
 * -> Map title -> {cause, reason, flaky, note}. A flaky cause's tests may pass
 * or fail: neither is reported as unexpected. */
function loadKnown(file) {
  const k = JSON.parse(fs.readFileSync(file, 'utf8'));
  const map = new Map();
  for (const [cause, entry] of Object.entries(k.causes || {})) {
    if (!entry.reason) throw new Error(`known-failures.json: cause ${cause} has no reason`);
    for (const t of entry.tests || []) {
      const title = typeof t === 'string' ? t : t.title;
      if (map.has(title)) throw new Error(`known-failures.json: ${title} is listed twice`);
      map.set(title, { cause, reason: entry.reason, flaky: !!entry.flaky, note: typeof t === 'string' ? null : t.note || null });
    }
  }
  return map;
}

// ---------------------------------------------------------------------------
// Running
// ---------------------------------------------------------------------------

function listFiles(sdkDir) {
  const files = [];
  for (const d of SUITE_DIRS) {
    for (const f of fs.readdirSync(path.join(sdkDir, d)).sort()) if (f.endsWith('.test.js')) files.push(`${d}/${f}`);
  }
  return files;
}

function slug(file) {
  return file.replace(/^test\//, '').replace(/\.test\.js$/, '').replace(/[^A-Za-z0-9]+/g, '-');
}

// What is running now, for an interrupted run to stop.
const current = { mocha: null, sandbox: null };
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, async () => {
    if (current.mocha) {
      try {
        process.kill(-current.mocha.pid, 'SIGKILL');
      } catch {}
    }
    if (current.sandbox) await current.sandbox.stop();
    process.exit(130);
  });
}

function runMocha(o, file, sandbox, rawFile, logFile) {
  return new Promise((resolve) => {
    const mocha = path.join(o.sdkDir, 'node_modules', 'mocha', 'bin', 'mocha');
    const args = [
      mocha,
      '--exit',
      '--reporter',
      path.join(here, 'lib', 'reporter.cjs'),
      '--require',
      path.join(here, 'lib', 'cap-timeout.cjs'),
      file,
    ];
    const env = {
      ...process.env,
      ABLY_LOCAL_SANDBOX_URL: sandbox.url,
      ABLY_TEST_TRANSPORTS: o.transports,
      CONFORMANCE_RESULTS: rawFile,
      CONFORMANCE_FILE: file,
      CONFORMANCE_TIMEOUT_CAP: String(o.timeoutCap),
    };
    const log = fs.openSync(logFile, 'w');
    // Its own process group, so that a timeout kills mocha with whatever it started.
    const child = spawn(process.execPath, args, { cwd: o.sdkDir, env, stdio: ['ignore', log, log], detached: true });
    current.mocha = child;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {}
    }, o.fileTimeout * 1000);
    child.on('exit', (code, signal) => {
      current.mocha = null;
      clearTimeout(timer);
      fs.closeSync(log);
      resolve({ code, signal, timedOut });
    });
  });
}

/** Turns one file's raw reporter lines into one result a planned test. */
function collect(file, lines, exit) {
  const plan = lines.find((l) => l.type === 'plan');
  const ended = lines.some((l) => l.type === 'end');
  const hook = lines.find((l) => l.type === 'hook');
  const why = exit.timedOut
    ? 'not run: the file exceeded --file-timeout'
    : !ended
      ? `not run: mocha exited (${exit.code ?? exit.signal}) before the end`
      : hook
        ? `not run: ${hook.title}: ${hook.error}`
        : 'not run';
  if (!plan) return [{ file, title: `${file} (did not load)`, state: 'failed', error: why, duration: null }];
  // Results name tests by their place in the plan; a failure reported after a
  // pass (an error after done()) is the result. Titles that repeat within a
  // file are numbered so that every result is one test.
  const byId = new Map();
  for (const l of lines) {
    if (l.type !== 'test' || l.id === undefined) continue;
    const prev = byId.get(l.id);
    if (!prev || (l.state === 'failed' && prev.state !== 'failed')) byId.set(l.id, l);
  }
  const seen = new Map();
  const uniq = (t) => {
    const n = (seen.get(t) || 0) + 1;
    seen.set(t, n);
    return n === 1 ? t : `${t} #${n}`;
  };
  return plan.tests.map((t, id) => {
    const title = uniq(t);
    const r = byId.get(id);
    if (r) return { file, title, state: r.state, error: r.error ?? null, duration: r.duration ?? null };
    return { file, title, state: 'failed', error: why, duration: null };
  });
}

async function run(o) {
  for (const p of [o.serverBin, path.join(o.sdkDir, 'node_modules', 'mocha'), path.join(o.sdkDir, 'build', 'ably-node.js')]) {
    if (!fs.existsSync(p)) usage(`missing ${p} (see README.md: build switchboard, install and build the SDK)`);
  }
  fs.mkdirSync(path.join(o.out, 'logs'), { recursive: true });
  const files = o.files || listFiles(o.sdkDir);
  const resultsFile = path.join(o.out, 'results.jsonl');
  fs.writeFileSync(resultsFile, '');
  const perFile = [];
  for (const file of files) {
    const s = slug(file);
    const rawFile = path.join(o.out, 'logs', `${s}.raw.jsonl`);
    fs.writeFileSync(rawFile, '');
    const started = Date.now();
    const sandbox = await startSandbox({ serverBin: o.serverBin, log: path.join(o.out, 'logs', `${s}.server.log`) });
    current.sandbox = sandbox;
    let exit;
    try {
      exit = await runMocha(o, file, sandbox, rawFile, path.join(o.out, 'logs', `${s}.mocha.log`));
    } finally {
      await sandbox.stop();
      current.sandbox = null;
    }
    const lines = fs
      .readFileSync(rawFile, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l));
    const results = collect(file, lines, exit);
    for (const r of results) fs.appendFileSync(resultsFile, JSON.stringify(r) + '\n');
    const secs = Math.round((Date.now() - started) / 1000);
    const c = countStates(results);
    perFile.push({ file, ...c, secs });
    console.log(`${file}: ${c.tests} tests, ${c.passed} pass, ${c.failed} fail, ${c.pending} skip (${secs} s)`);
  }
  return { resultsFile, perFile };
}

// ---------------------------------------------------------------------------
// Scoring
// ---------------------------------------------------------------------------

function countStates(rs) {
  const c = { tests: rs.length, passed: 0, failed: 0, pending: 0 };
  for (const r of rs) c[r.state]++;
  return c;
}

function pct(c) {
  const ran = c.passed + c.failed;
  return ran ? `${((100 * c.passed) / ran).toFixed(1)}%` : '–';
}

function score(o, resultsFile, perFile, partial) {
  const classify = loadScope(o.scope);
  const known = loadKnown(o.known);
  const results = fs
    .readFileSync(resultsFile, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => ({ ...JSON.parse(l) }))
    .map((r) => ({ ...r, ...classify(r.file, r.title) }));

  const rows = [
    ['all', results],
    ['cannot pass on a local server', results.filter((r) => r.scope === 'cannot-pass-locally')],
    ['LiveObjects, push, stats', results.filter((r) => r.scope === 'liveobjects-push-stats')],
    ['in scope', results.filter((r) => r.scope === 'in-scope')],
  ];
  const out = [];
  out.push('| tests | count | pass | fail | skip | pass rate (pass / (pass + fail)) |');
  out.push('|---|---:|---:|---:|---:|---:|');
  for (const [name, rs] of rows) {
    const c = countStates(rs);
    out.push(`| ${name} | ${c.tests} | ${c.passed} | ${c.failed} | ${c.pending} | ${pct(c)} |`);
  }

  const inScope = results.filter((r) => r.scope === 'in-scope');
  const unexpectedFail = inScope.filter((r) => r.state === 'failed' && !known.has(r.title));
  const unexpectedPass = inScope.filter((r) => r.state === 'passed' && known.has(r.title) && !known.get(r.title).flaky);
  const present = new Set(results.map((r) => r.title));
  const stale = [...known.keys()].filter((t) => !present.has(t));
  const outOfScopeKnown = results.filter((r) => r.scope !== 'in-scope' && known.has(r.title));

  // Known failures by cause, counted as this run saw them.
  const byCause = new Map();
  for (const r of inScope) {
    const k = known.get(r.title);
    if (!k || r.state !== 'failed') continue;
    byCause.set(k.cause, (byCause.get(k.cause) || 0) + 1);
  }
  out.push('');
  out.push('| cause (known-failures.json) | in-scope failures |');
  out.push('|---|---:|');
  for (const [cause, n] of [...byCause].sort((a, b) => b[1] - a[1])) out.push(`| ${cause} | ${n} |`);
  if (unexpectedFail.length) out.push(`| (not in known-failures.json) | ${unexpectedFail.length} |`);

  if (perFile && perFile.length) {
    out.push('');
    out.push('| file | tests | pass | fail | skip | seconds |');
    out.push('|---|---:|---:|---:|---:|---:|');
    for (const f of perFile) out.push(`| ${f.file} | ${f.tests} | ${f.passed} | ${f.failed} | ${f.pending} | ${f.secs} |`);
  }

  const lines = [];
  if (unexpectedFail.length) {
    lines.push(`\nUNEXPECTED FAILURES (${unexpectedFail.length}): in scope, not in known-failures.json`);
    for (const r of unexpectedFail) lines.push(`  ${r.title}  [${r.file}]\n      ${r.error}`);
  }
  if (unexpectedPass.length) {
    lines.push(`\nUNEXPECTED PASSES (${unexpectedPass.length}): listed in known-failures.json, passed; remove them from the list`);
    for (const r of unexpectedPass) lines.push(`  ${r.title}  [${known.get(r.title).cause}]`);
  }
  if (stale.length && partial) {
    lines.push(`\nnote: ${stale.length} known-failures entries are not in the files run`);
  } else if (stale.length) {
    lines.push(`\nnote: ${stale.length} known-failures entries match no test in this run (renamed or removed: update the list)`);
    for (const t of stale) lines.push(`  ${t}`);
  }
  if (outOfScopeKnown.length) {
    lines.push(`\nnote: ${outOfScopeKnown.length} known-failures entries are out of scope (scope.json wins)`);
    for (const r of outOfScopeKnown) lines.push(`  ${r.title}`);
  }
  const scored = path.join(path.dirname(resultsFile), 'scored.jsonl');
  fs.writeFileSync(
    scored,
    results
      .map((r) => JSON.stringify({ ...r, known: known.get(r.title)?.cause ?? null }))
      .join('\n') + '\n',
  );
  const summary = out.join('\n') + '\n' + lines.join('\n') + '\n';
  fs.writeFileSync(path.join(path.dirname(resultsFile), 'summary.md'), summary);
  console.log('\n' + summary);
  console.log(`results: ${resultsFile}\nscored:  ${scored}`);
  return unexpectedFail.length || unexpectedPass.length ? 1 : 0;
}

const o = parseArgs(process.argv.slice(2));
const readJson = (f) => (fs.existsSync(f) ? JSON.parse(fs.readFileSync(f, 'utf8')) : null);
if (o.report) {
  const dir = path.dirname(o.report);
  const meta = readJson(path.join(dir, 'run.json'));
  process.exit(score(o, o.report, readJson(path.join(dir, 'per-file.json')), !!meta?.partial));
} else {
  const started = new Date().toISOString();
  const { resultsFile, perFile } = await run(o);
  const meta = {
    started,
    finished: new Date().toISOString(),
    sdkDir: o.sdkDir,
    serverBin: o.serverBin,
    partial: !!o.files,
    files: perFile.map((f) => f.file),
    timeoutCap: o.timeoutCap,
    transports: o.transports,
    node: process.version,
  };
  fs.writeFileSync(path.join(o.out, 'run.json'), JSON.stringify(meta, null, 2) + '\n');
  fs.writeFileSync(path.join(o.out, 'per-file.json'), JSON.stringify(perFile, null, 2) + '\n');
  process.exit(score(o, resultsFile, perFile, meta.partial));
}
