// facelab studio: plain JavaScript, no build step, everything served by facelab itself.
"use strict";

const token = new URLSearchParams(location.search).get("token") || "";
const $ = (id) => document.getElementById(id);
const el = (tag, props = {}, ...kids) => {
  const node = Object.assign(document.createElement(tag), props);
  for (const kid of kids) node.append(kid);
  return node;
};

async function api(path, options = {}) {
  const headers = Object.assign({"X-Studio-Token": token}, options.headers || {});
  if (options.json !== undefined) {
    headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(options.json);
    options.method = options.method || "POST";
  }
  const res = await fetch(path, Object.assign({}, options, {headers}));
  if (!res.ok) {
    let doc = {};
    try { doc = await res.json(); } catch (e) { doc = {error: res.statusText}; }
    const err = new Error(doc.error || res.statusText);
    err.status = res.status;
    err.doc = doc;
    throw err;
  }
  return res;
}

function showError(err) {
  const box = $("error");
  box.textContent = err ? String(err.message || err) : "";
  box.hidden = !err;
}

// ---------------------------------------------------------------------------------------------------------------
// tabs

const loaders = {};
for (const button of document.querySelectorAll("#tabs button")) {
  button.addEventListener("click", () => {
    for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("active", b === button);
    for (const section of document.querySelectorAll(".tab")) section.hidden = section.id !== "tab-" + button.dataset.tab;
    if (loaders[button.dataset.tab]) loaders[button.dataset.tab]();
  });
}

// ---------------------------------------------------------------------------------------------------------------
// merge tuning

const merge = {
  state: null, doc: null, revision: "", scope: -1, view: "swapped",
  inflight: false, pending: false, urls: {over: null, under: null},
};

function fieldValue(field, input) {
  if (field.kind === "bool") return input.checked;
  if (field.kind === "int") return parseInt(input.value, 10);
  if (field.kind === "float") return parseFloat(input.value);
  if (field.kind === "json") return JSON.parse(input.value);
  if (field.nullable && input.value === "") return null;
  return input.value;
}

function effective(name) {
  const base = merge.doc.defaults[name];
  if (merge.scope < 0) return base;
  const rng = merge.doc.ranges[merge.scope];
  return name in rng ? rng[name] : base;
}

function setValue(name, value) {
  if (merge.scope < 0) {
    merge.doc.defaults[name] = value;
  } else {
    merge.doc.ranges[merge.scope][name] = value;
  }
  refreshControls();
  scheduleRender();
}

function makeControl(field) {
  const id = "set-" + field.name;
  const label = el("label", {htmlFor: id, textContent: field.name.replace(/_/g, " "), title: field.help});
  let input;
  let holder;
  if (field.kind === "bool") {
    input = el("input", {type: "checkbox", id});
    holder = input;
  } else if (field.choices) {
    input = el("select", {id});
    for (const c of field.choices) input.append(el("option", {value: c, textContent: c}));
    holder = input;
  } else if ((field.kind === "int" || field.kind === "float") && field.range) {
    const [lo, hi] = field.range;
    const step = field.kind === "int" ? 1 : 0.5;
    input = el("input", {type: "range", id, min: lo ?? -1000, max: hi ?? 1000, step});
    const number = el("input", {type: "number", id: id + "-num", min: lo ?? "", max: hi ?? "", step});
    number.addEventListener("change", () => {
      if (number.value === "" || Number.isNaN(Number(number.value))) return;  // half-typed: wait for a number
      input.value = number.value;
      input.dispatchEvent(new Event("input"));
    });
    input.number = number;
    holder = el("span", {className: "pair"}, input, number);
  } else if (field.kind === "int" || field.kind === "float") {
    input = el("input", {type: "number", id, step: field.kind === "int" ? 1 : "any"});
    holder = input;
  } else {
    input = el("input", {type: "text", id});
    const suggestions = (merge.state.suggestions || {})[field.name];
    if (suggestions) {
      const list = el("datalist", {id: id + "-list"});
      for (const s of suggestions) list.append(el("option", {value: s}));
      input.setAttribute("list", list.id);
      holder = el("span", {}, input, list);
    } else {
      holder = input;
    }
  }
  input.title = field.help;
  const apply = () => {
    let value;
    try { value = fieldValue(field, input); } catch (e) { showError(e); return; }
    if (typeof value === "number" && Number.isNaN(value)) return;
    if (input.number && document.activeElement !== input.number) input.number.value = input.value;
    setValue(field.name, value);
  };
  input.addEventListener(input.type === "range" || input.type === "text" ? "input" : "change", apply);
  const row = el("div", {className: "control", id: "row-" + field.name}, label, holder);
  row.input = input;
  row.field = field;
  return row;
}

function buildControls() {
  const box = $("controls");
  box.replaceChildren();
  const perFrame = merge.state.schema.filter((f) => !f.global);
  const whole = merge.state.schema.filter((f) => f.global);
  box.append(el("div", {className: "group", textContent: "Per frame (a range may change these)"}));
  for (const f of perFrame) box.append(makeControl(f));
  box.append(el("div", {className: "group", textContent: "Whole run"}));
  for (const f of whole) box.append(makeControl(f));
}

function refreshControls() {
  for (const row of document.querySelectorAll("#controls .control")) {
    const {field, input} = row;
    const value = effective(field.name);
    if (field.kind === "bool") input.checked = !!value;
    else if (field.kind === "json") input.value = JSON.stringify(value);
    else if (document.activeElement !== input || input.type === "range") input.value = value ?? "";
    if (input.number && document.activeElement !== input.number) input.number.value = value;
    const locked = merge.scope >= 0 && field.global;
    input.disabled = locked;
    if (input.number) input.number.disabled = locked;
    row.classList.toggle("locked", locked);
    row.classList.toggle("overridden", merge.scope >= 0 && field.name in merge.doc.ranges[merge.scope]);
  }
  refreshScope();
}

function rangeText(rng) { return "frames " + rng.frames; }

function parseFrames(text) {
  const parts = String(text).split("-");
  const first = parseInt(parts[0], 10);
  return [first, parts.length > 1 ? parseInt(parts[1], 10) : first];
}

function refreshScope() {
  const select = $("scope");
  const wanted = String(merge.scope);
  select.replaceChildren(el("option", {value: "-1", textContent: "all frames (defaults)"}));
  merge.doc.ranges.forEach((rng, i) => select.append(el("option", {value: String(i), textContent: rangeText(rng)})));
  select.value = wanted;
  $("range-del").disabled = merge.scope < 0;
  $("range-edit").hidden = merge.scope < 0;
  if (merge.scope >= 0) {
    const rng = merge.doc.ranges[merge.scope];
    const [first, last] = parseFrames(rng.frames);
    if (document.activeElement !== $("range-first")) $("range-first").value = first;
    if (document.activeElement !== $("range-last")) $("range-last").value = last;
    const box = $("range-overrides");
    box.replaceChildren("overrides: ");
    for (const [k, v] of Object.entries(rng)) {
      if (k === "frames") continue;
      const drop = el("button", {textContent: "×", title: "use the default again"});
      drop.addEventListener("click", () => { delete rng[k]; refreshControls(); scheduleRender(); });
      box.append(el("span", {}, `${k}=${JSON.stringify(v)} `, drop));
    }
  }
}

function currentFrame() { return merge.state.frames[parseInt($("frame").value, 10)]; }

function setRangeFrames() {
  const first = parseInt($("range-first").value, 10);
  const last = parseInt($("range-last").value, 10);
  if (Number.isNaN(first) || Number.isNaN(last) || last < first) return;
  merge.doc.ranges[merge.scope].frames = first === last ? String(first) : `${first}-${last}`;
  refreshScope();
  scheduleRender();
}

function setView(view) {
  merge.view = view;
  for (const b of document.querySelectorAll(".views button")) b.classList.toggle("active", b.dataset.view === view);
  $("split-label").hidden = view !== "split";
  const stage = $("stage");
  stage.classList.toggle("under", view === "original");
  stage.classList.toggle("solo", view === "mask");
  applySplit();
  scheduleRender();
}

function applySplit() {
  const x = merge.view === "split" ? 100 - parseInt($("split").value, 10) : 0;
  $("img-over").style.clipPath = `inset(0 ${x}% 0 0)`;
}

function showBlob(img, slot, blob) {
  const url = URL.createObjectURL(blob);
  if (merge.urls[slot]) URL.revokeObjectURL(merge.urls[slot]);
  merge.urls[slot] = url;
  img.src = url;
}

async function loadOriginal() {
  const frame = currentFrame();
  if (!frame) return;
  const res = await api(`/api/frame?pos=${frame.pos}`);
  showBlob($("img-under"), "under", await res.blob());
}

function scheduleRender() {
  if (merge.inflight) { merge.pending = true; return; }
  renderNow();
}

async function renderNow() {
  const frame = currentFrame();
  if (!frame || merge.view === "original") return;
  merge.inflight = true;
  merge.pending = false;
  document.body.dataset.renderState = "busy";
  const settings = JSON.parse(JSON.stringify(merge.doc));
  const view = merge.view === "mask" ? "mask" : "swapped";
  try {
    const res = await api("/api/render", {json: {pos: frame.pos, settings, view}});
    const blob = await res.blob();
    const img = $("img-over");
    await new Promise((resolve) => {
      img.onload = resolve;
      img.onerror = resolve;
      showBlob(img, "over", blob);
    });
    img.dataset.pos = String(frame.pos);
    img.dataset.view = view;
    img.dataset.settings = JSON.stringify(settings);
    $("render-ms").textContent = `frame ${res.headers.get("X-Frame-Number")}: ` +
      `${res.headers.get("X-Render-Ms")} ms render, ${res.headers.get("X-Total-Ms")} ms with encoding`;
    showError(null);
  } catch (err) {
    showError(err);
  } finally {
    merge.inflight = false;
    if (merge.pending) renderNow();
    else document.body.dataset.renderState = "idle";
  }
}

function onFrame(pos) {
  const n = merge.state.frames.length;
  pos = Math.max(0, Math.min(n - 1, pos));
  $("frame").value = pos;
  const frame = merge.state.frames[pos];
  $("frame-num").value = frame.number;
  $("frame-label").textContent = `${frame.stem} (${frame.faces} face${frame.faces === 1 ? "" : "s"}) ${pos + 1}/${n}`;
  loadOriginal().catch(showError);
  scheduleRender();
}

async function saveSettings() {
  $("save-status").textContent = "saving…";
  try {
    const res = await api("/api/settings", {json: {settings: merge.doc, revision: merge.revision}});
    const doc = await res.json();
    merge.revision = doc.revision;
    $("save-status").textContent = "saved";
  } catch (err) {
    if (err.status === 409) {
      merge.doc = err.doc.settings;
      merge.revision = err.doc.revision;
      merge.scope = -1;
      refreshControls();
      scheduleRender();
      $("save-status").textContent = "changed in another tab: reloaded those settings, review and save again";
    } else {
      $("save-status").textContent = "not saved";
      showError(err);
    }
  }
}

async function pollMerge() {
  const res = await api("/api/merge");
  const job = await res.json();
  $("merge-progress").max = Math.max(1, job.total);
  $("merge-progress").value = job.done;
  let text = `${job.state} ${job.done}/${job.total} (${job.seconds} s)`;
  if (job.error) text += ": " + job.error;
  $("merge-status").textContent = text;
  $("merge-start").disabled = job.state === "running";
  if (job.state === "running") setTimeout(() => pollMerge().catch(showError), 1000);
}

async function startMerge() {
  await saveSettings();
  if ($("save-status").textContent !== "saved") return;
  try {
    await api("/api/merge", {json: {}});
    await pollMerge();
  } catch (err) { showError(err); }
}

async function initMerge() {
  const res = await api("/api/state");
  merge.state = await res.json();
  merge.doc = merge.state.settings;
  merge.revision = merge.state.revision;
  $("where").textContent = `${merge.state.workspace} · model ${merge.state.model || "none"}`;
  $("config-file").textContent = merge.state.config_file;
  $("frame").max = merge.state.frames.length - 1;
  buildControls();
  refreshControls();
  const sort = $("faces-sort");
  for (const m of merge.state.sort_methods) sort.append(el("option", {value: m.name, textContent: m.name, title: m.help}));
  $("frame").addEventListener("input", () => onFrame(parseInt($("frame").value, 10)));
  $("frame-num").addEventListener("change", () => {
    const number = parseInt($("frame-num").value, 10);
    const pos = merge.state.frames.findIndex((f) => f.number === number);
    if (pos >= 0) onFrame(pos);
  });
  for (const b of document.querySelectorAll(".views button")) b.addEventListener("click", () => setView(b.dataset.view));
  $("split").addEventListener("input", applySplit);
  $("scope").addEventListener("change", () => { merge.scope = parseInt($("scope").value, 10); refreshControls(); });
  $("range-add").addEventListener("click", () => {
    const number = currentFrame().number;
    merge.doc.ranges.push({frames: String(number)});
    merge.scope = merge.doc.ranges.length - 1;
    refreshControls();
  });
  $("range-del").addEventListener("click", () => {
    merge.doc.ranges.splice(merge.scope, 1);
    merge.scope = -1;
    refreshControls();
    scheduleRender();
  });
  $("range-first").addEventListener("change", setRangeFrames);
  $("range-last").addEventListener("change", setRangeFrames);
  $("save").addEventListener("click", saveSettings);
  $("merge-start").addEventListener("click", startMerge);
  document.addEventListener("keydown", (e) => {
    if (e.target.tagName === "INPUT" || e.target.tagName === "SELECT") return;
    if (e.key === "ArrowRight") onFrame(parseInt($("frame").value, 10) + 1);
    if (e.key === "ArrowLeft") onFrame(parseInt($("frame").value, 10) - 1);
  });
  if (!merge.state.frames.length) {
    $("frame-label").textContent = merge.state.frames_problem || "no destination frames";
  } else {
    const first = merge.state.frames.findIndex((f) => f.faces > 0);
    onFrame(first < 0 ? 0 : first);
  }
  pollMerge().catch(showError);
  document.body.dataset.ready = "1";
}

// ---------------------------------------------------------------------------------------------------------------
// training monitor

function drawLoss(canvas, history) {
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const its = history.iteration || [];
  // the src and dst losses when there are (other terms, e.g. a GAN's, live on another scale)
  const main = ["src_loss", "dst_loss"].filter((k) => k in history);
  const series = main.length ? main : Object.keys(history).filter((k) => k !== "iteration");
  const values = series.flatMap((k) => history[k]).filter((v) => v !== null);
  if (its.length < 2 || !values.length) {
    ctx.fillStyle = "#888";
    ctx.fillText("no loss history yet", 10, 20);
    return;
  }
  const lo = Math.min(...values), hi = Math.max(...values);
  const x0 = its[0], x1 = its[its.length - 1];
  const pad = 30, w = canvas.width - 2 * pad, h = canvas.height - 2 * pad;
  const colors = ["#5dade2", "#f0b232", "#58d68d", "#ec7063", "#af7ac5"];
  ctx.font = "11px sans-serif";
  series.forEach((key, s) => {
    ctx.strokeStyle = colors[s % colors.length];
    ctx.beginPath();
    let started = false;
    its.forEach((it, i) => {
      const v = history[key][i];
      if (v === null) return;
      const x = pad + (it - x0) / Math.max(1, x1 - x0) * w;
      const y = pad + h - (v - lo) / Math.max(1e-12, hi - lo) * h;
      if (started) ctx.lineTo(x, y); else { ctx.moveTo(x, y); started = true; }
    });
    ctx.stroke();
    ctx.fillStyle = colors[s % colors.length];
    ctx.fillText(key, pad + 80 * s, 14);
  });
  ctx.fillStyle = "#aaa";
  ctx.fillText(hi.toPrecision(3), 2, pad);
  ctx.fillText(lo.toPrecision(3), 2, pad + h);
  ctx.fillText(`iteration ${x1}`, canvas.width - 110, canvas.height - 6);
}

function duration(s) {
  if (s === null || s === undefined) return "–";
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
  return h ? `${h} h ${m} min` : `${m} min ${Math.round(s % 60)} s`;
}

async function loadTrain() {
  const res = await api("/api/train");
  const doc = await res.json();
  const box = $("models");
  box.replaceChildren();
  if (!doc.models.length) box.append("No model in this workspace yet: run python main.py train.");
  for (const m of doc.models) {
    const st = m.status || {};
    const stats = el("div", {className: "stats"},
      el("span", {textContent: `state: ${m.state}${st.stopped_by ? " (" + st.stopped_by + ")" : ""}`}),
      el("span", {textContent: `iteration: ${st.iteration ?? m.saved_iterations ?? "–"}`}),
      el("span", {textContent: `saved: ${m.saved_iterations ?? "–"}`}),
      el("span", {textContent: `it/s: ${m.state === "running" ? st.iterations_per_second.toFixed(1) : "–"}`}),
      el("span", {textContent: `target: ${st.target_iter || "none"}`}),
      el("span", {textContent: `time left: ${m.state === "running" ? duration(st.seconds_left) : "–"}`}),
      el("span", {textContent: m.pending.length ? `asked: ${m.pending.join(", ")}` : ""}));
    const save = el("button", {textContent: "Save checkpoint now", disabled: m.state !== "running"});
    const stop = el("button", {textContent: "Stop cleanly", disabled: m.state !== "running"});
    const ask = (what) => api("/api/train/request", {json: {model: m.name, what}}).then(loadTrain).catch(showError);
    save.addEventListener("click", () => ask("save"));
    stop.addEventListener("click", () => ask("stop"));
    const row = el("div", {className: "row"});
    const stamp = Date.now();
    if (m.images.includes("preview.png")) {
      row.append(el("img", {src: `/api/train/image?model=${encodeURIComponent(m.name)}&name=preview.png&t=${stamp}`,
        alt: "training preview"}));
    }
    if (st.history) {
      const canvas = el("canvas", {width: 520, height: 280});
      drawLoss(canvas, st.history);
      row.append(canvas);
    } else if (m.images.includes("loss.png")) {
      row.append(el("img", {src: `/api/train/image?model=${encodeURIComponent(m.name)}&name=loss.png&t=${stamp}`,
        alt: "loss"}));
    }
    box.append(el("div", {className: "model"}, el("h2", {textContent: `${m.name} (${m.model_type})`}),
      stats, save, " ", stop, row));
  }
}

let trainTimer = null;
loaders.train = () => {
  loadTrain().catch(showError);
  if (!trainTimer) {
    trainTimer = setInterval(() => { if (!$("tab-train").hidden) loadTrain().catch(showError); }, 3000);
  }
};

// ---------------------------------------------------------------------------------------------------------------
// face sets

const faces = {page: 0, per: 60, total: 0, names: [], selected: new Set()};

function showSelected() {
  $("faces-selected").textContent = faces.selected.size ? `${faces.selected.size} selected` : "";
  for (const fig of $("faces-grid").children) fig.classList.toggle("selected", faces.selected.has(fig.dataset.name));
}

function faceQuery(name) {
  return `side=${$("faces-side").value}&place=${$("faces-place").value}&name=${encodeURIComponent(name)}`;
}

async function loadFaces() {
  const sort = $("faces-sort").value;
  $("faces-status").textContent = sort ? "sorting…" : "";
  const q = `side=${$("faces-side").value}&place=${$("faces-place").value}&sort=${sort}&page=${faces.page}&per=${faces.per}`;
  const doc = await (await api(`/api/faces?${q}`)).json();
  faces.total = doc.total;
  const pages = Math.max(1, Math.ceil(doc.total / faces.per));
  $("faces-page").textContent = `page ${faces.page + 1}/${pages} (${doc.total} faces)`;
  $("faces-status").textContent = "";
  const trash = $("faces-place").value === "trash";
  $("faces-trash").hidden = trash;
  $("faces-restore").hidden = !trash;
  faces.names = doc.names;
  const grid = $("faces-grid");
  grid.replaceChildren();
  for (const name of doc.names) {
    const fig = el("figure", {className: faces.selected.has(name) ? "selected" : ""},
      el("img", {src: `/api/faces/thumb?${faceQuery(name)}`, alt: name, loading: "lazy"}),
      el("figcaption", {textContent: name}));
    fig.dataset.name = name;
    fig.addEventListener("click", () => {
      if (faces.selected.has(name)) faces.selected.delete(name); else faces.selected.add(name);
      showSelected();
      showFace(name).catch(showError);
    });
    grid.append(fig);
  }
  showSelected();
}

const SVG = "http://www.w3.org/2000/svg";

function landmarkOverlay(points, size) {
  // the 68 points in face pixels, drawn over the face image (same square, scaled by the viewBox)
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${size} ${size}`);
  const r = String(Math.max(1, size / 160));
  for (const [x, y] of points) {
    const c = document.createElementNS(SVG, "circle");
    c.setAttribute("cx", String(x));
    c.setAttribute("cy", String(y));
    c.setAttribute("r", r);
    svg.append(c);
  }
  return svg;
}

async function showFace(name) {
  const meta = await (await api(`/api/faces/meta?${faceQuery(name)}`)).json();
  const box = $("face-detail");
  const img = el("img", {src: `/api/faces/image?${faceQuery(name)}`, alt: name});
  const overlay = landmarkOverlay(meta.landmarks_face || [], meta.size);
  const view = el("div", {className: "face-view"}, img, overlay);
  const table = el("table");
  for (const key of ["name", "source_frame", "frame_size", "face_index", "face_type", "size", "box", "detector",
                     "landmarks_backend", "schema_version"]) {
    table.append(el("tr", {}, el("td", {textContent: key}), el("td", {textContent: JSON.stringify(meta[key])})));
  }
  for (const [key, value] of Object.entries(meta.extra || {})) {  // track, interpolated, fit marks of extract
    table.append(el("tr", {}, el("td", {textContent: key}), el("td", {textContent: JSON.stringify(value)})));
  }
  const points = el("label", {}, el("input", {type: "checkbox", id: "face-landmarks", checked: true}), " landmarks");
  points.firstChild.addEventListener("change", (e) => { overlay.style.display = e.target.checked ? "" : "none"; });
  const masks = el("div", {}, points, " masks: ");
  const original = el("button", {textContent: "face"});
  original.addEventListener("click", () => { img.src = `/api/faces/image?${faceQuery(name)}`; });
  masks.append(original);
  for (const m of meta.masks) {
    const b = el("button", {textContent: `${m.name} (${m.source})`});
    b.addEventListener("click", () => { img.src = `/api/faces/mask?${faceQuery(name)}&mask=${encodeURIComponent(m.name)}`; });
    masks.append(" ", b);
  }
  if (!meta.masks.length) masks.append("none stored");
  box.replaceChildren(view, masks, table);
}

async function moveSelected(kind) {
  const names = [...faces.selected];
  if (!names.length) return;
  const doc = await (await api(`/api/faces/${kind}`, {json: {side: $("faces-side").value, names}})).json();
  faces.selected.clear();
  await loadFaces();
  $("faces-status").textContent = `${doc.moved} moved`;
}

loaders.faces = () => loadFaces().catch(showError);
for (const id of ["faces-side", "faces-place", "faces-sort"]) {
  $(id).addEventListener("change", () => { faces.page = 0; faces.selected.clear(); loaders.faces(); });
}
$("faces-prev").addEventListener("click", () => { faces.page = Math.max(0, faces.page - 1); loaders.faces(); });
$("faces-next").addEventListener("click", () => {
  if ((faces.page + 1) * faces.per < faces.total) { faces.page += 1; loaders.faces(); }
});
$("faces-select-page").addEventListener("click", () => { faces.names.forEach((n) => faces.selected.add(n)); showSelected(); });
$("faces-select-none").addEventListener("click", () => { faces.selected.clear(); showSelected(); });
$("faces-trash").addEventListener("click", () => moveSelected("trash").catch(showError));
$("faces-restore").addEventListener("click", () => moveSelected("restore").catch(showError));

// ---------------------------------------------------------------------------------------------------------------
// workspace overview

loaders.workspace = async () => {
  try {
    const doc = await (await api("/api/overview")).json();
    $("next-command").textContent = doc.next.command;
    $("next-why").textContent = "— " + doc.next.why;
    const table = $("info");
    table.replaceChildren();
    for (const [k, v] of Object.entries(doc.info)) {
      table.append(el("tr", {}, el("td", {textContent: k}), el("td", {textContent: JSON.stringify(v)})));
    }
  } catch (err) { showError(err); }
};

initMerge().catch(showError);
