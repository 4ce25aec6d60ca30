// Opens a page of the test's HTTP server in headless Chromium (the system's binary) with a
// WAV file as the microphone, and prints the page's result as one JSON line.
// Usage: node webrtc_call.mjs URL MIC.wav
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [url, wav] = process.argv.slice(2);
const profile = mkdtempSync(join(tmpdir(), 'pacer-chromium-'));
// A fresh profile directory per run (playwright passes it as --user-data-dir).
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: [
    '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
    `--use-file-for-fake-audio-capture=${wav}`,
    '--autoplay-policy=no-user-gesture-required',
  ],
});
// Never outlive the test that started us.
const guard = setTimeout(async () => {
  console.log(JSON.stringify({ error: 'timed out in the browser' }));
  await browser.close().catch(() => {});
  process.exit(2);
}, 45000);
try {
  const page = await browser.newPage();
  page.on('console', (m) => console.error('[page]', m.text()));
  await page.goto(url);
  const result = await page.evaluate(() => window.runCall());
  console.log(JSON.stringify(result));
} catch (e) {
  console.log(JSON.stringify({ error: String(e) }));
} finally {
  clearTimeout(guard);
  await browser.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
