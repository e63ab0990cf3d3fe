// dashcam phone page: live view, status, lock, record on/off, footage, clips. No framework.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  csrf: null,
  status: null,
  view: "status",
  kind: "",
  segments: [],
  offsetMs: 0, // Pi clock minus phone clock
  lastOk: 0,
  failures: 0,
  listAt: 0,
  confirm: null,
  replay: null,
};

const ICON = {
  play: "M8 5v14l11-7z",
  down: "M11 4h2v9l3.5-3.5 1.4 1.4L12 16.8 6.1 10.9l1.4-1.4L11 13zM5 18h14v2H5z",
  lock: "M7 10V7a5 5 0 0 1 10 0v3h1a2 2 0 0 1 2 2v8a2 2 0 0 1-2 2H6a2 2 0 0 1-2-2v-8a2 2 0 0 1 2-2zm2 0h6V7a3 3 0 0 0-6 0z",
  unlock: "M7 10V7a5 5 0 0 1 9.6-2l-1.8.9A3 3 0 0 0 9 7v3h9a2 2 0 0 1 2 2v8a2 2 0 0 1-2 2H6a2 2 0 0 1-2-2v-8a2 2 0 0 1 2-2z",
  trash: "M9 3h6l1 2h4v2H4V5h4zm-3 6h12l-1 12H7z",
};

function svg(path) {
  const s = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  s.setAttribute("viewBox", "0 0 24 24");
  s.setAttribute("aria-hidden", "true");
  const p = document.createElementNS("http://www.w3.org/2000/svg", "path");
  p.setAttribute("d", path);
  s.appendChild(p);
  return s;
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

// --- talking to the dashcam -------------------------------------------------------------

class ApiError extends Error {
  constructor(status, word, message) {
    super(message);
    this.status = status;
    this.word = word;
  }
}

async function api(method, path, body) {
  const opts = { method, headers: {}, credentials: "same-origin", cache: "no-store" };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  if (state.csrf && method !== "GET") opts.headers["X-CSRF-Token"] = state.csrf;
  let r;
  try {
    r = await fetch(path, opts);
  } catch (e) {
    throw new ApiError(0, "offline", "The dashcam does not answer (out of Wi-Fi range?)");
  }
  let data = null;
  try {
    data = await r.json();
  } catch (e) {
    data = null;
  }
  if (!r.ok) {
    if (r.status === 401) showLogin();
    const msg = (data && data.message) || `HTTP ${r.status}`;
    throw new ApiError(r.status, data && data.error, msg);
  }
  return data;
}

let toastTimer = null;
function toast(text, bad) {
  const t = $("toast");
  t.textContent = text;
  t.classList.toggle("bad", !!bad);
  t.classList.remove("hidden");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => t.classList.add("hidden"), bad ? 6000 : 3500);
}

// --- formatting ------------------------------------------------------------------------

function bytes(n) {
  if (n === null || n === undefined) return "–";
  const u = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < u.length - 1) { n /= 1000; i++; }
  return (i === 0 ? n : n.toFixed(n < 10 ? 1 : 0)) + " " + u[i];
}

function duration(s) {
  if (s === null || s === undefined || !isFinite(s)) return "";
  s = Math.round(s);
  const m = Math.floor(s / 60);
  const h = Math.floor(m / 60);
  const ss = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m % 60).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

const DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

// The dashcam's local wall time of a file: from its name (that is how it was named), else
// from start_unix_ms in the phone's time zone.
function wallOf(seg) {
  const m = /(\d{4})(\d{2})(\d{2})-(\d{2})(\d{2})(\d{2})/.exec(seg.name);
  if (m) return { y: +m[1], mo: +m[2], d: +m[3], h: +m[4], mi: +m[5], s: +m[6] };
  const t = new Date(seg.start_unix_ms || 0);
  return { y: t.getFullYear(), mo: t.getMonth() + 1, d: t.getDate(), h: t.getHours(), mi: t.getMinutes(), s: t.getSeconds() };
}

const p2 = (n) => String(n).padStart(2, "0");
function dayLabel(w) {
  const dt = new Date(w.y, w.mo - 1, w.d);
  return `${DAYS[dt.getDay()]} ${w.d} ${MONTHS[w.mo - 1]} ${w.y}`;
}

// "YYYY-MM-DDTHH:MM:SS" in the dashcam's local time, `offsetS` seconds from its clock now.
function piLocal(offsetS) {
  const s = state.status;
  if (!s) return "";
  const base = Date.parse(s.clock_local + "Z") + (Date.now() - state.statusAt) + offsetS * 1000;
  return new Date(base).toISOString().slice(0, 19);
}

// --- status ------------------------------------------------------------------------------

function renderStatus(s) {
  const box = $("state");
  let cls = "state-stopped";
  let word = "Stopped";
  let reason = s.reason || "";
  let detail = "";
  if (s.state === "recording") { cls = "state-recording"; word = "Recording"; }
  if (s.state === "starting") { cls = "state-starting"; word = "Starting"; }
  if (s.state === "idle") { cls = "state-idle"; word = "Idle"; }
  if (s.state === "error" || (s.state === "recording" && s.reason)) {
    cls = "state-problem";
    word = s.state === "recording" ? "Recording — problem" : "Problem";
  }
  if (s.drive === "unavailable") {
    cls = "state-problem";
    word = "No drive";
    reason = "The footage drive is not there. Recording waits for it and keeps the newest seconds in memory.";
    detail = [s.reason, s.drive_message].filter(Boolean).join(" · ");
  } else if (s.drive === "full" && s.state === "error") {
    cls = "state-problem";
    word = "Drive full";
    reason = "Nothing more can be deleted to make room: unlock or delete footage.";
    detail = s.reason || "";
  } else if (s.state === "error") {
    reason = "Writing fails; retrying.";
    detail = s.reason || "";
  }
  if (s.state === "stopped" && !s.recording_wanted) { cls = "state-stopped"; word = "Recording is off"; reason = "Switched off from the phone. Nothing is recorded."; }
  if (!reason && s.state === "recording") reason = "Everything is being saved.";
  box.className = "state " + cls;
  $("state-word").textContent = word;
  $("state-word").classList.toggle("long", word.length > 11);
  $("state-reason").textContent = reason;
  $("state-detail").textContent = detail;

  $("st-frames").textContent = s.frames_on_disk.toLocaleString("en");
  $("st-dropped").textContent = s.frames_dropped.toLocaleString("en");
  $("st-sync").textContent = s.last_sync_age_s === null ? "–" : `${s.last_sync_age_s.toFixed(1)} s ago`;
  $("st-fps").textContent = s.fps ? `${s.fps.toFixed(1)} fps` : "–";
  $("st-segment").textContent = s.current_segment || "–";

  const bar = $("bar");
  const quota = s.quota_bytes || 0;
  const lockedW = quota ? Math.min(100, (100 * s.locked_bytes) / quota) : 0;
  const loopW = quota ? Math.min(100 - lockedW, (100 * (s.footage_bytes - s.locked_bytes)) / quota) : 0;
  $("bar-locked").style.width = lockedW + "%";
  $("bar-loop").style.width = loopW + "%";
  bar.classList.toggle("full", s.drive === "full");
  $("st-used").textContent = quota ? `${bytes(s.footage_bytes)} of ${bytes(quota)}` : bytes(s.footage_bytes);
  const parts = [];
  if (s.free_bytes !== null) parts.push(`${bytes(s.free_bytes)} free on the drive`);
  parts.push(`${s.segments} segment${s.segments === 1 ? "" : "s"}`);
  if (s.locked_segments || s.saved_clips) parts.push(`${s.locked_segments} locked, ${s.saved_clips} saved`);
  if (s.locked_share !== null) parts.push(`locked share ${Math.round(100 * s.locked_share)} %`);
  $("st-storage").textContent = parts.join(" · ");
  bar.setAttribute("aria-label", $("st-used").textContent);

  const rec = s.state !== "stopped" || s.recording_wanted;
  const toggle = $("record-toggle");
  toggle.textContent = rec ? "Stop recording" : "Start recording";
  toggle.className = "big " + (rec ? "secondary" : "primary");
  toggle.dataset.on = rec ? "1" : "0";
  $("lock-now").disabled = s.state === "stopped";

  const banner = $("banner");
  if (s.drive === "full" && s.state !== "error") {
    banner.className = "banner warn";
    banner.textContent = "The footage drive is full: the oldest loop footage is deleted as new footage comes; locked and saved clips are kept.";
  } else {
    banner.className = "banner hidden";
  }
  if (s.drive === "unavailable") {
    $("st-used").textContent = "–";
    $("st-storage").textContent = "The drive is not there.";
  }

  const phoneOff = Math.abs(s.clock_unix_ms - Date.now()) > 120000;
  const wrong = s.clock_suspect || (!s.clock_synchronised && phoneOff);
  $("clock-card").classList.toggle("hidden", !wrong);
  if (wrong) $("clock-detail").textContent = `It says ${s.clock_local.replace("T", " ")}; this phone says ${new Date().toLocaleString("en-GB")}.`;
  $("about").textContent = `dashcam ${s.version} · source ${s.source} · up ${duration(s.uptime_s)}`;
}

function tickClock() {
  if (!state.status) return;
  $("clock").textContent = piLocal(0).slice(11, 19);
}

// The status: fetched when an event says something changed (see "events" below), when
// the page comes back into view, and polled only while the event stream is not open.
async function refreshStatus(why) {
  try {
    const s = await api("GET", "/api/status");
    state.status = s;
    state.statusAt = Date.now();
    state.failures = 0;
    events.refreshes[why] = (events.refreshes[why] || 0) + 1;
    events.lastRefresh = why;
    $("conn").className = "conn ok";
    renderStatus(s);
    tickClock();
  } catch (e) {
    state.failures++;
    $("conn").className = "conn bad";
    if (e.status === 401) return;
    if (state.failures >= 2) {
      const b = $("banner");
      b.className = "banner";
      b.textContent = e.message;
    }
  }
}

// The fallback poll: only while the event stream is not open (not supported, refused, or
// down and reconnecting).
async function pollStatus() {
  if (!events.open) {
    await refreshStatus("poll");
    if (state.view === "footage" && Date.now() - state.listAt > 10000) loadSegments();
  }
  setTimeout(pollStatus, events.open || state.failures ? 8000 : 4000);
}

// --- events --------------------------------------------------------------------------------
// GET /api/events (Server-Sent Events): every event of the recorder. Each refreshes what it
// changes: the status card, and the footage list when it is shown. The browser's
// EventSource reconnects by itself after a network drop; a refused stream (401, 503 when
// too many pages follow) is opened again after a while, and meanwhile the status is
// polled. `window.dashcamEvents` says how the page learnt what it shows.

const FOOTAGE_EVENTS = new Set([
  "segment_closed", "locked", "unlocked", "deleted", "clip_saved", "quota_deleted",
  "recording_started", "recording_stopped", "drive_full", "drive_gone", "drive_back",
]);
const STATUS_EVENTS = new Set([...FOOTAGE_EVENTS, "camera_lost", "camera_back", "clock_set"]);
const events = {
  source: null,
  open: false,
  received: 0,
  last: null, // { kind, id } of the newest event
  refreshes: {}, // how the status came: fetched on "event", "poll", "open", "visible"; or pushed on the "stream"
  lastRefresh: null,
  listRefreshes: 0,
  timer: null,
  retry: null,
  wantStatus: false,
  wantList: false,
};
window.dashcamEvents = events;

function eventsConnect() {
  if (!window.EventSource || events.source) return;
  clearTimeout(events.retry);
  const src = new EventSource("/api/events");
  events.source = src;
  src.onopen = () => {
    events.open = true;
    // Whatever happened while the stream was down.
    refreshStatus("open");
    if (state.view === "footage") loadSegments();
  };
  src.onerror = () => {
    events.open = false;
    $("conn").className = "conn bad";
    if (src.readyState === EventSource.CLOSED) {
      // Refused (not logged in, too many pages): the browser gives up; try again later.
      events.source = null;
      events.retry = setTimeout(eventsConnect, 15000);
    }
  };
  for (const kind of [...STATUS_EVENTS, "still_saved"]) src.addEventListener(kind, onEvent);
  // Every 2 s the stream also carries the status itself (frames, last sync: what moves
  // between events), so the card stays live without a request.
  src.addEventListener("status", onStatus);
}

function onStatus(ev) {
  let s;
  try {
    s = JSON.parse(ev.data);
  } catch (e) {
    return;
  }
  state.status = s;
  state.statusAt = Date.now();
  state.failures = 0;
  events.refreshes.stream = (events.refreshes.stream || 0) + 1;
  $("conn").className = "conn ok";
  renderStatus(s);
  tickClock();
}

function onEvent(ev) {
  events.received++;
  events.last = { kind: ev.type, id: Number(ev.lastEventId) };
  if (STATUS_EVENTS.has(ev.type)) events.wantStatus = true;
  if (FOOTAGE_EVENTS.has(ev.type)) events.wantList = true;
  // A new still: the segment being recorded may have its thumbnail now.
  if (ev.type === "still_saved" && state.segments.some((s) => s.recording && !s.still)) events.wantList = true;
  // Several events come at once (an incident lock moves a few segments): one refresh.
  if (!events.timer) events.timer = setTimeout(eventsApply, 150);
}

function eventsApply() {
  events.timer = null;
  if (events.wantStatus) refreshStatus("event");
  if (events.wantList && state.view === "footage") {
    events.listRefreshes++;
    loadSegments();
  }
  events.wantStatus = false;
  events.wantList = false;
}

// --- live view -----------------------------------------------------------------------------
// H.264: fMP4 fragments over a WebSocket into Media Source Extensions (ManagedMediaSource on
// iPhones that have it, MediaSource elsewhere), else the HLS playlist (iPhones without MSE).
// MJPEG: the camera's JPEGs at the preview rate, read from a multipart stream. Each
// fragment starts with a prft box (the capture time on the Pi's clock): latency is the
// Pi's clock now (from the socket's clock messages) minus the capture time of the picture
// shown.

const LIVE_KEY = "dashcam.live";
const live = {
  on: localStorage.getItem(LIVE_KEY) !== "off",
  mode: null,
  ws: null,
  ms: null,
  sb: null,
  mime: null,
  queue: [],
  clock: [], // [media seconds, capture Unix ms] of recent fragments
  offsetMs: null, // Pi clock minus this phone's clock
  abort: null,
  timer: null,
  retry: null,
  transient: false,
  frames: 0, // pictures shown (MJPEG) or fragments appended (MSE)
  gotData: false,
  latency: null,
  message: null,
};

// A message over the picture; `transient` ones (connecting) go as soon as a picture shows.
function liveMsg(text, bad, transient) {
  const m = $("live-msg");
  live.message = text || null;
  live.transient = !!transient;
  $("live-full").classList.toggle("hidden", !!text && !transient);
  m.textContent = text || "";
  m.classList.toggle("hidden", !text);
  m.classList.toggle("bad", !!bad);
}

function liveLatency(seconds) {
  const l = $("live-latency");
  live.latency = seconds;
  if (seconds === null || !isFinite(seconds)) {
    l.classList.add("hidden");
    return;
  }
  l.classList.remove("hidden");
  l.textContent = `LIVE ${Math.max(0, seconds).toFixed(1)} s`;
  l.dataset.seconds = String(seconds);
}

function liveWanted() {
  return live.on && state.view === "status" && !document.hidden && $("player").classList.contains("hidden");
}

function liveStop() {
  clearTimeout(live.retry);
  clearInterval(live.timer);
  live.retry = null;
  live.timer = null;
  if (live.ws) { const ws = live.ws; live.ws = null; try { ws.close(); } catch (e) { /* closed */ } }
  if (live.abort) { live.abort.abort(); live.abort = null; }
  const v = $("live-video");
  if (live.mode === "mse" || live.mode === "hls") {
    v.pause();
    v.removeAttribute("src");
    v.load();
  }
  live.ms = null;
  live.sb = null;
  live.queue = [];
  live.clock = [];
  live.mode = null;
  live.gotData = false;
  liveLatency(null);
}

function liveRetry(ms) {
  clearTimeout(live.retry);
  live.retry = setTimeout(liveUpdate, ms);
}

// Start or stop the live view as the page's state says.
async function liveUpdate() {
  $("live-toggle").textContent = live.on ? "Live on" : "Live off";
  $("live-toggle").classList.toggle("on", live.on);
  $("live-toggle").setAttribute("aria-pressed", String(live.on));
  if (!liveWanted()) {
    liveStop();
    if (!live.on) {
      $("live-video").classList.add("hidden");
      $("live-img").classList.add("hidden");
      liveMsg("The live view is off. Tap “Live off” to turn it on.");
      $("live-state").textContent = "Live view off";
    }
    return;
  }
  if (live.mode) return;
  live.mode = "starting";
  liveMsg("Connecting to the camera…", false, true);
  let info;
  try {
    info = await api("GET", "/api/live");
  } catch (e) {
    live.mode = null;
    if (e.status !== 401) { liveMsg(e.message, true); liveRetry(4000); }
    return;
  }
  if (!liveWanted()) { live.mode = null; return liveUpdate(); }
  if (!info.enabled) {
    live.mode = null;
    liveMsg(info.message || "The live view is switched off on this dashcam.", true);
    $("live-state").textContent = "Live view unavailable";
    return;
  }
  if (info.viewers >= info.max_viewers) {
    live.mode = null;
    liveMsg(tooMany(info), true);
    liveRetry(5000);
    return;
  }
  const dims = info.width ? ` · ${info.width}×${info.height}` : "";
  if (info.codec === "mjpeg") {
    $("live-state").textContent = `Live · MJPEG preview ${info.preview_fps} fps${dims}`;
    liveMjpeg();
  } else {
    const MS = window.ManagedMediaSource || window.MediaSource;
    if (MS) {
      $("live-state").textContent = `Live · H.264${dims}${window.ManagedMediaSource ? " (managed)" : ""}`;
      liveMse(MS);
    } else if ($("live-video").canPlayType("application/vnd.apple.mpegurl")) {
      $("live-state").textContent = `Live · H.264 over HLS${dims}`;
      liveHls();
    } else {
      live.mode = null;
      liveMsg("This browser cannot play the live view (no Media Source Extensions, no HLS).", true);
      return;
    }
  }
  if (info.message) liveMsg(info.message, true);
}

function tooMany(info) {
  return `Too many viewers: ${info.viewers} watching already (at most ${info.max_viewers}). Trying again…`;
}

// A socket or stream ended: say why (ask the dashcam) and try again.
async function liveEnded() {
  const was = live.mode;
  liveStop();
  if (!liveWanted()) return;
  let text = was === "mjpeg" ? "The live stream ended." : "The live connection closed.";
  try {
    const info = await api("GET", "/api/live");
    if (!info.enabled) { liveMsg(info.message, true); return; }
    if (info.viewers >= info.max_viewers) text = tooMany(info);
    else if (info.message) text = info.message;
  } catch (e) {
    text = e.message;
  }
  liveMsg(text + " Reconnecting…", true, true);
  liveRetry(3000);
}

// The capture time (Pi ms) of media time `t` (seconds), from the fragments' prft boxes.
function captureAt(t) {
  let best = null;
  for (const c of live.clock) if (c[0] <= t + 0.001) best = c;
  return best ? best[1] + (t - best[0]) * 1000 : null;
}

const NTP_UNIX_S = 2208988800;

function onFragment(buf) {
  const d = new DataView(buf);
  if (buf.byteLength >= 32 && d.getUint32(4) === 0x70726674 /* prft */) {
    const secs = d.getUint32(16);
    const frac = d.getUint32(20);
    const media = Number(d.getBigUint64(24)) / 90000;
    const ms = (secs - NTP_UNIX_S) * 1000 + (frac / 4294967296) * 1000;
    live.clock.push([media, ms]);
    if (live.clock.length > 400) live.clock.splice(0, 100);
    buf = buf.slice(d.getUint32(0));
  }
  live.queue.push(buf);
  livePump();
}

function livePump() {
  const sb = live.sb;
  if (!sb || sb.updating || !live.queue.length) return;
  try {
    sb.appendBuffer(live.queue.shift());
    live.frames++;
  } catch (e) {
    if (e.name === "QuotaExceededError") {
      liveTrim(true);
    } else {
      liveMsg(`The live view failed: ${e.message}`, true);
      liveEnded();
    }
  }
}

// Keep a few seconds behind the playhead; drop the rest.
function liveTrim(force) {
  const v = $("live-video");
  const sb = live.sb;
  if (!sb || sb.updating || !v.buffered.length) return;
  const start = v.buffered.start(0);
  const keep = force ? 2 : 10;
  if (v.currentTime - start > keep + 5 || force) {
    try { sb.remove(start, Math.max(start + 0.1, v.currentTime - keep)); } catch (e) { /* busy */ }
  }
}

function newMediaSource(MS, mime) {
  const v = $("live-video");
  live.ms = new MS();
  live.sb = null;
  live.mime = mime;
  live.queue = [];
  live.clock = [];
  const ms = live.ms;
  ms.addEventListener("sourceopen", () => {
    if (live.ms !== ms) return;
    try {
      live.sb = ms.addSourceBuffer(mime);
    } catch (e) {
      liveMsg(`This browser cannot play ${mime}: ${e.message}`, true);
      return;
    }
    live.sb.mode = "segments";
    live.sb.addEventListener("updateend", livePump);
    livePump();
  }, { once: true });
  v.disableRemotePlayback = true;
  v.src = URL.createObjectURL(ms);
  v.play().catch(() => {});
}

function liveMse(MS) {
  live.mode = "mse";
  const v = $("live-video");
  $("live-img").classList.add("hidden");
  v.classList.remove("hidden");
  v.disableRemotePlayback = true;
  v.muted = true;
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/api/live.ws`);
  ws.binaryType = "arraybuffer";
  live.ws = ws;
  ws.onmessage = (ev) => {
    if (live.ws !== ws) return;
    if (typeof ev.data === "string") {
      let m;
      try { m = JSON.parse(ev.data); } catch (e) { return; }
      if (m.type === "init") {
        newMediaSource(MS, m.mime);
        $("live-state").textContent = `Live · H.264 · ${m.width}×${m.height}${window.ManagedMediaSource ? " (managed)" : ""}`;
      }
      if (m.type === "clock") {
        live.offsetMs = m.unix_ms - Date.now();
        if (m.message) liveMsg(m.message, true);
        else if (live.gotData) liveMsg(null);
      }
      return;
    }
    live.gotData = true;
    if (!live.ms) return;
    onFragment(ev.data);
  };
  ws.onclose = () => { if (live.ws === ws) liveEnded(); };
  live.timer = setInterval(liveChase, 250);
}

// Stay at the live edge: jump forward when more than a second behind, or past a gap.
function liveChase() {
  const v = $("live-video");
  const b = v.buffered;
  if (!b.length) return;
  const last = b.length - 1;
  const end = b.end(last);
  if (v.currentTime < b.start(last) || end - v.currentTime > 1.0) {
    v.currentTime = Math.max(b.start(last), end - 0.25);
  }
  if (v.paused) v.play().catch(() => {});
  if (v.readyState >= 2 && live.gotData && live.transient) liveMsg(null);
  const cap = captureAt(v.currentTime);
  if (cap !== null && live.offsetMs !== null) liveLatency((Date.now() + live.offsetMs - cap) / 1000);
  liveTrim(false);
}

function liveHls() {
  live.mode = "hls";
  const v = $("live-video");
  $("live-img").classList.add("hidden");
  v.classList.remove("hidden");
  v.disableRemotePlayback = true;
  v.src = "/api/live.m3u8";
  v.play().catch(() => {});
  v.onerror = () => { if (live.mode === "hls") liveEnded(); };
  live.timer = setInterval(() => {
    if (v.readyState >= 2 && live.transient) liveMsg(null);
    const start = v.getStartDate ? v.getStartDate().getTime() : NaN;
    if (isFinite(start) && state.status) {
      const offset = state.status.clock_unix_ms - state.statusAt;
      liveLatency((Date.now() + offset - (start + v.currentTime * 1000)) / 1000);
    }
  }, 500);
}

function indexOf(buf, pat, from) {
  outer: for (let i = from || 0; i + pat.length <= buf.length; i++) {
    for (let j = 0; j < pat.length; j++) if (buf[i + j] !== pat[j]) continue outer;
    return i;
  }
  return -1;
}

async function liveMjpeg() {
  live.mode = "mjpeg";
  const img = $("live-img");
  $("live-video").classList.add("hidden");
  img.classList.remove("hidden");
  const ctl = new AbortController();
  live.abort = ctl;
  let r;
  try {
    r = await fetch("/api/live.mjpeg", { signal: ctl.signal, cache: "no-store", credentials: "same-origin" });
  } catch (e) {
    if (live.abort === ctl) liveEnded();
    return;
  }
  if (!r.ok || !r.body) {
    if (live.abort === ctl) liveEnded();
    return;
  }
  const reader = r.body.getReader();
  const CRLF2 = [13, 10, 13, 10];
  let buf = new Uint8Array(0);
  for (;;) {
    let chunk;
    try {
      chunk = await reader.read();
    } catch (e) {
      break;
    }
    if (chunk.done || live.abort !== ctl) break;
    const joined = new Uint8Array(buf.length + chunk.value.length);
    joined.set(buf);
    joined.set(chunk.value, buf.length);
    buf = joined;
    for (;;) {
      const headEnd = indexOf(buf, CRLF2, 0);
      if (headEnd < 0) break;
      const head = new TextDecoder().decode(buf.subarray(0, headEnd));
      const len = /content-length:\s*(\d+)/i.exec(head);
      if (!len) { buf = buf.subarray(headEnd + 4); continue; }
      const start = headEnd + 4;
      const n = Number(len[1]);
      if (buf.length < start + n) break;
      const jpeg = buf.slice(start, start + n);
      const cap = /x-capture-ms:\s*(\d+)/i.exec(head);
      buf = buf.subarray(start + n);
      showJpeg(jpeg, cap ? Number(cap[1]) : null);
    }
  }
  if (live.abort === ctl) liveEnded();
}

function showJpeg(jpeg, captureMs) {
  const img = $("live-img");
  const url = URL.createObjectURL(new Blob([jpeg], { type: "image/jpeg" }));
  const old = img.dataset.url;
  img.onload = () => {
    if (old) URL.revokeObjectURL(old);
    live.frames++;
    img.dataset.frames = String(live.frames);
    if (live.message) liveMsg(null); // a picture came: whatever was said is over
    if (captureMs !== null && state.status) {
      const offset = state.status.clock_unix_ms - state.statusAt;
      liveLatency((Date.now() + offset - captureMs) / 1000);
    }
  };
  img.dataset.url = url;
  img.src = url;
}

function liveFullscreen() {
  const box = $("live-box");
  const v = $("live-video");
  if (document.fullscreenElement) {
    document.exitFullscreen().catch(() => {});
  } else if (box.requestFullscreen) {
    box.requestFullscreen().catch(() => { if (v.webkitEnterFullscreen) v.webkitEnterFullscreen(); });
  } else if (box.webkitRequestFullscreen) {
    box.webkitRequestFullscreen();
  } else if (v.webkitEnterFullscreen && !v.classList.contains("hidden")) {
    v.webkitEnterFullscreen(); // iPhone: only a video goes full screen
  }
}

// --- footage -------------------------------------------------------------------------------

async function loadSegments() {
  state.listAt = Date.now();
  const q = state.kind ? `?kind=${state.kind}` : "";
  try {
    const d = await api("GET", "/api/segments" + q);
    state.segments = d.segments;
    renderSegments();
  } catch (e) {
    if (e.status === 401) return;
    const list = $("footage-list");
    list.replaceChildren(el("p", "empty", e.status === 503 ? `Footage cannot be listed now: ${e.message}` : e.message));
  }
}

function actionButton(label, icon, cls, fn) {
  const b = el("button", "small " + (cls || ""));
  b.type = "button";
  b.appendChild(svg(icon));
  b.appendChild(document.createTextNode(label));
  b.addEventListener("click", fn);
  return b;
}

function renderSegments() {
  const list = $("footage-list");
  const segs = state.segments.slice().reverse(); // newest first
  if (!segs.length) {
    list.replaceChildren(el("p", "empty", state.kind ? `No ${state.kind} footage.` : "No footage yet."));
    return;
  }
  const frag = document.createDocumentFragment();
  let dayKey = null;
  let hourKey = null;
  let dayBox = null;
  let hourBox = null;
  for (const seg of segs) {
    const w = wallOf(seg);
    const dk = `${w.y}${p2(w.mo)}${p2(w.d)}`;
    if (dk !== dayKey) {
      dayKey = dk;
      hourKey = null;
      dayBox = el("div", "day");
      dayBox.appendChild(el("h2", "", dayLabel(w)));
      frag.appendChild(dayBox);
    }
    if (w.h !== hourKey) {
      hourKey = w.h;
      hourBox = el("div", "hour");
      hourBox.appendChild(el("h3", "", `${p2(w.h)}:00 – ${p2(w.h)}:59`));
      dayBox.appendChild(hourBox);
    }
    hourBox.appendChild(segmentRow(seg, w));
  }
  list.replaceChildren(frag);
}

function segmentRow(seg, w) {
  const row = el("div", "seg " + seg.kind + (seg.recording ? " recording" : ""));
  row.dataset.name = seg.name;
  const top = el("div", "seg-top");
  if (seg.still) {
    // The still nearest its start (stills on): loaded when it scrolls near.
    const img = el("img", "seg-thumb");
    img.loading = "lazy";
    img.decoding = "async";
    img.alt = "";
    img.src = seg.still;
    img.addEventListener("click", () => play(seg));
    top.appendChild(img);
  }
  const main = el("div", "seg-main");
  main.appendChild(el("span", "seg-time", `${p2(w.h)}:${p2(w.mi)}:${p2(w.s)}`));
  const info = [];
  if (seg.duration_s !== undefined) info.push(duration(seg.duration_s));
  info.push(bytes(seg.file_bytes));
  if (seg.codec) info.push(seg.codec === "h264" ? "H.264" : "MJPEG");
  main.appendChild(el("span", "seg-info", info.join(" · ")));
  if (seg.recording) main.appendChild(el("span", "badge rec", "Recording"));
  if (seg.kind === "locked") main.appendChild(el("span", "badge locked", "Locked"));
  if (seg.kind === "saved") main.appendChild(el("span", "badge saved", "Saved"));
  if (seg.partial) main.appendChild(el("span", "badge partial", "Partial"));
  if (seg.metadata) main.appendChild(el("span", "seg-info", `“${seg.metadata}”`));
  top.appendChild(main);
  row.appendChild(top);

  const actions = el("div", "seg-actions");
  actions.appendChild(actionButton("Play", ICON.play, "play", () => play(seg)));
  const dl = el("a", "small download");
  dl.href = `/footage/${encodeURIComponent(seg.name)}?download=1`;
  dl.setAttribute("download", seg.name);
  dl.appendChild(svg(ICON.down));
  dl.appendChild(document.createTextNode("Download"));
  actions.appendChild(dl);
  if (seg.kind === "locked") {
    actions.appendChild(actionButton("Unlock", ICON.unlock, "unlock", () => act("/api/unlock", { name: seg.name })));
  } else {
    const b = actionButton("Lock", ICON.lock, "lock", () => act("/api/lock", { name: seg.name }));
    if (seg.kind === "saved") b.disabled = true;
    actions.appendChild(b);
  }
  const del = actionButton("Delete", ICON.trash, "del", () => askDelete(seg));
  if (seg.recording || seg.kind === "locked") del.disabled = true;
  actions.appendChild(del);
  row.appendChild(actions);
  return row;
}

async function act(path, body) {
  try {
    const r = await api("POST", path, body);
    toast(r.message);
  } catch (e) {
    toast(e.message, true);
  }
  loadSegments();
}

function askDelete(seg) {
  $("confirm-text").textContent = `Delete ${seg.name}? This cannot be undone.`;
  state.confirm = async () => {
    try {
      const r = await api("DELETE", `/api/segments/${encodeURIComponent(seg.name)}`);
      toast(r.message);
    } catch (e) {
      toast(e.message, true);
    }
    loadSegments();
  };
  $("confirm").classList.remove("hidden");
  $("confirm-no").focus();
}

// --- player --------------------------------------------------------------------------------

function play(seg) {
  $("toast").classList.add("hidden");
  const url = `/footage/${encodeURIComponent(seg.name)}`;
  $("player-title").textContent = seg.name;
  $("player-download").href = url + "?download=1";
  $("player-download").setAttribute("download", seg.name);
  const video = $("player-video");
  const img = $("player-img");
  const controls = $("replay-controls");
  if (seg.name.endsWith(".mp4")) {
    img.classList.add("hidden");
    controls.classList.add("hidden");
    video.classList.remove("hidden");
    video.src = url;
    video.play().catch(() => {});
  } else {
    video.classList.add("hidden");
    video.removeAttribute("src");
    img.classList.remove("hidden");
    controls.classList.remove("hidden");
    const total = seg.duration_s || 60;
    $("replay-seek").max = String(Math.max(1, total));
    startReplay(seg, 0);
  }
  $("player").classList.remove("hidden");
  liveUpdate();
}

function startReplay(seg, from) {
  stopReplay();
  const img = $("player-img");
  img.src = `/replay/${encodeURIComponent(seg.name)}?start=${from}&t=${Date.now()}`;
  const total = seg.duration_s || Number($("replay-seek").max);
  const t0 = Date.now() - from * 1000;
  const tick = () => {
    const at = Math.min(total, (Date.now() - t0) / 1000);
    $("replay-seek").value = String(at);
    $("replay-time").textContent = `${duration(at)} / ${duration(total)}`;
  };
  tick();
  state.replay = { seg, timer: setInterval(tick, 250) };
}

function stopReplay() {
  if (state.replay) clearInterval(state.replay.timer);
  state.replay = null;
}

function closePlayer() {
  stopReplay();
  const video = $("player-video");
  video.pause();
  video.removeAttribute("src");
  video.load();
  $("player-img").removeAttribute("src");
  $("player").classList.add("hidden");
  liveUpdate();
}

// --- clip form -----------------------------------------------------------------------------

function withSeconds(v) {
  return v.length === 16 ? v + ":00" : v;
}

function clipRange() {
  return { from: withSeconds($("clip-from").value), to: withSeconds($("clip-to").value) };
}

function setClipBack(seconds) {
  $("clip-from").value = piLocal(-seconds);
  $("clip-to").value = piLocal(0);
  updateClipLink();
}

function updateClipLink() {
  const r = clipRange();
  $("clip-download").href = `/api/clip.mp4?from=${encodeURIComponent(r.from)}&to=${encodeURIComponent(r.to)}&download=1`;
}

async function saveClip(ev) {
  ev.preventDefault();
  const r = clipRange();
  const note = $("clip-note").value.trim();
  const btn = $("clip-save");
  btn.disabled = true;
  btn.textContent = "Cutting…";
  const out = $("clip-result");
  try {
    const d = await api("POST", "/api/clips", { from: r.from, to: r.to, metadata: note || null });
    out.replaceChildren();
    out.appendChild(el("strong", "", "Clip saved"));
    out.appendChild(el("div", "seg-info", d.message));
    const name = d.file;
    const row = el("div", "row");
    row.appendChild(actionButton("Play", ICON.play, "play", () => play({ name, duration_s: null, kind: "saved" })));
    const a = el("a", "small", "Download");
    a.href = `/footage/${encodeURIComponent(name)}?download=1`;
    a.setAttribute("download", name);
    row.appendChild(a);
    out.appendChild(row);
    out.classList.remove("hidden");
    out.scrollIntoView({ block: "center" });
  } catch (e) {
    out.replaceChildren(el("div", "error", e.message));
    out.classList.remove("hidden");
    out.scrollIntoView({ block: "center" });
  } finally {
    btn.disabled = false;
    btn.textContent = "Save on the dashcam";
  }
}

// --- login ---------------------------------------------------------------------------------

function showLogin() {
  $("login").classList.remove("hidden");
  $("login-password").focus();
}

async function login(ev) {
  ev.preventDefault();
  try {
    const d = await api("POST", "/api/login", { password: $("login-password").value });
    state.csrf = d.csrf;
    $("login-password").value = "";
    $("login-error").textContent = "";
    $("login").classList.add("hidden");
    $("logout").classList.remove("hidden");
    loadSegments();
    liveStop();
    liveUpdate();
    eventsConnect();
  } catch (e) {
    $("login-error").textContent = e.message;
  }
}

// --- wiring --------------------------------------------------------------------------------

function show(view) {
  state.view = view;
  $("toast").classList.add("hidden");
  for (const v of ["status", "footage", "clip"]) $("view-" + v).classList.toggle("hidden", v !== view);
  for (const t of document.querySelectorAll(".tab")) t.classList.toggle("on", t.dataset.view === view);
  if (view === "footage") loadSegments();
  if (view === "clip" && !$("clip-from").value) setClipBack(60);
  window.scrollTo(0, 0);
  liveUpdate();
}

async function start() {
  for (const t of document.querySelectorAll(".tab")) t.addEventListener("click", () => show(t.dataset.view));
  for (const c of document.querySelectorAll(".chips .chip")) {
    c.addEventListener("click", () => {
      state.kind = c.dataset.kind;
      for (const o of document.querySelectorAll(".chips .chip")) o.classList.toggle("on", o === c);
      loadSegments();
    });
  }
  $("lock-now").addEventListener("click", async () => {
    try {
      const r = await api("POST", "/api/lock", { now: true });
      const n = (r.files || []).length;
      toast(`Incident locked: ${n} segment${n === 1 ? "" : "s"} kept, and what follows in the next seconds.`);
    } catch (e) {
      toast(e.message, true);
    }
  });
  $("record-toggle").addEventListener("click", async () => {
    const on = $("record-toggle").dataset.on !== "1";
    try {
      const r = await api("POST", "/api/record", { on });
      toast(r.message);
    } catch (e) {
      toast(e.message, true);
    }
  });
  $("set-clock").addEventListener("click", async () => {
    try {
      const r = await api("POST", "/api/clock", { unix_ms: Date.now() });
      toast(r.message);
    } catch (e) {
      toast(e.message, true);
    }
  });
  $("player-close").addEventListener("click", closePlayer);
  $("replay-seek").addEventListener("change", () => {
    if (state.replay) startReplay(state.replay.seg, Number($("replay-seek").value));
  });
  $("replay-restart").addEventListener("click", () => {
    if (state.replay) startReplay(state.replay.seg, 0);
  });
  $("confirm-no").addEventListener("click", () => $("confirm").classList.add("hidden"));
  $("confirm-yes").addEventListener("click", () => {
    $("confirm").classList.add("hidden");
    const f = state.confirm;
    state.confirm = null;
    if (f) f();
  });
  $("clip-form").addEventListener("submit", saveClip);
  $("clip-from").addEventListener("change", updateClipLink);
  $("clip-to").addEventListener("change", updateClipLink);
  for (const q of document.querySelectorAll(".quick .chip")) q.addEventListener("click", () => setClipBack(Number(q.dataset.back)));
  $("login-form").addEventListener("submit", login);
  $("logout").addEventListener("click", async () => {
    try { await api("POST", "/api/logout"); } catch (e) { /* logged out anyway */ }
    state.csrf = null;
    showLogin();
  });
  $("live-toggle").addEventListener("click", () => {
    live.on = !live.on;
    localStorage.setItem(LIVE_KEY, live.on ? "on" : "off");
    liveUpdate();
  });
  $("live-full").addEventListener("click", liveFullscreen);
  document.addEventListener("visibilitychange", () => {
    liveUpdate();
    if (!document.hidden && events.open) refreshStatus("visible");
  });
  setInterval(tickClock, 1000);
  try {
    const s = await api("GET", "/api/session");
    state.csrf = s.csrf;
    if (s.password_required && !s.logged_in) showLogin();
    if (s.password_required && s.logged_in) $("logout").classList.remove("hidden");
  } catch (e) {
    /* the status fetch reports it */
  }
  eventsConnect();
  pollStatus();
  liveUpdate();
}

document.addEventListener("DOMContentLoaded", start);
