// Drives pacer's agent desktop in headless Firefox (the system's firefox-esr, over WebDriver
// BiDi with puppeteer-core) for tests/desktop.rs: the agent logs in, connects the
// softphone, goes ready, takes the call, receives the customer's audio, hangs up and
// dispositions.
// Firefox's fake microphone plays a 1 kHz tone. Usage: node firefox.mjs '{"base": …}'
// Prints one JSON line with what the page showed and measured; progress goes to stderr.
import puppeteer from 'puppeteer-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const opts = JSON.parse(process.argv[2]);
const log = (...a) => console.error(`[firefox ${new Date().toISOString().slice(11, 23)}]`, ...a);
const profile = mkdtempSync(join(tmpdir(), 'pacer-firefox-'));
let browser;

const waitText = (page, id, text, timeout) =>
  page.waitForFunction((i, t) => document.getElementById(i)?.textContent === t, { timeout }, id, text);

async function run() {
  browser = await puppeteer.launch({
    browser: 'firefox',
    executablePath: process.env.FIREFOX || '/usr/bin/firefox-esr',
    headless: true,
    userDataDir: profile,
    extraPrefsFirefox: {
      'media.navigator.streams.fake': true,
      'media.navigator.permission.disabled': true,
      'media.autoplay.default': 0,
      'media.autoplay.block-webaudio': false,
      // This machine has loopback only: Firefox gathers no loopback candidates by default
      // (real agents' machines have a real interface), and hides host addresses behind mDNS.
      'media.peerconnection.ice.loopback': true,
      'media.peerconnection.ice.obfuscate_host_addresses': false,
      // No sound card here: a null audio backend lets the page's AudioContext run.
      'media.cubeb.force_null_context': true,
    },
  });
  const page = await browser.newPage();
  page.on('console', (m) => log('[page]', m.text()));
  page.on('pageerror', (e) => log('[page error]', e.message));
  await page.goto(opts.base + '/agent');
  await page.type('#login-user', opts.agent);
  await page.type('#login-pass', opts.agent_password);
  await page.click('#login-go');
  await page.waitForSelector('#desk:not(.hidden)', { timeout: 10000 });
  log('logged in');
  await page.click('#phone');
  try {
    await waitText(page, 'phone-state', 'softphone connected', 20000);
  } catch (e) {
    const seen = await page.evaluate(() => ({ phone: document.getElementById('phone-state').textContent, error: document.getElementById('desk-error').textContent, pc: window.pacerDesk.phone.pc?.connectionState, ice: window.pacerDesk.phone.pc?.iceConnectionState, sig: window.pacerDesk.phone.pc?.signalingState, state: window.pacerDesk.phone.state }));
    throw new Error(`softphone did not connect: ${JSON.stringify(seen)}: ${e.message}`);
  }
  log('softphone connected');
  await page.click('#ready');
  await waitText(page, 'state', 'Ready', 10000);
  await page.waitForFunction(() => window.pacerDesk.desk.pop !== null, { timeout: 40000 });
  const pop = await page.evaluate(() => ({
    name: document.getElementById('cust-name').textContent,
    phone: document.getElementById('cust-phone').textContent,
    state: document.getElementById('state').textContent,
  }));
  log('screen pop', JSON.stringify(pop));
  // Headless Firefox has no sound card here, so the page's AudioContext stays suspended
  // and cannot measure; what arrives is read from the receiver's RTP statistics instead
  // (and what the microphone sends, from the call's recording, by the Rust side).
  const inbound = () =>
    page.evaluate(async () => {
      const stats = await window.pacerDesk.phone.pc.getStats();
      for (const s of stats.values()) if (s.type === 'inbound-rtp' && s.kind === 'audio') return { packets: s.packetsReceived, bytes: s.bytesReceived, lost: s.packetsLost, jitter: s.jitter };
      return null;
    });
  const before = await inbound();
  await new Promise((r) => setTimeout(r, 2000));
  const after = await inbound();
  log('inbound RTP', JSON.stringify(before), JSON.stringify(after));
  await page.click('#hangup');
  await page.waitForFunction(() => window.pacerDesk.desk.ended, { timeout: 10000 });
  await page.select('#dispo-code', 'sale');
  await page.click('#dispo-save');
  await page.waitForFunction(() => document.getElementById('dispo-done').textContent.startsWith('Saved'), { timeout: 15000 });
  const saved = await page.evaluate(() => document.getElementById('dispo-done').textContent);
  const ua = await page.evaluate(() => navigator.userAgent);
  return { pop, before, after, saved, ua };
}

const guard = setTimeout(() => {
  console.log(JSON.stringify({ error: 'timed out in Firefox' }));
  process.exit(2);
}, opts.timeout_ms || 90000);
let result;
try {
  result = await run();
} catch (e) {
  result = { error: String(e.stack || e) };
} finally {
  clearTimeout(guard);
  await browser?.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
console.log(JSON.stringify(result));
