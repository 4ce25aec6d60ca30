// The CTI socket and the browser softphone, shared by the agent desktop and the supervisor
// page. Every message is one JSON object with a `type`; docs/cti.md lists them all.

/** A CTI WebSocket on a web session: `login` opens the session over HTTPS (the server
 * sets an HttpOnly cookie; the page keeps no password), then the socket, which the cookie
 * logs in. Once logged in it comes back by itself after a network blip (the server keeps
 * the agent's call and leg). `session` names the session's URLs: `login` (POST),
 * `check` (GET: 200 while the session holds) and `logout` (POST). */
export class CtiSocket extends EventTarget {
  constructor(path, session) {
    super();
    this.path = path;
    this.session = session;
    this.ws = null;
    this.wanted = false;
    this.retries = 0;
  }

  /** Opens a session with these credentials, then the socket; resolves with the
   * server's first reply (`logged_in` or `supervisor_ready`), rejects with its reason. */
  async login(username, password) {
    const r = await fetch(this.session.login, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ username, password }),
      credentials: 'same-origin',
    });
    if (!r.ok) {
      let why = `cannot log in (${r.status})`;
      try {
        why = (await r.json()).message || why;
      } catch {
        // Not JSON: the status says enough.
      }
      throw new Error(why);
    }
    // A Secure cookie over plain HTTP (other than localhost) is dropped by the browser.
    const kept = await fetch(this.session.check, { credentials: 'same-origin' }).catch(() => null);
    if (!kept || !kept.ok) {
      throw new Error('the browser did not keep the session cookie: serve Pacer over HTTPS (http.tls_cert), or set auth.secure_cookies = false on a trusted network');
    }
    this.wanted = true;
    return this.#open(false);
  }

  /** The session of an earlier visit (a reloaded page): resolves with the server's first
   * reply, or null when there is no session. */
  async resume() {
    const r = await fetch(this.session.check, { credentials: 'same-origin' }).catch(() => null);
    if (!r || !r.ok) return null;
    this.wanted = true;
    return this.#open(false);
  }

  /** Ends the web session (logging out). */
  async endSession() {
    await fetch(this.session.logout, { method: 'POST', credentials: 'same-origin' }).catch(() => {});
  }

  /** Calls `fn(msg)` for every message of `type` ('*' for all, 'closed' and
   * 'reconnected' for the socket's own events). */
  on(type, fn) {
    this.addEventListener(type, (e) => fn(e.detail));
  }

  /** Sends a message; false when the socket is not open (the caller says so). */
  send(msg) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(msg));
    return true;
  }

  /** The next message of one of `types`, or of an `error` whose code is in `errors`. */
  expect(types, errors = [], ms = 15000) {
    return new Promise((resolve, reject) => {
      const done = (fn, v) => {
        clearTimeout(timer);
        this.removeEventListener('*', listener);
        fn(v);
      };
      const listener = (e) => {
        const m = e.detail;
        if (types.includes(m.type)) done(resolve, m);
        else if (m.type === 'error' && errors.includes(m.code)) done(reject, new Error(m.message));
      };
      const timer = setTimeout(() => done(reject, new Error(`no ${types.join(' or ')} from the server in time`)), ms);
      this.addEventListener('*', listener);
    });
  }

  /** Leaves for good (no reconnection). */
  close() {
    this.wanted = false;
    if (this.ws) this.ws.close();
  }

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  #open(again) {
    return new Promise((resolve, reject) => {
      const scheme = location.protocol === 'https:' ? 'wss://' : 'ws://';
      const ws = new WebSocket(scheme + location.host + this.path);
      this.ws = ws;
      let settled = false;
      // The session cookie logs the socket in: nothing to send first.
      ws.onmessage = (ev) => {
        let msg;
        try {
          msg = JSON.parse(ev.data);
        } catch {
          return;
        }
        if (!settled) {
          settled = true;
          if (msg.type === 'error') {
            this.wanted = false;
            reject(new Error(msg.message));
            // Coming back after the session ended (expired, or logged out elsewhere).
            if (again) this.#emit('session_lost', msg);
            return;
          }
          this.retries = 0;
          resolve(msg);
          if (again) this.#emit('reconnected', msg);
        }
        this.#emit(msg.type, msg);
        this.#emit('*', msg);
      };
      ws.onclose = () => {
        if (this.ws !== ws) return;
        this.ws = null;
        if (!settled) {
          settled = true;
          reject(new Error('cannot reach the server'));
        }
        this.#emit('closed', {});
        if (this.wanted) this.#reconnect();
      };
    });
  }

  #reconnect() {
    const wait = Math.min(10000, 500 * 2 ** this.retries++);
    setTimeout(() => {
      if (!this.wanted) return;
      this.#open(true).catch(() => {
        // #open's close handler schedules the next try while `wanted` holds.
      });
    }, wait);
  }
}

/** Keeps only PCMU and telephone-event/8000 in the offer: the trunk side is G.711, so no
 * transcoding, and the server's answer then carries one clean DTMF format. */
function preferG711(transceiver) {
  if (!transceiver.setCodecPreferences || !window.RTCRtpReceiver?.getCapabilities) return;
  const caps = RTCRtpReceiver.getCapabilities('audio');
  if (!caps) return;
  const mime = (c) => c.mimeType.toLowerCase();
  const pcmu = caps.codecs.filter((c) => mime(c) === 'audio/pcmu');
  const events = caps.codecs.filter((c) => mime(c) === 'audio/telephone-event' && c.clockRate === 8000);
  if (!pcmu.length) return;
  try {
    transceiver.setCodecPreferences([...pcmu, ...events]);
  } catch {
    // The browser refused the list: its default offer goes, and the server trims it.
  }
}

function until(cond, ms, what) {
  return new Promise((resolve, reject) => {
    const end = Date.now() + ms;
    const check = () => {
      if (cond()) return resolve();
      if (Date.now() > end) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(check, 25);
    };
    check();
  });
}

/** The browser's side of the persistent media leg: the microphone goes to the server,
 * the server's audio plays in `audioEl`, and two analysers measure both for the level
 * meters and for audio checks. Signalling is `media_offer` / `media_answer` on the CTI
 * socket (non-trickle: the offer waits for every local candidate). */
export class Softphone extends EventTarget {
  constructor(cti, audioEl) {
    super();
    this.cti = cti;
    this.audioEl = audioEl;
    this.pc = null;
    this.mic = null;
    this.ctx = null;
    this.remote = null;
    this.local = null;
    this.state = 'off';
    this.wanted = false;
    this.meterTimer = null;
  }

  #setState(s, why) {
    this.state = s;
    this.dispatchEvent(new CustomEvent('state', { detail: { state: s, why } }));
  }

  /** Asks for the microphone, offers, and resolves once media flows (ICE and DTLS done). */
  async connect() {
    this.wanted = true;
    this.hangup();
    this.#setState('connecting');
    try {
      if (!navigator.mediaDevices?.getUserMedia) throw new Error('this page needs a secure context (https or localhost) for the microphone');
      this.mic = await navigator.mediaDevices.getUserMedia({ audio: true });
      const pc = new RTCPeerConnection({ iceServers: [] });
      this.pc = pc;
      const tr = pc.addTransceiver(this.mic.getAudioTracks()[0], { direction: 'sendrecv', streams: [this.mic] });
      preferG711(tr);
      const track = new Promise((res) => (pc.ontrack = (e) => res(e.streams[0] || new MediaStream([e.track]))));
      pc.onconnectionstatechange = () => {
        if (this.pc !== pc) return;
        const s = pc.connectionState;
        if (s === 'connected') this.#setState('connected');
        else if (s === 'failed' || s === 'closed') this.#setState('failed', `connection ${s}`);
        else if (s === 'disconnected') this.#setState('connecting', 'connection interrupted');
      };
      await pc.setLocalDescription(await pc.createOffer());
      await until(() => pc.iceGatheringState === 'complete', 5000, 'local candidates').catch(() => {
        // Candidates gathered so far are in the description: try with them.
      });
      const answered = this.cti.expect(['media_answer'], ['media', 'unavailable']);
      if (!this.cti.send({ type: 'media_offer', sdp: pc.localDescription.sdp })) throw new Error('the CTI socket is closed');
      const answer = await answered;
      await pc.setRemoteDescription({ type: 'answer', sdp: answer.sdp });
      this.#listen(await track);
      await until(() => pc.connectionState === 'connected', 15000, 'the media connection');
      this.#setState('connected');
    } catch (e) {
      this.hangup();
      this.#setState('failed', e.message);
      throw e;
    }
  }

  /** Closes the leg (the server closes its side when the socket goes or a new offer comes). */
  hangup() {
    if (this.pc) this.pc.close();
    this.pc = null;
    if (this.mic) this.mic.getTracks().forEach((t) => t.stop());
    this.mic = null;
    clearInterval(this.meterTimer);
    if (this.ctx) this.ctx.close().catch(() => {});
    this.ctx = null;
    this.remote = this.local = null;
    if (this.state !== 'off') this.#setState('off');
  }

  #listen(stream) {
    // Remote audio reaches an analyser only while a media element plays the stream.
    this.audioEl.srcObject = stream;
    this.audioEl.play().catch(() => {});
    this.ctx = new AudioContext();
    this.ctx.resume().catch(() => {});
    const analyser = (s) => {
      const an = this.ctx.createAnalyser();
      an.fftSize = 8192;
      an.smoothingTimeConstant = 0.2;
      this.ctx.createMediaStreamSource(s).connect(an);
      return an;
    };
    this.remote = analyser(stream);
    this.local = analyser(this.mic);
    const buf = new Float32Array(2048);
    const rms = (an) => {
      an.getFloatTimeDomainData(buf);
      let s = 0;
      for (const v of buf) s += v * v;
      return Math.sqrt(s / buf.length);
    };
    this.meterTimer = setInterval(() => {
      if (!this.remote) return;
      this.dispatchEvent(new CustomEvent('levels', { detail: { mic: rms(this.local), speaker: rms(this.remote) } }));
    }, 150);
  }

  /** The average spectrum over `ms` of what the softphone hears (`remote`) or sends
   * (`mic`): the level in dB at each of `freqs` (the strongest bin within 2 % of it) and
   * the median level of all bins up to 4 kHz (the noise floor). */
  async measure(ms, freqs, which = 'remote') {
    const an = which === 'mic' ? this.local : this.remote;
    if (!an) throw new Error('the softphone is not connected');
    const bins = an.frequencyBinCount;
    const sum = new Float64Array(bins);
    const s = new Float32Array(bins);
    let n = 0;
    const end = Date.now() + ms;
    while (Date.now() < end) {
      an.getFloatFrequencyData(s);
      for (let i = 0; i < bins; i++) sum[i] += 10 ** (Math.max(s[i], -200) / 10);
      n++;
      await new Promise((r) => setTimeout(r, 100));
    }
    const hzPerBin = this.ctx.sampleRate / an.fftSize;
    const db = (i) => 10 * Math.log10(sum[i] / n + 1e-30);
    const at = {};
    for (const f of freqs) {
      const lo = Math.floor((f * 0.98) / hzPerBin);
      const hi = Math.ceil((f * 1.02) / hzPerBin);
      let best = -Infinity;
      for (let i = lo; i <= hi && i < bins; i++) best = Math.max(best, db(i));
      at[f] = best;
    }
    const upTo = Math.min(bins, Math.floor(4000 / hzPerBin));
    const all = [];
    for (let i = 1; i < upTo; i++) all.push(db(i));
    all.sort((a, b) => a - b);
    return { at, floor: all[Math.floor(all.length / 2)], frames: n };
  }
}

/** Wires the page's login form (#login, #login-user, #login-pass, #login-go,
 * #login-error) to `cti.login`; `onLoggedIn(reply)` runs once the server accepts. */
export function loginForm(cti, onLoggedIn) {
  const $ = (id) => document.getElementById(id);
  const enter = (hello) => {
    $('login').classList.add('hidden');
    onLoggedIn(hello);
  };
  $('login').addEventListener('submit', async (e) => {
    e.preventDefault();
    $('login-error').textContent = '';
    $('login-go').disabled = true;
    try {
      enter(await cti.login($('login-user').value.trim(), $('login-pass').value));
      $('login-pass').value = '';
    } catch (err) {
      $('login-error').textContent = err.message;
    } finally {
      $('login-go').disabled = false;
    }
  });
  // A reloaded page comes back on its session, without the password.
  cti.resume().then((hello) => hello && enter(hello)).catch(() => {});
  // The session ended while the page was open: back to the form.
  cti.on('session_lost', () => location.reload());
}

/** A level meter's width for an RMS level (0..1), on a rough loudness scale. */
export function meterWidth(rms) {
  return `${Math.min(100, Math.round(Math.sqrt(rms) * 180))}%`;
}

/** "m:ss" (or "h:mm:ss") from milliseconds. */
export function clock(ms) {
  const t = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(t / 3600);
  const m = Math.floor((t % 3600) / 60);
  const s = String(t % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${s}` : `${m}:${s}`;
}

/** The server's state names as people say them. */
export const STATE_LABELS = {
  logged_out: 'Logged out',
  ready: 'Ready',
  not_ready: 'Not ready',
  reserved: 'Connecting',
  on_call: 'On call',
  wrap_up: 'Wrap-up',
};

/** Builds an element: el('td', {class: 'num'}, 'text', child...). */
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k in e && typeof v !== 'string') e[k] = v;
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
  return e;
}
