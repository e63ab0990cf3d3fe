// dashcam phone page: status, lock, record on/off, footage, clips. No framework.
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

async function pollStatus() {
  try {
    const s = await api("GET", "/api/status");
    state.status = s;
    state.statusAt = Date.now();
    state.failures = 0;
    $("conn").className = "conn ok";
    renderStatus(s);
    tickClock();
    if (state.view === "footage" && Date.now() - state.listAt > 10000) loadSegments();
  } catch (e) {
    state.failures++;
    $("conn").className = "conn bad";
    if (e.status === 401) return;
    if (state.failures >= 2) {
      const b = $("banner");
      b.className = "banner";
      b.textContent = e.message;
    }
  } finally {
    setTimeout(pollStatus, state.failures ? 4000 : 2000);
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
  row.appendChild(main);

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
  setInterval(tickClock, 1000);
  try {
    const s = await api("GET", "/api/session");
    state.csrf = s.csrf;
    if (s.password_required && !s.logged_in) showLogin();
    if (s.password_required && s.logged_in) $("logout").classList.remove("hidden");
  } catch (e) {
    /* the status poll reports it */
  }
  pollStatus();
}

document.addEventListener("DOMContentLoaded", start);
