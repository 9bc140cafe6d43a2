'use strict';
// Loaded into the mocha process with --require: caps every test's and
// suite's timeout (ably-js suites ask for 60 s, a few for more) at
// CONFORMANCE_TIMEOUT_CAP milliseconds, so a test that waits for something
// switchboard never sends fails in bounded time. 0 disables the cap.
const cap = Number(process.env.CONFORMANCE_TIMEOUT_CAP || 0);
if (cap > 0) {
  const paths = [process.cwd()];
  for (const mod of ['mocha/lib/runnable', 'mocha/lib/suite']) {
    const Cls = require(require.resolve(mod, { paths }));
    const orig = Cls.prototype.timeout;
    Cls.prototype.timeout = function (...args) {
      const r = orig.apply(this, args);
      if (args.length && (this._timeout === 0 || this._timeout > cap)) orig.call(this, cap);
      return args.length ? this : r;
    };
  }
}
