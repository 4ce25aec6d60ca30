// Drives pacer's own pages in headless Chromium (the system's binary) for tests/desktop.rs.
// Usage: node desktop.mjs SCENARIO '{"base": "http://…", …}'
// Scenarios: call (agent takes a call, both directions of audio, disposition),
// close (the agent's page goes away mid-call), reload (it comes back mid-call),
// supervise (a supervisor listens), own (preview, skip, manual dial, a refused transfer).
// Prints one JSON line with what the pages showed and measured; progress goes to stderr.
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [scenario, json] = process.argv.slice(2);
const opts = JSON.parse(json);
const log = (...a) => console.error(`[${scenario} ${new Date().toISOString().slice(11, 23)}]`, ...a);
const browsers = [];

/** A browser of its own (a fresh profile) whose microphone plays `wav`. */
async function browser(wav) {
  const profile = mkdtempSync(join(tmpdir(), 'pacer-chromium-'));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1280, height: 1000 },
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
      `--use-file-for-fake-audio-capture=${wav}`,
      '--autoplay-policy=no-user-gesture-required',
    ],
  });
  browsers.push({ ctx, profile });
  const page = ctx.pages()[0] || (await ctx.newPage());
  page.on('console', (m) => log('[page]', m.text()));
  page.on('pageerror', (e) => log('[page error]', e.message));
  return page;
}

async function login(page, path, user, pass) {
  await page.goto(opts.base + path);
  await page.fill('#login-user', user);
  await page.fill('#login-pass', pass);
  await page.click('#login-go');
}

/** The agent's desktop: logged in, softphone connected, ready. */
async function readyAgent() {
  const page = await browser(opts.agent_mic);
  await login(page, '/agent', opts.agent, opts.agent_password);
  await page.waitForSelector('#desk:not(.hidden)', { timeout: 10000 });
  log('agent logged in');
  await page.click('#phone');
  await page.waitForFunction(() => document.getElementById('phone-state').textContent === 'softphone connected', null, { timeout: 20000 });
  log('softphone connected');
  await page.click('#ready');
  await page.waitForFunction(() => document.getElementById('state').textContent === 'Ready', null, { timeout: 10000 });
  log('agent ready');
  return page;
}

/** Waits for the screen pop and reads it off the page. */
async function screenPop(page) {
  await page.waitForFunction(() => window.pacerDesk.desk.pop !== null, null, { timeout: 40000 });
  const pop = await page.evaluate(() => ({
    call_id: window.pacerDesk.desk.callId,
    name: document.getElementById('cust-name').textContent,
    phone: document.getElementById('cust-phone').textContent,
    campaign: document.getElementById('call-campaign').textContent,
    script: document.getElementById('script').textContent,
    fields: Object.fromEntries([...document.querySelectorAll('#fields input')].map((i) => [i.dataset.field, i.value])),
    state: document.getElementById('state').textContent,
  }));
  log('screen pop', JSON.stringify(pop));
  return pop;
}

const measure = (page, handle, freqs, which = 'remote') =>
  page.evaluate(([h, f, w]) => window[h].phone.measure(2500, f, w), [handle, freqs, which]);

async function call() {
  const page = await readyAgent();
  const pop = await screenPop(page);
  // Let the media settle on the new bridge before measuring.
  await page.waitForTimeout(500);
  const heard = await measure(page, 'pacerDesk', [opts.customer_hz, opts.agent_hz]);
  const sent = await measure(page, 'pacerDesk', [opts.customer_hz, opts.agent_hz], 'mic');
  log('heard', JSON.stringify(heard), 'mic', JSON.stringify(sent));
  // The agent edits a field, schedules a callback and takes notes while talking.
  await page.fill('#fields input[data-field="plan"]', 'Platinum');
  await page.click('#pad button[data-digit="5"]');
  await page.waitForTimeout(300);
  const dtmf_error = await page.evaluate(() => document.getElementById('desk-error').textContent);
  await page.selectOption('#dispo-code', 'call_back');
  await page.fill('#cb-at', opts.callback_at);
  await page.check('#cb-mine');
  await page.fill('#dispo-notes', 'Wants the Platinum plan; call back tomorrow');
  if (opts.screenshots) await page.screenshot({ path: join(opts.screenshots, 'agent-desktop.png') });
  await page.click('#hangup');
  await page.waitForFunction(() => window.pacerDesk.desk.ended, null, { timeout: 10000 });
  const wrap = await page.evaluate(() => document.getElementById('state').textContent);
  log('call ended; state', wrap);
  await page.click('#dispo-save');
  await page.waitForFunction(() => document.getElementById('dispo-done').textContent.startsWith('Saved'), null, { timeout: 15000 });
  const saved = await page.evaluate(() => document.getElementById('dispo-done').textContent);
  const errors = await page.evaluate(() => document.getElementById('desk-error').textContent);
  log('disposition', saved);
  // Logging out: the server closes the socket, the page goes back to its login form.
  await page.click('#logout');
  await page.waitForSelector('#login:not(.hidden)', { timeout: 10000 });
  await page.waitForSelector('#desk.hidden', { state: 'attached', timeout: 10000 });
  return { pop, heard, sent, dtmf_error, wrap_state: wrap, saved, errors, logged_out: true };
}

async function close() {
  const page = await readyAgent();
  const pop = await screenPop(page);
  await page.waitForTimeout(500);
  const heard = await measure(page, 'pacerDesk', [opts.customer_hz]);
  log('heard', JSON.stringify(heard), 'closing the page');
  await page.close();
  return { pop, heard, closed_at: Date.now() };
}

async function reload() {
  const page = await readyAgent();
  const before = await screenPop(page);
  const heard_before = await measure(page, 'pacerDesk', [opts.customer_hz]);
  log('reloading the page mid-call');
  await page.reload();
  // The web session brings the desktop back without the password.
  await page.waitForSelector('#desk:not(.hidden)', { timeout: 10000 });
  const login_shown = await page.evaluate(() => !document.getElementById("login").classList.contains("hidden"));
  const after = await screenPop(page);
  await page.click('#phone');
  await page.waitForFunction(() => document.getElementById('phone-state').textContent === 'softphone connected', null, { timeout: 20000 });
  await page.waitForTimeout(500);
  const heard_after = await measure(page, 'pacerDesk', [opts.customer_hz]);
  log('heard before', JSON.stringify(heard_before), 'after', JSON.stringify(heard_after));
  await page.click('#hangup');
  await page.waitForFunction(() => window.pacerDesk.desk.ended, null, { timeout: 10000 });
  await page.selectOption('#dispo-code', 'sale');
  await page.click('#dispo-save');
  await page.waitForFunction(() => document.getElementById('dispo-done').textContent.startsWith('Saved'), null, { timeout: 15000 });
  return { before, after, heard_before, heard_after, login_shown };
}

/** The agent places calls: previews the campaign's lead and skips it, then dials a
 *  typed number, hears the customer, hangs up and dispositions. */
async function own() {
  const page = await browser(opts.agent_mic);
  await login(page, '/agent', opts.agent, opts.agent_password);
  await page.waitForSelector('#desk:not(.hidden)', { timeout: 10000 });
  await page.click('#phone');
  await page.waitForFunction(() => document.getElementById('phone-state').textContent === 'softphone connected', null, { timeout: 20000 });
  log('softphone connected; previewing');
  await page.click('#preview-next');
  await page.waitForSelector('#preview:not(.hidden)', { timeout: 10000 });
  const preview = await page.evaluate(() => ({
    name: document.getElementById('pv-name').textContent,
    phone: document.getElementById('pv-phone').textContent,
    script: document.getElementById('pv-script').textContent,
  }));
  log('preview', JSON.stringify(preview));
  // The only lead: skipping it leaves nothing else to preview.
  await page.click('#pv-skip');
  await page.waitForFunction(() => document.getElementById('desk-error').textContent !== '', null, { timeout: 10000 });
  const after_skip = await page.evaluate(() => document.getElementById('desk-error').textContent);
  await page.fill('#manual-number', opts.manual_number);
  await page.click('#manual-go');
  await page.waitForFunction(() => document.getElementById('dial-status').textContent.startsWith('Dialling'), null, { timeout: 10000 });
  const pop = await screenPop(page);
  await page.waitForTimeout(500);
  const heard = await measure(page, 'pacerDesk', [opts.customer_hz]);
  log('heard', JSON.stringify(heard));
  // A transfer to a queue that does not exist: refused, the agent keeps the customer.
  await page.selectOption('#xfer-kind', 'queue');
  await page.fill('#xfer-target', 'Nowhere');
  await page.click('#xfer');
  await page.waitForFunction(() => document.getElementById('desk-error').textContent.includes('queue'), null, { timeout: 10000 });
  const xfer_error = await page.evaluate(() => document.getElementById('desk-error').textContent);
  const heard_after_xfer = await measure(page, 'pacerDesk', [opts.customer_hz]);
  await page.click('#hangup');
  await page.waitForFunction(() => window.pacerDesk.desk.ended, null, { timeout: 10000 });
  await page.selectOption('#dispo-code', 'sale');
  await page.click('#dispo-save');
  await page.waitForFunction(() => document.getElementById('dispo-done').textContent.startsWith('Saved'), null, { timeout: 15000 });
  return { preview, after_skip, pop, heard, xfer_error, heard_after_xfer };
}

async function supervise() {
  const agent = await readyAgent();
  const sup = await browser(opts.supervisor_mic);
  await login(sup, '/supervisor', opts.supervisor, opts.supervisor_password);
  await sup.waitForSelector('#floor:not(.hidden)', { timeout: 10000 });
  log('supervisor logged in');
  const pop = await screenPop(agent);
  const row = `#agents tr[data-agent="${opts.agent_id}"]`;
  // The floor shows the call (from the next snapshot), then the supervisor listens.
  await sup.waitForFunction((r) => document.querySelector(r)?.children[4]?.textContent.startsWith('+'), row, { timeout: 10000 });
  await sup.click(`${row} button[data-mode="listen"]`);
  await sup.waitForFunction(() => window.pacerFloor.floor.listening !== null, null, { timeout: 25000 });
  log('supervisor listening');
  await sup.waitForTimeout(800);
  const heard = await measure(sup, 'pacerFloor', [opts.customer_hz, opts.agent_hz, opts.supervisor_hz]);
  log('supervisor heard', JSON.stringify(heard));
  const floor = await sup.evaluate((r) => ({
    row: [...document.querySelector(r).children].slice(0, 6).map((c) => c.textContent),
    listening: document.getElementById('listening').textContent,
    tiles: [...document.querySelectorAll('#campaigns .tile')].map((t) => t.textContent),
    errors: document.getElementById('floor-error').textContent,
  }), row);
  if (opts.screenshots) await sup.screenshot({ path: join(opts.screenshots, 'supervisor.png') });
  await sup.click('#stop');
  await sup.waitForFunction(() => window.pacerFloor.floor.listening === null, null, { timeout: 5000 });
  await agent.click('#hangup');
  await agent.waitForFunction(() => window.pacerDesk.desk.ended, null, { timeout: 10000 });
  await agent.selectOption('#dispo-code', 'sale');
  await agent.click('#dispo-save');
  await agent.waitForFunction(() => document.getElementById('dispo-done').textContent.startsWith('Saved'), null, { timeout: 15000 });
  return { pop, heard, floor };
}

// Never outlive the test that started us.
const guard = setTimeout(() => {
  console.log(JSON.stringify({ error: `timed out in the browser (${scenario})` }));
  process.exit(2);
}, opts.timeout_ms || 90000);
let result;
try {
  const run = { call, close, reload, supervise, own }[scenario];
  if (!run) throw new Error(`unknown scenario ${scenario}`);
  result = await run();
} catch (e) {
  result = { error: String(e.stack || e) };
} finally {
  clearTimeout(guard);
  for (const b of browsers) {
    await b.ctx.close().catch(() => {});
    rmSync(b.profile, { recursive: true, force: true });
  }
}
console.log(JSON.stringify(result));
