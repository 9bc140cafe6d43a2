'use strict';
// Mocha reporter for the conformance runner (loaded by path with --reporter):
// prints the usual spec output and appends one JSON line a test to the file
// named by CONFORMANCE_RESULTS. At the start it writes the plan (every test's
// full title) so that the runner can mark tests that never ran when a hook
// fails or the process dies.
const fs = require('fs');

// Mocha is the one the SDK checkout installed (the process runs in it).
const Mocha = require(require.resolve('mocha', { paths: [process.cwd()] }));

function firstLine(err) {
  if (!err) return null;
  const msg = typeof err === 'string' ? err : err.message || String(err);
  return String(msg).split('\n')[0].slice(0, 400);
}

class ConformanceReporter extends Mocha.reporters.Spec {
  constructor(runner, options) {
    super(runner, options);
    const out = process.env.CONFORMANCE_RESULTS;
    const file = process.env.CONFORMANCE_FILE || '';
    const write = (obj) => {
      if (out) fs.appendFileSync(out, JSON.stringify({ file, ...obj }) + '\n');
    };
    runner.once('start', () => {
      const titles = [];
      const walk = (suite) => {
        for (const t of suite.tests) {
          t.conformanceId = titles.length; // results name the test by its place in the plan
          titles.push(t.fullTitle());
        }
        for (const s of suite.suites) walk(s);
      };
      walk(runner.suite);
      write({ type: 'plan', tests: titles });
    });
    runner.on('pass', (t) => write({ type: 'test', id: t.conformanceId, title: t.fullTitle(), state: 'passed', duration: t.duration ?? null }));
    runner.on('pending', (t) => write({ type: 'test', id: t.conformanceId, title: t.fullTitle(), state: 'pending', duration: null }));
    runner.on('fail', (t, err) => {
      if (t.type === 'hook') {
        write({ type: 'hook', title: t.fullTitle(), state: 'failed', error: firstLine(err) });
        return;
      }
      write({ type: 'test', id: t.conformanceId, title: t.fullTitle(), state: 'failed', error: firstLine(err), duration: t.duration ?? null });
    });
    runner.once('end', () => write({ type: 'end' }));
  }
}

module.exports = ConformanceReporter;
