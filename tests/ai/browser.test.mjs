// The example app in headless Chromium over plain HTTP and WebSocket
// (lib/browser-suite.mjs; browser-tls.test.mjs is the same over TLS).
import { browserSuite } from './lib/browser-suite.mjs';

browserSuite({ tls: false });
