// JsSIP in headless Chromium as an agent's WebRTC SIP station, for pacer-sip's tests.
// Usage: node station.mjs WS_URL USER PASSWORD
// Prints one JSON line per event on stdout: registered, invite (then it answers 486 Busy
// Here, as a phone that is busy would), unregistered; exits 0 when done, 1 on any failure.
import { chromium } from 'playwright-core';
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const [wsUrl, user, password] = process.argv.slice(2);
const here = path.dirname(fileURLToPath(import.meta.url));
const say = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const fail = (why) => { say({ event: 'error', why: String(why) }); process.exit(1); };
setTimeout(() => fail('timed out after 30 s'), 30000).unref();
process.on('unhandledRejection', fail);

// JsSIP ships CommonJS only: bundle it for the page.
const bundle = await build({
  stdin: { contents: 'window.JsSIP = require("jssip");', resolveDir: here },
  bundle: true, format: 'iife', write: false, logLevel: 'silent',
});
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  // Playwright gives the browser a fresh temporary profile of its own.
});
try {
  const page = await browser.newPage();
  page.on('pageerror', (e) => fail(e));
  await page.exposeFunction('report', (o) => say(o));
  await page.setContent('<!doctype html><title>station</title>');
  await page.addScriptTag({ content: bundle.outputFiles[0].text });
  const done = page.evaluate(([wsUrl, user, password]) => new Promise((resolve, reject) => {
    const ua = new JsSIP.UA({
      sockets: [new JsSIP.WebSocketInterface(wsUrl)],
      uri: `sip:${user}@pacer.local`,
      password,
      register: true,
      register_expires: 300,
      session_timers: false,
    });
    ua.on('registered', () => window.report({ event: 'registered' }));
    ua.on('registrationFailed', (e) => reject(new Error('registration failed: ' + e.cause)));
    ua.on('newRTCSession', ({ session, originator, request }) => {
      if (originator !== 'remote') return;
      window.report({ event: 'invite', from: request.from.uri.toString(), offer_has_audio: /m=audio/.test(request.body || '') });
      session.on('failed', () => { ua.unregister(); });
      session.terminate({ status_code: 486, reason_phrase: 'Busy Here' });
    });
    ua.on('unregistered', () => { window.report({ event: 'unregistered' }); ua.stop(); resolve(); });
    ua.start();
  }), [wsUrl, user, password]);
  await done;
} catch (e) {
  fail(e);
} finally {
  await browser.close();
}
process.exit(0);
