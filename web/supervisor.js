// The supervisor's floor: every agent's state live, each running campaign's figures, and
// listen / whisper / barge on an agent's call over the supervisor's own media leg.
import { CtiSocket, Softphone, clock, el, loginForm, meterWidth, STATE_LABELS } from './cti.js';

const $ = (id) => document.getElementById(id);
const cti = new CtiSocket('/cti/supervisor', { login: '/login', check: '/api/v1/me', logout: '/logout' });
const phone = new Softphone(cti, $('remote-audio'));

const floor = { agents: new Map(), campaigns: [], listening: null, mode: null };
window.pacerFloor = { floor, phone, cti };

function say(text) {
  $('floor-error').textContent = text || '';
}

loginForm(cti, (hello) => {
  $('floor').classList.remove('hidden');
  $('who').textContent = `${hello.username} (${hello.role})`;
  render();
});

$('logout').addEventListener('click', async () => {
  cti.close();
  phone.wanted = false;
  phone.hangup();
  await cti.endSession();
  location.reload();
});

cti.on('closed', () => {
  if (cti.wanted) $('link').textContent = 'connection lost, reconnecting…';
  floor.listening = null;
  render();
});
cti.on('reconnected', () => {
  if (phone.wanted && phone.state !== 'connected') connectPhone();
});
cti.on('*', () => ($('link').textContent = ''));
cti.on('error', (m) => say(m.message));

cti.on('snapshot', (m) => {
  const seen = new Set();
  for (const a of m.agents) {
    seen.add(a.agent_id);
    floor.agents.set(a.agent_id, a);
  }
  for (const id of [...floor.agents.keys()]) if (!seen.has(id)) floor.agents.delete(id);
  floor.campaigns = m.campaigns;
  render();
});

cti.on('agent_state', (m) => {
  const a = floor.agents.get(m.agent_id);
  if (!a) return;
  // The next snapshot brings the call's details; the state itself is shown at once.
  a.state = m.state;
  a.since = m.since;
  if (m.state !== 'on_call' && m.state !== 'reserved') {
    a.call_id = a.phone = a.campaign = a.connected_at = null;
  }
  if (m.state !== 'not_ready') a.reason = null;
  render();
});

cti.on('listening', (m) => {
  floor.listening = m.agent_id;
  floor.mode = m.mode;
  say('');
  render();
});

async function connectPhone() {
  say('');
  try {
    await phone.connect();
  } catch (err) {
    say(`Audio: ${err.message}`);
    throw err;
  }
}
$('phone').addEventListener('click', () => (phone.state === 'connected' ? phone.hangup() : connectPhone().catch(() => {})));
phone.addEventListener('state', (e) => {
  const { state, why } = e.detail;
  $('phone-state').textContent = { off: 'audio off', connecting: 'connecting…', connected: 'audio connected', failed: `audio failed${why ? ': ' + why : ''}` }[state];
  $('phone-state').className = state === 'connected' ? 'notice' : state === 'failed' ? 'error' : 'muted';
  if (state !== 'connected') $('spk-level').style.width = '0';
  render();
});
phone.addEventListener('levels', (e) => {
  $('spk-level').style.width = meterWidth(e.detail.speaker);
});

async function listen(agentId, mode) {
  try {
    if (phone.state !== 'connected') await connectPhone();
  } catch {
    return;
  }
  cti.send({ type: 'listen', agent_id: agentId, mode });
}
$('stop').addEventListener('click', () => cti.send({ type: 'stop_listen' }));

function force(agentId, state) {
  cti.send({ type: 'force', agent_id: agentId, state });
}

function render() {
  const now = Date.now();
  const online = !!cti.ws;
  $('phone').textContent = phone.state === 'connected' ? 'Disconnect audio' : phone.state === 'connecting' ? 'Connecting…' : 'Connect audio';
  $('phone').disabled = !online || phone.state === 'connecting';
  $('phone').className = phone.state === 'connected' ? '' : 'primary';
  const who = floor.listening != null ? floor.agents.get(floor.listening) : null;
  $('listening').textContent = floor.listening != null ? `${floor.mode} · ${who ? who.username : 'agent ' + floor.listening}` : 'not listening';
  $('listening').className = floor.listening != null ? 'notice' : 'muted';
  $('stop').disabled = floor.listening == null || !online;

  $('campaigns').replaceChildren(
    ...(floor.campaigns.length ? floor.campaigns : []).map((c) => {
      const pct = (x) => `${(x * 100).toFixed(1)}%`;
      return el(
        'div',
        { class: 'panel tile', 'data-campaign': c.id },
        el('h3', {}, c.name, ' ', el('span', { class: 'muted' }, c.dial_mode)),
        el(
          'dl',
          {},
          el('dt', {}, 'Dial level'), el('dd', {}, c.dial_level.toFixed(2)),
          el('dt', {}, 'Calls in flight'), el('dd', {}, c.calls_in_flight),
          el('dt', {}, 'Answer rate'), el('dd', {}, pct(c.answer_rate)),
          el('dt', {}, 'Abandon today'), el('dd', { class: c.abandon_rate_today > 0.03 ? 'warn' : '' }, pct(c.abandon_rate_today)),
          el('dt', {}, 'Abandon 30 days'), el('dd', { class: c.abandon_rate_30d > 0.03 ? 'warn' : '' }, pct(c.abandon_rate_30d)),
          el('dt', {}, 'Occupancy today'), el('dd', {}, pct(c.occupancy_today)),
        ),
        c.reason ? el('div', { class: 'muted', style: 'margin-top:6px' }, `pacing: ${c.reason.replace(/_/g, ' ')}`) : null,
      );
    }),
  );
  if (!floor.campaigns.length) $('campaigns').append(el('div', { class: 'panel muted' }, 'No campaign is running.'));

  const agents = [...floor.agents.values()].sort((a, b) => a.username.localeCompare(b.username));
  const counts = {};
  for (const a of agents) counts[a.state] = (counts[a.state] || 0) + 1;
  $('counts').textContent = agents.length ? Object.entries(counts).map(([k, v]) => `${v} ${(STATE_LABELS[k] || k).toLowerCase()}`).join(' · ') : '';
  const body = $('agents').tBodies[0];
  // Rows are kept and updated in place, so a button under the pointer stays the same
  // element while the floor changes around it.
  const keep = new Set();
  for (const a of agents) {
    keep.add(a.agent_id);
    let r = rows.get(a.agent_id);
    if (!r) {
      r = agentRow(a.agent_id);
      rows.set(a.agent_id, r);
    }
    const onCall = a.state === 'on_call' && !!a.call_id;
    const here = floor.listening === a.agent_id;
    r.name.replaceChildren(a.username, a.online ? '' : el('span', { class: 'badge offline', style: 'margin-left:6px' }, 'offline'));
    r.state.replaceChildren(el('span', { class: `badge ${a.state}` }, STATE_LABELS[a.state] || a.state), a.reason ? el('span', { class: 'muted' }, ' ', a.reason.replace(/_/g, ' ')) : '');
    r.since.dataset.since = a.since;
    r.campaign.textContent = a.campaign || '';
    r.call.textContent = a.phone || (a.call_id ? `call ${a.call_id}` : '');
    r.talk.dataset.since = onCall && a.connected_at ? a.connected_at : '';
    for (const [mode, b] of Object.entries(r.modes)) {
      b.disabled = !onCall || !online;
      b.classList.toggle('on', here && floor.mode === mode);
    }
    r.notReady.disabled = !online || a.state === 'not_ready' || a.state === 'logged_out';
    r.logout.disabled = !online || a.state === 'logged_out';
    body.append(r.tr);
  }
  for (const [id, r] of rows) {
    if (!keep.has(id)) {
      r.tr.remove();
      rows.delete(id);
    }
  }
  $('no-agents').classList.toggle('hidden', agents.length > 0);
  tick();
}

const rows = new Map();

function agentRow(id) {
  const td = (cls) => el('td', cls ? { class: cls } : {});
  const r = { name: td(), state: td(), since: td('num clock'), campaign: td(), call: td(), talk: td('num clock') };
  r.modes = {};
  for (const [mode, label] of [['listen', 'Listen'], ['whisper', 'Whisper'], ['barge', 'Barge']]) {
    r.modes[mode] = el('button', { type: 'button', 'data-mode': mode, onclick: () => listen(id, mode) }, label);
  }
  r.notReady = el('button', { type: 'button', 'data-force': 'not_ready', onclick: () => force(id, 'not_ready') }, 'Not ready');
  r.logout = el('button', { type: 'button', 'data-force': 'logged_out', onclick: () => force(id, 'logged_out') }, 'Log out');
  r.tr = el(
    'tr',
    { 'data-agent': id },
    r.name, r.state, r.since, r.campaign, r.call, r.talk,
    el('td', {}, el('div', { class: 'row' }, ...Object.values(r.modes))),
    el('td', {}, el('div', { class: 'row' }, r.notReady, r.logout)),
  );
  return r;
}

function tick() {
  const now = Date.now();
  for (const c of $('agents').querySelectorAll('td.clock')) {
    c.textContent = c.dataset.since ? clock(now - Number(c.dataset.since)) : '';
  }
}

// Time in state and talk time tick between the server's updates.
setInterval(tick, 1000);
