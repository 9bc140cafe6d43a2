// The example app in headless Chromium over HTTPS and WSS: the page, the
// token endpoint and switchboard (--tls-cert/--tls-key) with a throwaway CA
// (lib/browser-suite.mjs).
import { browserSuite } from './lib/browser-suite.mjs';

browserSuite({ tls: true });
