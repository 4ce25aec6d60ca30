// The agent desktop: log in (a web session whose cookie opens the CTI socket), connect the softphone once (the persistent
// media leg), go ready, take screen pops, control the call, disposition, see today's
// figures. The server owns every state; this page shows what it is told.
import { CtiSocket, Softphone, clock, el, loginForm, meterWidth, STATE_LABELS } from './cti.js';

const $ = (id) => document.getElementById(id);
const cti = new CtiSocket('/cti/agent', { login: '/login/agent', check: '/login/agent', logout: '/logout/agent' });
const phone = new Softphone(cti, $('remote-audio'));

const desk = {
  me: null,
  state: null,
  pop: null,
  callId: null,
  ended: false,
  saved: false,
  held: false,
  muted: false,
  leaving: false,
  preview: null,
  dialingId: null,
};
// For tests and for a look from the browser console.
window.pacerDesk = { desk, phone, cti };

function say(text) {
  $('desk-error').textContent = text || '';
}

// ---- login ----
loginForm(cti, loggedIn);

function loggedIn(m) {
  desk.me = m;
  $('desk').classList.remove('hidden');
  $('who').textContent = `${m.name || m.username} (${m.username})`;
  $('reason').replaceChildren(...m.reasons.map((r) => el('option', { value: r }, r.replace(/_/g, ' '))));
  $('dispo-code').replaceChildren(
    el('option', { value: '' }, 'Choose…'),
    ...m.dispositions.map((d) => el('option', { value: d.code, 'data-callback': d.callback ? '1' : '' }, d.label || d.code)),
  );
  loadStats();
  render();
}

cti.on('reconnected', (m) => {
  desk.me = m;
  say('');
  // The server kept the leg; a softphone that dropped with the network offers again.
  if (phone.wanted && phone.state !== 'connected') connectPhone();
  render();
});
cti.on('closed', () => {
  if (desk.leaving) {
    cti.close();
    phone.wanted = false;
    phone.hangup();
    cti.endSession().then(() => location.reload());
    return;
  }
  if (cti.wanted) $('link').textContent = 'connection lost, reconnecting…';
  render();
});
cti.on('*', () => ($('link').textContent = ''));

// ---- softphone ----
async function connectPhone() {
  say('');
  try {
    await phone.connect();
  } catch (err) {
    say(`Softphone: ${err.message}`);
  }
}
$('phone').addEventListener('click', () => (phone.state === 'connected' ? phone.hangup() : connectPhone()));
phone.addEventListener('state', (e) => {
  const { state, why } = e.detail;
  const label = { off: 'softphone off', connecting: 'connecting…', connected: 'softphone connected', failed: `softphone failed${why ? ': ' + why : ''}` }[state];
  $('phone-state').textContent = label;
  $('phone-state').className = state === 'connected' ? 'notice' : state === 'failed' ? 'error' : 'muted';
  if (state !== 'connected') {
    $('mic-level').style.width = $('spk-level').style.width = '0';
  }
  render();
});
phone.addEventListener('levels', (e) => {
  $('mic-level').style.width = meterWidth(e.detail.mic);
  $('spk-level').style.width = meterWidth(e.detail.speaker);
});

// ---- states ----
$('ready').addEventListener('click', () => cti.send({ type: 'ready' }));
$('not-ready').addEventListener('click', () => cti.send({ type: 'not_ready', reason: $('reason').value }));
// The server closes the socket once the agent is logged out (or answers `refused`).
$('logout').addEventListener('click', () => {
  desk.leaving = cti.send({ type: 'logout' });
});

cti.on('state', (m) => {
  const was = desk.state?.state;
  desk.state = m;
  if (m.call_id && m.call_id !== desk.callId && m.state === 'on_call') {
    // The screen pop normally follows at once. Without one (the page came back
    // mid-call) the call can still be controlled and dispositioned by its id.
    const id = m.call_id;
    setTimeout(() => {
      if (desk.callId !== id && desk.state?.call_id === id) startCall({ call_id: id, lead: null });
    }, 1500);
  }
  if (m.state === 'wrap_up' && desk.callId && !desk.ended) {
    // The call ended while this page was away (its call_ended went nowhere).
    desk.ended = true;
    $('call-status').textContent = 'ended';
  }
  if (was !== m.state && (m.state === 'ready' || m.state === 'not_ready')) {
    if (desk.saved || !desk.callId) clearCall();
    loadStats();
  }
  render();
});

cti.on('error', (m) => {
  desk.leaving = false;
  say(m.message);
});

// ---- the call ----
cti.on('call', (pop) => {
  // The same pop again (the socket came back): keep what the agent has typed.
  if (desk.pop && desk.pop.call_id === pop.call_id) return;
  startCall(pop);
});

function startCall(pop) {
  desk.dialingId = null;
  $('dial-status').textContent = '';
  desk.pop = pop.lead ? pop : null;
  desk.callId = pop.call_id;
  desk.ended = false;
  desk.saved = false;
  desk.held = desk.muted = false;
  say('');
  $('dispo-done').textContent = '';
  $('dispo-form').reset();
  $('cb-box').classList.add('hidden');
  const lead = pop.lead;
  $('cust-name').textContent = lead ? lead.name || 'Customer' : `Call ${pop.call_id}`;
  $('cust-phone').textContent = lead ? lead.phone : '';
  $('call-campaign').textContent = pop.campaign ? `${pop.campaign.name}${pop.machine ? ' · answered by a machine' : ''}` : 'details are not available after a reconnect';
  $('script').textContent = pop.script || '';
  $('script').classList.toggle('hidden', !pop.script);
  const fields = $('fields');
  fields.replaceChildren();
  if (lead) {
    fields.append(el('label', {}, 'name', el('input', { 'data-field': 'name', value: lead.name || '' })));
    for (const [k, v] of Object.entries(lead.fields || {})) {
      const text = v === null ? '' : typeof v === 'string' ? v : JSON.stringify(v);
      fields.append(el('label', {}, k.replace(/_/g, ' '), el('input', { 'data-field': k, 'data-orig': text, value: text })));
    }
  }
  const body = $('attempts').tBodies[0];
  body.replaceChildren(
    ...(pop.attempts || []).map((a) =>
      el('tr', {}, el('td', {}, new Date(a.started_at).toLocaleString()), el('td', {}, a.outcome), el('td', {}, a.disposition || ''), el('td', {}, a.agent_id ?? '')),
    ),
  );
  if (!body.rows.length) body.append(el('tr', {}, el('td', { colspan: '4', class: 'muted' }, 'First attempt')));
  render();
}

// ---- calls the agent places: preview and manual dial ----
cti.on('preview', (p) => {
  desk.preview = p;
  $('pv-name').textContent = p.lead.name || 'Lead';
  $('pv-phone').textContent = p.lead.phone;
  $('pv-script').textContent = p.script || '';
  $('pv-fields').replaceChildren(
    ...Object.entries(p.lead.fields || {}).map(([k, v]) => el('label', {}, k.replace(/_/g, ' '), el('input', { value: v === null ? '' : String(v), disabled: '' }))),
  );
  $('dial-status').textContent = `${(p.attempts || []).length} previous attempt(s)`;
  render();
});
cti.on('dialing', (m) => {
  desk.preview = null;
  desk.dialingId = m.call_id;
  $('dial-status').textContent = `Dialling ${m.number}…`;
  render();
});
$('dial-cancel').addEventListener('click', () => cti.send({ type: 'hangup' }));
$('preview-next').addEventListener('click', () => cti.send({ type: 'preview_next' }));
$('pv-dial').addEventListener('click', () => desk.preview && cti.send({ type: 'dial', lead_id: desk.preview.lead.id }));
$('pv-skip').addEventListener('click', () => desk.preview && cti.send({ type: 'skip', lead_id: desk.preview.lead.id }));
$('manual-go').addEventListener('click', () => {
  const number = $('manual-number').value.trim();
  if (number) cti.send({ type: 'manual_dial', number });
});
$('xfer').addEventListener('click', () => {
  const to = $('xfer-target').value.trim();
  if (!to) return;
  cti.send({ type: 'transfer', [$('xfer-kind').value]: to });
});

function clearCall() {
  desk.pop = null;
  desk.callId = null;
  desk.ended = false;
  desk.saved = false;
  render();
}

cti.on('call_ended', (m) => {
  if (m.call_id === desk.dialingId && m.call_id !== desk.callId) {
    // The agent's own call was not answered.
    desk.dialingId = null;
    $('dial-status').textContent = `Not connected (${m.by}).`;
    render();
    return;
  }
  if (m.call_id !== desk.callId) return;
  desk.ended = true;
  $('call-status').textContent = `ended by ${m.by} · ${clock(m.talk_s * 1000)}`;
  if (m.handed_over) {
    // Another agent has the customer now and dispositions the call.
    desk.saved = true;
    $('dispo-done').textContent = 'Transferred: the next agent dispositions it.';
    setTimeout(() => desk.callId === m.call_id && clearCall(), 1500);
  }
  render();
});

cti.on('disposition_saved', (m) => {
  if (m.call_id !== desk.callId) return;
  desk.saved = true;
  $('dispo-done').textContent = `Saved${m.next ? ` (lead: ${m.next.replace(/_/g, ' ')})` : ''}.`;
  loadStats();
  if (desk.ended) setTimeout(() => desk.callId === m.call_id && clearCall(), 1500);
  render();
});

$('hangup').addEventListener('click', () => cti.send({ type: 'hangup' }));
$('hold').addEventListener('click', () => {
  desk.held = !desk.held;
  cti.send({ type: desk.held ? 'hold' : 'unhold' });
  render();
});
$('mute').addEventListener('click', () => {
  desk.muted = !desk.muted;
  cti.send({ type: 'mute', on: desk.muted });
  render();
});

for (const d of ['1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '0', '#']) {
  $('pad').append(el('button', { type: 'button', 'data-digit': d, onclick: () => cti.send({ type: 'dtmf', digits: d }) }, d));
}

// ---- disposition ----
$('dispo-code').addEventListener('change', () => {
  const opt = $('dispo-code').selectedOptions[0];
  if (opt?.dataset.callback) {
    $('cb-on').checked = true;
    $('cb-box').classList.remove('hidden');
    suggestCallback();
  }
  render();
});
$('cb-on').addEventListener('change', () => {
  $('cb-box').classList.toggle('hidden', !$('cb-on').checked);
  suggestCallback();
});

// A callback starts out tomorrow at this hour; the agent changes it as agreed.
function suggestCallback() {
  if (!$('cb-on').checked || $('cb-at').value) return;
  const t = new Date(Date.now() + 86400000);
  t.setMinutes(0, 0, 0);
  const pad = (n) => String(n).padStart(2, '0');
  $('cb-at').value = `${t.getFullYear()}-${pad(t.getMonth() + 1)}-${pad(t.getDate())}T${pad(t.getHours())}:00`;
}

$('dispo-form').addEventListener('submit', (e) => {
  e.preventDefault();
  if (!desk.callId) return;
  const code = $('dispo-code').value;
  if (!code) return say('Choose a result first.');
  const msg = { type: 'disposition', call_id: desk.callId, code };
  const notes = $('dispo-notes').value.trim();
  if (notes) msg.notes = notes;
  if ($('cb-on').checked) {
    if (!$('cb-at').value) return say('Give the callback time, or untick the callback.');
    msg.callback_at = $('cb-at').value.slice(0, 16);
    msg.callback_mine = $('cb-mine').checked;
  }
  const edited = {};
  for (const input of $('fields').querySelectorAll('input[data-field]')) {
    const k = input.dataset.field;
    const orig = k === 'name' ? desk.pop?.lead?.name || '' : input.dataset.orig;
    if (input.value !== orig) edited[k] = input.value;
  }
  if (Object.keys(edited).length) msg.fields = edited;
  say('');
  cti.send(msg);
  $('dispo-done').textContent = desk.ended ? 'Saving…' : 'Saved; it is applied when the call ends.';
  $('dispo-save').disabled = true;
});

$('wrap-more').addEventListener('click', () => cti.send({ type: 'extend_wrap', seconds: 30 }));

// ---- today's figures ----
function loadStats() {
  if (!desk.me) return;
  const midnight = new Date();
  midnight.setHours(0, 0, 0, 0);
  cti.send({ type: 'time_report', from: midnight.getTime() });
}
cti.on('time_report', (t) => {
  try {
    const s = t.seconds || {};
    const talk = (s.on_call || 0) + (s.reserved || 0);
    const figures = [
      ['Calls', t.calls],
      ['Talk', clock(talk * 1000)],
      ['Avg talk', t.calls ? clock((talk / t.calls) * 1000) : '–'],
      ['Wrap-up', clock((s.wrap_up || 0) * 1000)],
      ['Waiting', clock((s.ready || 0) * 1000)],
      ['Not ready', clock((s.not_ready || 0) * 1000)],
      ['Occupancy', `${Math.round((t.occupancy || 0) * 100)}%`],
      ['Logged in', clock((t.logged_in_s || 0) * 1000)],
    ];
    $('stats').replaceChildren(...figures.map(([k, v]) => el('div', { class: 'stat' }, el('b', {}, v), el('span', {}, k))));
  } catch {
    $('stats').replaceChildren(el('span', { class: 'muted' }, 'figures unavailable'));
  }
});
setInterval(loadStats, 30000);

// ---- rendering ----
function render() {
  const st = desk.state?.state;
  const online = !!cti.ws;
  const phoneUp = phone.state === 'connected';
  $('state').textContent = st ? STATE_LABELS[st] || st : '…';
  $('state').className = `badge ${online ? st || '' : 'offline'}`;
  $('state-reason').textContent = st === 'not_ready' && desk.state.reason ? desk.state.reason.replace(/_/g, ' ') : '';
  $('phone').textContent = phoneUp ? 'Disconnect softphone' : phone.state === 'connecting' ? 'Connecting…' : 'Connect softphone';
  $('phone').disabled = phone.state === 'connecting' || !online;
  $('phone').className = phoneUp ? '' : 'primary';
  // From wrap-up, ready ends it early: once the call is dispositioned, not before.
  const canReady = st === 'not_ready' || st === 'logged_out' || (st === 'wrap_up' && (desk.saved || !desk.callId));
  $('ready').disabled = !online || !phoneUp || !canReady;
  $('not-ready').disabled = !online || !st || st === 'logged_out';
  $('logout').disabled = !online || st === 'reserved' || st === 'on_call';
  const inCall = !!desk.callId;
  $('call-idle').classList.toggle('hidden', inCall);
  $('call-body').classList.toggle('hidden', !inCall);
  const live = inCall && !desk.ended;
  if (live) $('call-status').textContent = desk.held ? 'on hold' : desk.muted ? 'muted' : 'connected';
  $('call-status').className = `badge ${live ? 'on_call' : 'wrap_up'}`;
  for (const id of ['hangup', 'hold', 'mute', 'xfer']) $(id).disabled = !live || !online;
  // Placing a call needs the softphone and no call in hand (the server checks too).
  const canDial = online && phoneUp && !inCall && !desk.dialingId && st !== 'reserved' && st !== 'on_call' && st !== 'wrap_up';
  for (const id of ['preview-next', 'manual-go', 'pv-dial', 'pv-skip']) $(id).disabled = !canDial;
  $('preview').classList.toggle('hidden', !desk.preview);
  // While the agent's own call rings, Cancel hangs it up.
  $('dial-cancel').classList.toggle('hidden', !desk.dialingId || inCall);
  $('hold').textContent = desk.held ? 'Resume' : 'Hold';
  $('hold').classList.toggle('on', desk.held);
  $('mute').textContent = desk.muted ? 'Unmute' : 'Mute';
  $('mute').classList.toggle('on', desk.muted);
  for (const b of $('pad').querySelectorAll('button')) b.disabled = !live || !online;
  $('dispo').setAttribute('aria-disabled', String(!inCall));
  $('dispo-save').disabled = !inCall || desk.saved || !online || !$('dispo-code').value;
  for (const i of $('fields').querySelectorAll('input')) i.disabled = desk.saved;
  tick();
}

function tick() {
  const now = Date.now();
  const st = desk.state;
  $('state-clock').textContent = st ? clock(now - st.since) : '';
  if (desk.callId && !desk.ended && desk.pop) $('call-clock').textContent = clock(now - desk.pop.connected_at);
  const wrapping = st?.state === 'wrap_up' && st.wrap_until;
  $('wrap').textContent = wrapping ? `wrap-up ends in ${clock(st.wrap_until - now)}` : '';
  $('wrap-more').classList.toggle('hidden', !wrapping);
}
setInterval(tick, 500);
