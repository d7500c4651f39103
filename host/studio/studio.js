// atelier studio: explore → refine → edit → animate on `atelier serve`, with nothing but this
// server. Every call goes to the same API OpenAI clients use (plus /v1/atelier/* for what
// OpenAI's API cannot carry); the caller's token lives in this tab's sessionStorage only.

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "atelier.studio.token";

const state = {
  token: sessionStorage.getItem(TOKEN_KEY) || "",
  models: [],
  filters: [],
  currency: "USD",
  source: null,       // {blob, url, name, width, height, info}
  current: null,      // {blob, url, width, height, label, stage: the stage object | null (the source), candidate: n | null}
  stages: [],         // see runStage
  open: null,         // the stage shown in the grid
  mask: null,         // {canvas, painted: bool}
  videoUrl: null,
};

// ---------- API ----------

class ApiError extends Error {}

async function api(path, { method = "GET", body, headers = {}, raw = false } = {}) {
  const h = { Authorization: `Bearer ${state.token}`, ...headers };
  let resp;
  try {
    resp = await fetch(path, { method, body, headers: h });
  } catch (e) {
    throw new ApiError(`the server did not answer (${e.message}); is atelier serve still running?`);
  }
  if (!resp.ok) {
    let msg = `${resp.status} ${resp.statusText}`;
    try {
      const j = await resp.json();
      if (j.error && j.error.message) msg = j.error.message;
    } catch (_) { /* not JSON: keep the status line */ }
    if (resp.status === 401) msg += " — sign in again with a valid token.";
    const err = new ApiError(msg);
    err.status = resp.status;
    err.retryAfterMs = Number(resp.headers.get("retry-after-ms")) || 0;
    throw err;
  }
  return raw ? resp : resp.json();
}

// A 429 from the server's own queue says when to come back; honour it a few times, as the SDKs do.
async function withRetry(fn, onWait) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (e) {
      if (!(e instanceof ApiError) || e.status !== 429 || attempt >= 4) throw e;
      const wait = e.retryAfterMs || 1000 * (attempt + 1);
      if (onWait) onWait(wait);
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}

function b64ToBlob(b64, type) {
  const bin = atob(b64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return new Blob([bytes], { type });
}

function blobToDataUrl(blob) {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(r.result);
    r.onerror = () => reject(r.error);
    r.readAsDataURL(blob);
  });
}

// The `atelier` iTXt chunk of a PNG (the server writes it uncompressed): the output's provenance.
async function pngProvenance(blob) {
  const buf = new Uint8Array(await blob.arrayBuffer());
  const view = new DataView(buf.buffer);
  let at = 8;
  while (at + 8 <= buf.length) {
    const len = view.getUint32(at);
    const kind = String.fromCharCode(...buf.subarray(at + 4, at + 8));
    if (kind === "iTXt") {
      const data = buf.subarray(at + 8, at + 8 + len);
      const kwEnd = data.indexOf(0);
      const keyword = new TextDecoder().decode(data.subarray(0, kwEnd));
      if (keyword === "atelier" && data[kwEnd + 1] === 0) {
        // keyword\0 compression-flag compression-method language\0 translated\0 text
        let p = kwEnd + 3;
        p = data.indexOf(0, p) + 1;
        p = data.indexOf(0, p) + 1;
        try { return JSON.parse(new TextDecoder().decode(data.subarray(p))); } catch (_) { return null; }
      }
    }
    if (kind === "IDAT" || kind === "IEND") break;
    at += 12 + len;
  }
  return null;
}

function imageSize(url) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve({ width: img.naturalWidth, height: img.naturalHeight, img });
    img.onerror = () => reject(new Error("the browser cannot show this picture"));
    img.src = url;
  });
}

function fmtMs(ms) {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

function say(id, text, kind = "") {
  const el = $(id);
  el.textContent = text;
  el.dataset.kind = kind;
}

function download(blob, name) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 60_000);
}

function downloadLink(blob, name, text, label) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = name;
  a.textContent = text;
  if (label) a.setAttribute("aria-label", label);
  a.className = "link";
  return a;
}

// ---------- sign in ----------

async function signIn(token) {
  state.token = token;
  say("signin-status", "Checking the token…");
  try {
    const m = await api("/v1/atelier/models");
    sessionStorage.setItem(TOKEN_KEY, token);
    state.models = m.data;
    state.filters = m.filters;
    state.currency = m.currency;
    say("signin-status", `Signed in: ${m.data.length} engine(s), ${m.filters.length} filter step(s).`, "ok");
    $("signout").hidden = false;
    $("token").value = "";
    // Signed in: the token field goes (the token is kept in this tab only).
    $("token").hidden = $("token-label").hidden = $("signin-button").hidden = true;
    fillEngines();
    document.body.classList.add("signed-in");
    updateButtons();
    for (const p of m.problems || []) console.warn("plugin problem", p);
  } catch (e) {
    state.token = "";
    sessionStorage.removeItem(TOKEN_KEY);
    say("signin-status", `Not signed in: ${e.message}`, "error");
  }
}

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = "";
  document.body.classList.remove("signed-in");
  $("signout").hidden = true;
  $("token").hidden = $("token-label").hidden = $("signin-button").hidden = false;
  say("signin-status", "Signed out; the token is gone from this tab.");
  updateButtons();
}

// ---------- engines and their parameters ----------

function goodAt(m) {
  const parts = [];
  if (m.makes_images) parts.push("images");
  if (m.makes_video) parts.push("video");
  parts.push(`up to ${m.max_references} reference(s)`);
  parts.push(`${m.max_outputs} per call`);
  if (m.supports_mask) parts.push("mask");
  if (m.supports_seed) parts.push("seed");
  if (m.sizes.length) parts.push(`sizes ${m.sizes.join(" ")}`);
  if (m.offline) parts.push("offline");
  return parts.join(" · ");
}

function fillEngines() {
  const img = $("engine"), vid = $("video-engine");
  img.innerHTML = "";
  vid.innerHTML = "";
  for (const m of state.models) {
    const label = `${m.id} — ${goodAt(m)}${m.ready ? "" : " (not set up)"}`;
    if (m.makes_images) img.append(new Option(label, m.id));
    if (m.makes_video) vid.append(new Option(label, m.id));
  }
  const filterNames = state.filters.map((f) => f.name).join(", ");
  $("filters-help").textContent = `One step per line: name:key=value,key=value. Installed: ${filterNames || "none"}.`;
  onEngine();
  onVideoEngine();
}

const model = (id) => state.models.find((m) => m.id === id);

function describeEngine(m, el) {
  el.innerHTML = "";
  if (!m) { el.textContent = "No engine installed for this."; return; }
  const line = document.createElement("span");
  line.textContent = `${m.display_name}: ${goodAt(m)}.`;
  el.append(line);
  if (!m.ready) {
    const warn = document.createElement("strong");
    warn.className = "error";
    warn.textContent = ` Not set up on this server: ${m.not_ready_because}`;
    el.append(warn);
  }
  if (m.description) {
    const d = document.createElement("details");
    const s = document.createElement("summary");
    s.textContent = "What it is good at";
    const p = document.createElement("span");
    p.textContent = m.description;
    d.append(s, p);
    el.append(d);
  }
}

// Form controls from the model's param specs; blank means "the model's default".
function buildParams(fieldset, m, skip) {
  for (const el of [...fieldset.children]) if (el.tagName !== "LEGEND") el.remove();
  if (!m) return;
  const specs = m.params.filter((p) => !skip.includes(p.name) && p.kind !== "image file");
  if (!specs.length) {
    const p = document.createElement("p");
    p.className = "help";
    p.textContent = "This engine has no parameters of its own.";
    fieldset.append(p);
  }
  for (const s of specs) {
    const id = `${fieldset.id}-${s.name}`;
    const wrap = document.createElement("div");
    wrap.className = "field param";
    const label = document.createElement("label");
    label.htmlFor = id;
    label.textContent = s.name.replace(/_/g, " ");
    const help = document.createElement("p");
    help.className = "help";
    help.id = `${id}-help`;
    const dflt = s.default === null || s.default === undefined ? "none" : String(s.default);
    help.textContent = `${s.description} (default ${dflt}${s.min !== null && s.max !== null ? `, ${s.min}–${s.max}` : ""})`;
    let input;
    if (s.kind === "choice") {
      input = document.createElement("select");
      input.append(new Option(`default (${dflt})`, ""));
      for (const c of s.choices) input.append(new Option(c, c));
    } else if (s.kind === "bool") {
      input = document.createElement("select");
      input.append(new Option(`default (${dflt})`, ""), new Option("true", "true"), new Option("false", "false"));
    } else {
      input = document.createElement("input");
      if (s.kind === "int" || s.kind === "number") {
        input.type = "number";
        if (s.min !== null) input.min = s.min;
        if (s.max !== null) input.max = s.max;
        input.step = s.kind === "int" ? "1" : "any";
      } else {
        input.type = "text";
      }
      input.placeholder = dflt;
    }
    input.id = id;
    input.dataset.param = s.name;
    input.setAttribute("aria-describedby", help.id);
    if (s.required) input.required = true;
    wrap.append(label, input, help);
    fieldset.append(wrap);
  }
}

// "Engine parameters — 2 set: levels, style" on the collapsed section.
function paramSummary(fieldset, summary, what) {
  const set = Object.keys(paramValues(fieldset));
  const n = fieldset.querySelectorAll("[data-param]").length;
  $(summary).textContent = n === 0 ? `${what}: none` : set.length ? `${what} — ${set.length} of ${n} set: ${set.join(", ")}` : `${what} — ${n}, all at their defaults`;
}

function paramValues(fieldset) {
  const out = {};
  for (const el of fieldset.querySelectorAll("[data-param]")) {
    if (el.value.trim() !== "") out[el.dataset.param] = el.value.trim();
  }
  return out;
}

function onEngine() {
  const m = model($("engine").value);
  describeEngine(m, $("engine-about"));
  // `output` is the stage's kind (images here; video is the Animate section's).
  buildParams($("params"), m, ["output"]);
  $("n").max = 10;
  $("refs-help").textContent = m ? `${m.id} takes up to ${m.max_references} picture(s) in all, the current one first.` : "";
  updateMaskOption();
  paramSummary($("params"), "params-summary", "Engine parameters");
  estimate();
}

function onVideoEngine() {
  const m = model($("video-engine").value);
  describeEngine(m, $("video-engine-about"));
  buildParams($("video-params"), m, ["output", "style"]);
  paramSummary($("video-params"), "video-params-summary", "Video parameters");
  estimateVideo();
}

let estimateTimer = 0;
function estimate() {
  clearTimeout(estimateTimer);
  estimateTimer = setTimeout(async () => {
    const m = $("engine").value;
    if (!m || !state.token) return;
    try {
      const e = await api("/v1/atelier/estimate", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ model: m, n: Number($("n").value) || 1, params: paramValues($("params")) }),
      });
      say("estimate", `Estimated cost: ${e.shown}${e.amount !== null ? ` (${e.basis})` : ""}`);
    } catch (err) {
      say("estimate", `No estimate: ${err.message}`, "error");
    }
  }, 200);
}

let videoEstimateTimer = 0;
function estimateVideo() {
  clearTimeout(videoEstimateTimer);
  videoEstimateTimer = setTimeout(async () => {
    const m = $("video-engine").value;
    if (!m || !state.token) return;
    try {
      const e = await api("/v1/atelier/estimate", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ model: m, n: 1, params: paramValues($("video-params")), video: true }),
      });
      say("video-estimate", `Estimated cost: ${e.shown}${e.amount !== null ? ` (${e.basis})` : ""}`);
    } catch (err) {
      say("video-estimate", `No estimate: ${err.message}`, "error");
    }
  }, 200);
}

// ---------- source and the current picture ----------

async function loadSource(file) {
  if (!file) return;
  if (!state.token) { say("signin-status", "Sign in first: the server reads the picture for you.", "error"); return; }
  say("stage-status", `Reading ${file.name}…`);
  try {
    const info = await api("/v1/atelier/inspect", { method: "POST", body: file, headers: { "Content-Type": file.type || "application/octet-stream" } });
    // When the server had to rotate or colour-convert, work on what the engines will see.
    const blob = info.upright_png_b64 ? b64ToBlob(info.upright_png_b64, "image/png") : file;
    const url = URL.createObjectURL(blob);
    state.source = { blob, url, name: file.name, width: info.width, height: info.height, info };
    state.stages = [];
    state.open = null;
    setCurrent({ blob, url, width: info.width, height: info.height, label: `Source: ${file.name}`, stage: null, candidate: null });
    const notes = $("source-notes");
    notes.innerHTML = "";
    const kb = (info.bytes / 1024).toFixed(0);
    for (const t of [`Source photo: ${info.width}×${info.height} px, ${info.mime}, ${kb} KiB`, ...info.notes]) {
      const li = document.createElement("li");
      li.textContent = t;
      notes.append(li);
    }
    say("stage-status", "");
    renderHistory();
    renderGrid();
  } catch (e) {
    say("stage-status", `Cannot use ${file.name}: ${e.message}`, "error");
  }
}

function setCurrent(c) {
  state.current = c;
  $("current").hidden = false;
  $("current-img").src = c.url;
  $("current-img").alt = c.label;
  $("current-caption").textContent = `${c.label} — ${c.width}×${c.height}`;
  setupMask();
  updateButtons();
}

function updateButtons() {
  const ready = !!state.token && !!state.current;
  $("generate").disabled = !ready || !$("engine").value;
  $("animate").disabled = !ready || !$("video-engine").value;
  $("save-recipe").disabled = !state.token || !state.stages.some((s) => s.done);
  $("mask-panel").hidden = !state.current;
}

// ---------- mask painting ----------

function setupMask() {
  const c = state.current;
  const canvas = $("mask-canvas");
  canvas.width = c.width;
  canvas.height = c.height;
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  state.mask = { canvas, painted: false, cursor: { x: c.width / 2, y: c.height / 2 }, penDown: false };
  maskChanged();
}

function brush() {
  return Number($("brush-size").value);
}

function stamp(x, y, from) {
  const canvas = $("mask-canvas");
  const ctx = canvas.getContext("2d");
  ctx.globalCompositeOperation = $("mask-erase").checked ? "destination-out" : "source-over";
  ctx.strokeStyle = ctx.fillStyle = "rgba(255, 64, 129, 1)";
  ctx.lineCap = "round";
  ctx.lineWidth = brush();
  ctx.beginPath();
  if (from) {
    ctx.moveTo(from.x, from.y);
    ctx.lineTo(x, y);
    ctx.stroke();
  } else {
    ctx.arc(x, y, brush() / 2, 0, Math.PI * 2);
    ctx.fill();
  }
  ctx.globalCompositeOperation = "source-over";
}

function maskCoverage() {
  const canvas = $("mask-canvas");
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let n = 0;
  for (let i = 3; i < data.length; i += 4) if (data[i] > 0) n++;
  return n / (canvas.width * canvas.height);
}

function maskChanged() {
  const cov = maskCoverage();
  state.mask.painted = cov > 0;
  say("mask-status", cov > 0 ? `Mask covers ${(cov * 100).toFixed(1)}% of the picture.` : "No mask painted.");
  updateMaskOption();
}

function updateMaskOption() {
  const m = model($("engine").value);
  const painted = !!(state.mask && state.mask.painted);
  $("use-mask-field").hidden = !painted;
  if (painted && m && !m.supports_mask) {
    say("stage-status", `${m.id} takes no mask; pick an engine with "mask" to edit only the painted region.`, "warn");
  }
}

function initMaskEvents() {
  const canvas = $("mask-canvas");
  let last = null;
  const pos = (ev) => {
    const r = canvas.getBoundingClientRect();
    return { x: ((ev.clientX - r.left) / r.width) * canvas.width, y: ((ev.clientY - r.top) / r.height) * canvas.height };
  };
  canvas.addEventListener("pointerdown", (ev) => {
    canvas.setPointerCapture(ev.pointerId);
    last = pos(ev);
    stamp(last.x, last.y);
  });
  canvas.addEventListener("pointermove", (ev) => {
    if (!last) return;
    const p = pos(ev);
    stamp(p.x, p.y, last);
    last = p;
  });
  const end = () => { if (last) { last = null; maskChanged(); } };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  canvas.addEventListener("keydown", (ev) => {
    const m = state.mask;
    if (!m) return;
    const step = Math.max(4, brush() / 2);
    const moves = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
    if (ev.key === " " || ev.key === "Enter") {
      ev.preventDefault();
      stamp(m.cursor.x, m.cursor.y);
      maskChanged();
    } else if (moves[ev.key]) {
      ev.preventDefault();
      const from = { ...m.cursor };
      m.cursor.x = Math.min(canvas.width, Math.max(0, m.cursor.x + moves[ev.key][0]));
      m.cursor.y = Math.min(canvas.height, Math.max(0, m.cursor.y + moves[ev.key][1]));
      if (ev.shiftKey) { stamp(m.cursor.x, m.cursor.y, from); maskChanged(); }
      say("mask-status", `Brush at ${Math.round(m.cursor.x)}, ${Math.round(m.cursor.y)}. ${$("mask-status").textContent.replace(/^Brush at [^.]*\. /, "")}`);
    }
  });
  $("brush-size").addEventListener("input", () => { $("brush-size-out").textContent = `${brush()} px`; });
  $("mask-clear").addEventListener("click", () => {
    canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
    maskChanged();
  });
  $("mask-invert").addEventListener("click", () => {
    const ctx = canvas.getContext("2d");
    const img = ctx.getImageData(0, 0, canvas.width, canvas.height);
    const d = img.data;
    for (let i = 0; i < d.length; i += 4) {
      const on = d[i + 3] === 0;
      d[i] = 255; d[i + 1] = 64; d[i + 2] = 129; d[i + 3] = on ? 255 : 0;
    }
    ctx.putImageData(img, 0, 0);
    maskChanged();
  });
}

// OpenAI's mask: transparent (alpha 0) = edit, opaque = keep; the picture's size (or `w`×`h`).
function openaiMask(w, h) {
  const src = $("mask-canvas");
  const c = document.createElement("canvas");
  c.width = w || src.width;
  c.height = h || src.height;
  const ctx = c.getContext("2d");
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(src, 0, 0, c.width, c.height);
  const img = ctx.getImageData(0, 0, c.width, c.height);
  const d = img.data;
  for (let i = 0; i < d.length; i += 4) {
    const edit = d[i + 3] > 0;
    d[i] = d[i + 1] = d[i + 2] = 0;
    d[i + 3] = edit ? 0 : 255;
  }
  ctx.putImageData(img, 0, 0);
  return new Promise((resolve) => c.toBlob(resolve, "image/png"));
}

// ---------- stages ----------

function steps(id) {
  return $(id).value.split("\n").map((s) => s.trim()).filter(Boolean);
}

async function filterImage(blob, list, keep) {
  const q = list.map((s) => `step=${encodeURIComponent(s)}`).join("&") + (keep ? "&keep=provenance" : "");
  const resp = await api(`/v1/atelier/filter?${q}`, { method: "POST", body: blob, headers: { "Content-Type": blob.type || "image/png" }, raw: true });
  return resp.blob();
}

function randomSeed() {
  return crypto.getRandomValues(new Uint32Array(1))[0] % 2_000_000_000;
}

function uniqueName(base) {
  let name = base.replace(/[^A-Za-z0-9_-]/g, "-") || "stage";
  const taken = new Set(state.stages.map((s) => s.name));
  if (!taken.has(name)) return name;
  for (let i = 2; ; i++) if (!taken.has(`${name}-${i}`)) return `${name}-${i}`;
}

async function runStage(ev) {
  ev.preventDefault();
  const m = model($("engine").value);
  const cur = state.current;
  if (!m || !cur) return;
  const prompt = $("prompt").value.trim();
  if (!prompt) { say("stage-status", "Write a prompt: say what to make or change.", "error"); $("prompt").focus(); return; }
  const n = Math.max(1, Math.min(10, Number($("n").value) || 1));
  const seed = $("seed").value.trim() === "" ? randomSeed() : Number($("seed").value);
  const params = paramValues($("params"));
  const pre = steps("pre"), post = steps("post");
  const extra = [...$("refs").files];
  const withSource = $("ref-source").checked && state.source;
  const total = 1 + extra.length + (withSource ? 1 : 0);
  if (total > m.max_references) {
    say("stage-status", `${m.id} takes at most ${m.max_references} picture(s); this stage has ${total}. Remove references or pick another engine.`, "error");
    return;
  }
  const useMask = state.mask && state.mask.painted && $("use-mask").checked && m.supports_mask;
  const stage = {
    name: uniqueName($("stage-name").value.trim() || `stage${state.stages.length + 1}`),
    engine: m.id, prompt, n, seed, params, pre, post,
    references: [...(withSource ? ["@input"] : []), ...extra],
    from: cur.stage, // null = the source
    maskBlob: null,
    candidates: [],
    pick: null,
    done: false,
    video: false,
  };
  state.stages.push(stage);
  state.open = stage;
  $("generate").disabled = true;
  say("stage-status", `Running ${stage.name} with ${m.id}: ${n} variation(s)…`);
  const started = performance.now();
  try {
    // Pre-steps run on every picture, as in the pipeline; the mask follows the first one's size.
    let first = cur.blob;
    let refBlobs = [...(withSource ? [state.source.blob] : []), ...extra];
    if (pre.length) {
      say("stage-status", `Pre-filter steps: ${pre.join(" → ")}…`);
      first = await filterImage(first, pre, false);
      refBlobs = await Promise.all(refBlobs.map((b) => filterImage(b, pre, false)));
    }
    let maskBlob = null;
    if (useMask) {
      const dims = pre.length ? await imageSize(URL.createObjectURL(first)) : { width: cur.width, height: cur.height };
      maskBlob = await openaiMask(dims.width, dims.height);
      stage.maskBlob = await openaiMask();
    }
    for (let i = 0; i < n; i++) stage.candidates.push({ index: i + 1, seed: seed + i, status: "running", started: performance.now() });
    renderGrid();
    renderHistory();
    const tick = setInterval(() => renderTimes(stage), 250);
    await Promise.all(stage.candidates.map(async (c) => {
      const fd = new FormData();
      const images = [first, ...refBlobs];
      images.forEach((b, k) => fd.append(images.length > 1 ? "image[]" : "image", b, `image-${k + 1}.png`));
      fd.append("prompt", prompt);
      fd.append("model", m.id);
      fd.append("n", "1");
      fd.append("seed", String(c.seed));
      for (const [k, v] of Object.entries(params)) fd.append(k, v);
      if (maskBlob) fd.append("mask", maskBlob, "mask.png");
      try {
        const r = await withRetry(() => api("/v1/images/edits", { method: "POST", body: fd }), (ms) => { c.note = `server busy, retrying in ${fmtMs(ms)}`; renderTimes(stage); });
        let blob = b64ToBlob(r.data[0].b64_json, "image/png");
        if (post.length) blob = await filterImage(blob, post, true);
        c.blob = blob;
        c.url = URL.createObjectURL(blob);
        c.ms = performance.now() - c.started;
        c.prov = await pngProvenance(blob);
        const dims = await imageSize(c.url);
        c.width = dims.width;
        c.height = dims.height;
        c.status = "done";
        c.cost = await api("/v1/atelier/cost", {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ engine: m.id, model: (c.prov && c.prov.model) || m.model, usage: c.prov && c.prov.usage ? [c.prov.usage] : [], images: [[c.width, c.height]], params: (c.prov && c.prov.params) || {} }),
        }).catch((e) => ({ shown: `cost unknown (${e.message})` }));
      } catch (e) {
        c.status = "failed";
        c.error = e.message;
      }
      renderCandidate(stage, c);
      if (state.open === stage) fillCompare(stage);
    }));
    clearInterval(tick);
    const ok = stage.candidates.filter((c) => c.status === "done").length;
    stage.done = ok > 0;
    stage.ms = performance.now() - started;
    say("stage-status", `${stage.name}: ${ok} of ${n} candidate(s) in ${fmtMs(stage.ms)}.${ok < n ? " Some failed; see their cards." : " Pick one with “Use this”."}`, ok ? "ok" : "error");
  } catch (e) {
    say("stage-status", `${stage.name} failed: ${e.message}`, "error");
  } finally {
    if (!stage.done) state.stages.splice(state.stages.indexOf(stage), 1);
    if (state.open === stage && !stage.done) state.open = state.stages[state.stages.length - 1] || null;
    renderHistory();
    renderGrid();
    updateButtons();
    $("stage-name").value = nextStageName();
  }
}

function nextStageName() {
  const taken = new Set(state.stages.map((s) => s.name));
  const next = ["explore", "refine", "edit", "deliver"].find((n) => !taken.has(n));
  return next || uniqueName(`stage${state.stages.length + 1}`);
}

// ---------- candidates ----------

function candidateLabel(stage, c) {
  return `${stage.name} candidate ${c.index}`;
}

function renderTimes(stage) {
  if (state.open !== stage) return;
  for (const c of stage.candidates) {
    if (c.status !== "running") continue;
    const el = document.querySelector(`[data-cand="${c.index}"] .time`);
    if (el) el.textContent = `running ${fmtMs(performance.now() - c.started)}${c.note ? ` — ${c.note}` : ""}`;
  }
}

function renderGrid() {
  const grid = $("grid");
  grid.innerHTML = "";
  const stage = state.open;
  $("candidates-empty").hidden = !!stage;
  $("compare").hidden = !stage || stage.video;
  if (!stage) return;
  $("h-candidates").textContent = `3. Candidates — ${stage.name} (${stage.engine})`;
  for (const c of stage.candidates) {
    const li = document.createElement("li");
    li.dataset.cand = c.index;
    grid.append(li);
    renderCandidate(stage, c);
  }
  fillCompare(stage);
}

function renderCandidate(stage, c) {
  if (state.open !== stage) return;
  const li = document.querySelector(`#grid [data-cand="${c.index}"]`);
  if (!li) return;
  li.innerHTML = "";
  li.className = `card ${c.status}${stage.pick === c.index ? " picked" : ""}`;
  const fig = document.createElement("figure");
  const cap = document.createElement("figcaption");
  const title = document.createElement("h3");
  title.id = `cand-${stage.name}-${c.index}`;
  title.textContent = `#${c.index}${stage.pick === c.index ? " (picked)" : ""}`;
  if (c.status === "running") {
    const ph = document.createElement("div");
    ph.className = "placeholder";
    const prog = document.createElement("progress");
    prog.setAttribute("aria-label", `${candidateLabel(stage, c)} in progress`);
    ph.append(prog);
    fig.append(ph);
    const t = document.createElement("p");
    t.className = "time";
    t.textContent = "running…";
    cap.append(title, t);
  } else if (c.status === "failed") {
    const p = document.createElement("p");
    p.className = "error";
    p.textContent = c.error;
    cap.append(title, p);
  } else {
    const img = document.createElement("img");
    img.src = c.url;
    img.alt = `${candidateLabel(stage, c)}: ${stage.engine}, seed ${c.seed}`;
    fig.append(img);
    const dl = document.createElement("dl");
    const row = (k, v) => { const dt = document.createElement("dt"); dt.textContent = k; const dd = document.createElement("dd"); dd.textContent = v; dl.append(dt, dd); };
    row("seed", String((c.prov && c.prov.seed) ?? c.seed));
    row("engine", `${stage.engine}${c.prov && c.prov.model ? ` (${c.prov.model})` : ""}`);
    row("time", fmtMs(c.ms));
    row("cost", c.cost ? c.cost.shown : "…");
    row("size", `${c.width}×${c.height}`);
    const actions = document.createElement("div");
    actions.className = "actions";
    const use = document.createElement("button");
    use.type = "button";
    use.textContent = "Use this";
    use.setAttribute("aria-describedby", title.id);
    use.addEventListener("click", () => pick(stage, c));
    const base = `${stage.name}-${stage.engine}-${String(c.index).padStart(2, "0")}`;
    const dlImg = downloadLink(c.blob, `${base}.png`, "Download", `Download ${candidateLabel(stage, c)} (PNG with provenance)`);
    const provBlob = new Blob([JSON.stringify(c.prov || {}, null, 2)], { type: "application/json" });
    const dlProv = downloadLink(provBlob, `${base}.png.json`, "Provenance", `Download the provenance of ${candidateLabel(stage, c)}`);
    actions.append(use, dlImg, dlProv);
    cap.append(title, dl, actions);
  }
  fig.append(cap);
  li.append(fig);
}

function pick(stage, c) {
  stage.pick = c.index;
  setCurrent({ blob: c.blob, url: c.url, width: c.width, height: c.height, label: `${stage.name} #${c.index} (${stage.engine}, seed ${c.seed})`, stage, candidate: c.index });
  renderGrid();
  renderHistory();
  say("stage-status", `Continuing from ${stage.name} #${c.index}. The next stage works on it.`, "ok");
  $("prompt").focus();
}

function fillCompare(stage) {
  const a = $("compare-a"), b = $("compare-b");
  const prevA = a.value, prevB = b.value;
  a.innerHTML = "";
  b.innerHTML = "";
  const opts = [["source", "Source"], ...stage.candidates.filter((c) => c.status === "done").map((c) => [String(c.index), `#${c.index}`])];
  for (const [v, t] of opts) { a.append(new Option(t, v)); b.append(new Option(t, v)); }
  a.value = opts.some(([v]) => v === prevA) ? prevA : "source";
  const keepB = prevB !== "source" && opts.some(([v]) => v === prevB);
  b.value = keepB ? prevB : (opts[1] ? opts[1][0] : "source");
  showCompare();
}

function compareUrl(v) {
  if (v === "source") return state.source && state.source.url;
  const c = state.open && state.open.candidates.find((x) => String(x.index) === v);
  return c && c.url;
}

function showCompare() {
  const ia = $("compare-img-a"), ib = $("compare-img-b");
  ia.src = compareUrl($("compare-a").value) || "";
  ib.src = compareUrl($("compare-b").value) || "";
  ia.alt = `Left: ${$("compare-a").selectedOptions[0]?.text || ""}`;
  ib.alt = `Right: ${$("compare-b").selectedOptions[0]?.text || ""}`;
  const pos = Number($("compare-pos").value);
  ib.style.clipPath = `inset(0 0 0 ${pos}%)`;
  $("compare-pos").setAttribute("aria-valuetext", `${pos}% left, ${100 - pos}% right`);
}

// ---------- animate ----------

async function runAnimate(ev) {
  ev.preventDefault();
  const m = model($("video-engine").value);
  const cur = state.current;
  if (!m || !cur) return;
  const prompt = $("video-prompt").value.trim();
  if (!prompt) { say("video-status", "Write a prompt for the motion.", "error"); return; }
  const params = paramValues($("video-params"));
  const seed = randomSeed();
  const stage = { name: uniqueName("animate"), engine: m.id, prompt, n: 1, seed, params, pre: [], post: [], references: [], from: cur.stage, candidates: [], pick: null, done: false, video: true };
  $("animate").disabled = true;
  $("player").hidden = true;
  const prog = $("video-progress");
  prog.hidden = false;
  prog.value = 0;
  const started = performance.now();
  try {
    const fd = new FormData();
    fd.append("model", m.id);
    fd.append("prompt", prompt);
    fd.append("seed", String(seed));
    fd.append("input_reference", cur.blob, "frame.png");
    for (const [k, v] of Object.entries(params)) fd.append(k, v);
    let v = await withRetry(() => api("/v1/videos", { method: "POST", body: fd }));
    stage.videoId = v.id;
    while (v.status === "queued" || v.status === "in_progress") {
      prog.value = v.progress || 0;
      say("video-status", `${v.id}: ${v.status.replace("_", " ")} ${v.progress || 0}% (${fmtMs(performance.now() - started)})`);
      await new Promise((r) => setTimeout(r, 1000));
      v = await api(`/v1/videos/${v.id}`);
    }
    if (v.status !== "completed") throw new ApiError(v.error ? `${v.error.code}: ${v.error.message}` : `the video ended ${v.status}`);
    prog.value = 100;
    const resp = await api(`/v1/videos/${v.id}/content`, { raw: true });
    const blob = await resp.blob();
    const prov = await api(`/v1/atelier/videos/${v.id}/provenance`).catch(() => null);
    const ms = performance.now() - started;
    const cost = await api("/v1/atelier/cost", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ engine: m.id, model: (prov && prov.model) || m.model, usage: prov && prov.usage ? [prov.usage] : [], videos: 1, params: (prov && prov.params) || {} }),
    }).catch((e) => ({ shown: `cost unknown (${e.message})` }));
    stage.candidates = [{ index: 1, seed, status: "done", blob, url: URL.createObjectURL(blob), ms, prov, cost, mime: blob.type }];
    stage.done = true;
    state.stages.push(stage);
    showVideo(stage);
    say("video-status", `${v.id} done in ${fmtMs(ms)}.`, "ok");
  } catch (e) {
    say("video-status", `Animate failed: ${e.message}`, "error");
  } finally {
    prog.hidden = true;
    updateButtons();
    renderHistory();
  }
}

function showVideo(stage) {
  const c = stage.candidates[0];
  const box = $("player-media");
  box.innerHTML = "";
  let media;
  const label = `Video: ${stage.engine}, “${stage.prompt}”`;
  if (c.mime.startsWith("video/")) {
    media = document.createElement("video");
    media.controls = true;
    media.loop = true;
    media.src = c.url;
    media.setAttribute("aria-label", label);
  } else {
    // An animated GIF (classic) plays in an <img>.
    media = document.createElement("img");
    media.src = c.url;
    media.alt = label;
  }
  media.id = "video-media";
  const ext = c.mime === "image/gif" ? "gif" : c.mime === "video/webm" ? "webm" : "mp4";
  const base = `${stage.name}-${stage.engine}`;
  const links = document.createElement("p");
  links.className = "actions";
  links.append(
    downloadLink(c.blob, `${base}.${ext}`, "Download video", `Download the video (${ext.toUpperCase()})`),
    downloadLink(new Blob([JSON.stringify(c.prov || {}, null, 2)], { type: "application/json" }), `${base}.${ext}.json`, "Video provenance", "Download the video's provenance"),
  );
  box.append(media, links);
  $("player-caption").textContent = `${stage.engine}, seed ${c.seed}, ${fmtMs(c.ms)}, cost ${c.cost ? c.cost.shown : "unknown"}`;
  $("player").hidden = false;
}

// ---------- history ----------

function renderHistory() {
  const ol = $("history");
  ol.innerHTML = "";
  if (!state.source) return;
  const item = (text, current, onClick) => {
    const li = document.createElement("li");
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = text;
    if (current) b.setAttribute("aria-current", "step");
    b.addEventListener("click", onClick);
    li.append(b);
    ol.append(li);
  };
  item(`Source · ${state.source.name}`, state.current && state.current.stage === null && !state.open, () => {
    state.open = null;
    setCurrent({ blob: state.source.blob, url: state.source.url, width: state.source.width, height: state.source.height, label: `Source: ${state.source.name}`, stage: null, candidate: null });
    renderGrid();
    renderHistory();
  });
  state.stages.forEach((s, i) => {
    const what = s.video ? "video" : `×${s.n}`;
    const picked = s.pick ? ` → #${s.pick}` : "";
    item(`${i + 1}. ${s.name} · ${s.engine} ${what}${picked}`, state.open === s, () => {
      if (s.video) { showVideo(s); $("player").scrollIntoView({ block: "nearest" }); return; }
      state.open = s;
      const c = s.candidates.find((x) => x.index === s.pick);
      if (c) setCurrent({ blob: c.blob, url: c.url, width: c.width, height: c.height, label: `${s.name} #${c.index} (${s.engine}, seed ${c.seed})`, stage: s, candidate: c.index });
      renderGrid();
      renderHistory();
    });
  });
}

// The path that led to the latest stage: follow each stage's source back to the photo.
function pathTaken() {
  const done = state.stages.filter((s) => s.done);
  if (!done.length) return [];
  const chain = [];
  let s = done[done.length - 1];
  while (s) {
    chain.unshift(s);
    s = s.from; // null: the source photo
  }
  return chain;
}

async function saveRecipe() {
  const chain = pathTaken();
  if (!chain.length) return;
  say("recipe-status", "Writing the recipe…");
  $("recipe-out").hidden = false;
  try {
    const stages = [];
    for (let i = 0; i < chain.length; i++) {
      const s = chain[i];
      const refs = [];
      for (const r of s.references) refs.push(typeof r === "string" ? r : await blobToDataUrl(r));
      stages.push({
        name: s.name, engine: s.engine, prompt: s.prompt, n: s.n, seed: s.seed, params: s.params, pre: s.pre, post: s.post,
        pick: s.pick || undefined, references: refs, animate: s.video || undefined,
        mask: s.maskBlob ? await blobToDataUrl(s.maskBlob) : undefined,
      });
    }
    const base = (state.source && state.source.name.replace(/\.[^.]+$/, "")) || "studio";
    const r = await api("/v1/atelier/recipe", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ name: `studio-${base}`, description: `The studio path: ${chain.map((s) => `${s.name} (${s.engine})`).join(" → ")}`, stages }),
    });
    $("recipe-toml").textContent = r.toml;
    const ul = $("recipe-files");
    ul.innerHTML = "";
    const files = [{ name: r.file_name, blob: new Blob([r.toml], { type: "application/toml" }) }];
    for (const f of r.files) {
      const [head, b64] = f.data_url.split(";base64,");
      files.push({ name: f.name, blob: b64ToBlob(b64, head.slice("data:".length)) });
    }
    for (const f of files) {
      const li = document.createElement("li");
      li.append(downloadLink(f.blob, f.name, f.name, `Download ${f.name}`));
      ul.append(li);
    }
    download(files[0].blob, files[0].name);
    const extra = files.length > 1 ? ` Save ${files.slice(1).map((f) => f.name).join(", ")} beside it.` : "";
    say("recipe-status", `Saved ${r.file_name} (${chain.length} stage(s)); replay with: atelier run ${r.file_name} ${state.source.name}.${extra}`, "ok");
  } catch (e) {
    say("recipe-status", `Cannot save the recipe: ${e.message}`, "error");
  }
}

// ---------- wiring ----------

function init() {
  $("signin").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const t = $("token").value.trim();
    if (!t) { say("signin-status", "Paste the token the operator gave you.", "error"); $("token").focus(); return; }
    signIn(t);
  });
  $("signout").addEventListener("click", signOut);
  $("source").addEventListener("change", (ev) => loadSource(ev.target.files[0]));
  const drop = $("drop");
  drop.addEventListener("dragover", (ev) => { ev.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (ev) => {
    ev.preventDefault();
    drop.classList.remove("over");
    const f = ev.dataTransfer.files[0];
    if (f) loadSource(f);
  });
  $("engine").addEventListener("change", onEngine);
  $("video-engine").addEventListener("change", onVideoEngine);
  $("n").addEventListener("input", estimate);
  for (const ev of ["input", "change"]) {
    $("params").addEventListener(ev, () => { paramSummary($("params"), "params-summary", "Engine parameters"); estimate(); });
    $("video-params").addEventListener(ev, () => { paramSummary($("video-params"), "video-params-summary", "Video parameters"); estimateVideo(); });
  }
  $("stage-form").addEventListener("submit", runStage);
  $("animate-form").addEventListener("submit", runAnimate);
  $("save-recipe").addEventListener("click", saveRecipe);
  for (const id of ["compare-a", "compare-b"]) $(id).addEventListener("change", showCompare);
  $("compare-pos").addEventListener("input", showCompare);
  initMaskEvents();
  updateButtons();
  if (state.token) signIn(state.token);
}

init();
