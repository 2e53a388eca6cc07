// The Search page: a query image (dropped, picked, pasted or taken from the library), an
// optional crop, weights and filters in; a grid of scored lookalikes out.

import { api, itemsOf } from "./api.js";
import { CropStage } from "./crop.js";
import { openInspector, wireInspector } from "./inspect.js";
import { loadStatus, warnFallbacks } from "./status.js";
import {
  $, ROLES, banner, debounce, guardWindowDrops, h, parseTags, percent, scoreBars, scoresByRole, showError,
} from "./ui.js";

const page = $("#search-page");
const PREFS_KEY = "lookalike.search.prefs";

const els = {
  dropzone: $("#dropzone"),
  empty: $("#dropzone-empty"),
  file: $("#query-file"),
  meta: $("#query-meta"),
  name: $("#query-name"),
  cropText: $("#query-crop"),
  cropReset: $("#crop-reset"),
  clear: $("#query-clear"),
  form: $("#search-form"),
  k: $("#k"),
  folder: $("#folder"),
  tags: $("#tags"),
  colour: $("#colour"),
  colourTolerance: $("#colour-tolerance"),
  textForm: $("#text-form"),
  text: $("#query-text"),
  textOff: $("#text-off"),
  button: $("#search-btn"),
  grid: $("#results-grid"),
  resultsEmpty: $("#results-empty"),
  title: $("#results-title"),
  stats: $("#results-stats"),
};

// What is being searched: {kind: "file", blob, name} or {kind: "id", id, name, blob?}.
let query = null;
let inFlight = null;
let activeRoles = new Set(ROLES.map((r) => r.role));

const stage = new CropStage({
  container: els.dropzone,
  stage: $("#stage"),
  canvas: $("#stage-canvas"),
  crop: $("#crop"),
  onChange: (box) => showCrop(box),
  onCommit: () => search(),
});

function showCrop(box) {
  els.cropReset.hidden = !box;
  els.cropText.textContent = box
    ? `Crop ${box[2]} × ${box[3]} px at ${box[0]}, ${box[1]}`
    : stage.width
      ? `${stage.width} × ${stage.height} px · drag on the image to crop`
      : "No preview in this browser; the server can still read it";
}

function weights() {
  const out = {};
  for (const { role } of ROLES) {
    if (activeRoles.has(role)) out[role] = Number($(`#w-${role}`).value);
  }
  return out;
}

function filters() {
  const out = {};
  const folder = els.folder.value.trim();
  const tags = parseTags(els.tags.value);
  if (folder) out.folders = [folder];
  if (tags.length) out.tags_any = tags;
  const colour = els.colour.value.trim();
  if (colour) {
    out.colour = colour.startsWith("#") ? colour : `#${colour}`;
    // 0 is a valid tolerance (the exact colour); only an empty or unreadable field means 20.
    const tolerance = els.colourTolerance.value === "" ? NaN : Number(els.colourTolerance.value);
    out.colour_tolerance = Number.isFinite(tolerance) ? tolerance : 20;
  }
  return Object.keys(out).length ? out : null;
}

function savePrefs() {
  const prefs = { k: els.k.value, weights: {} };
  for (const { role } of ROLES) prefs.weights[role] = $(`#w-${role}`).value;
  localStorage.setItem(PREFS_KEY, JSON.stringify(prefs));
}

/** Restores the user's last k and weights; false when there are none yet. */
function loadPrefs() {
  try {
    const prefs = JSON.parse(localStorage.getItem(PREFS_KEY) || "null");
    if (!prefs) return false;
    if ([...els.k.options].some((o) => o.value === prefs.k)) els.k.value = prefs.k;
    for (const [role, value] of Object.entries(prefs.weights || {})) {
      const input = $(`#w-${role}`);
      if (input) input.value = value;
    }
    return true;
  } catch {
    localStorage.removeItem(PREFS_KEY);
    return false;
  }
}

function syncSliderOutputs() {
  for (const { role } of ROLES) {
    const input = $(`#w-${role}`);
    input.closest(".slider").querySelector("output").textContent = Number(input.value).toFixed(2);
  }
}

/** The request for the current query: JSON for a library image (the server crops its file
 * at full resolution), multipart with the bytes for an image from this computer. */
function buildRequest() {
  const box = stage.cropBox();
  const k = Number(els.k.value);
  const w = weights();
  const f = filters();
  if (query.kind === "text") {
    // Only CLIP reads text: the server weighs its block alone, so no weights are sent.
    return { json: { text: query.text, k, ...(f ? { filters: f } : {}) } };
  }
  if (query.kind === "id") {
    return { json: { image_id: query.id, k, weights: w, ...(f ? { filters: f } : {}), ...(box ? { box } : {}) } };
  }
  const form = new FormData();
  form.append("image", query.blob, query.name);
  form.append("k", String(k));
  form.append("weights", JSON.stringify(w));
  if (f) form.append("filters", JSON.stringify(f));
  if (box) form.append("box", JSON.stringify(box));
  return { form };
}

async function search() {
  if (!query) return;
  if (inFlight) inFlight.abort();
  const controller = new AbortController();
  inFlight = controller;
  page.classList.add("is-searching");
  els.button.disabled = true;
  try {
    const result = await api("/api/v1/search", { method: "POST", signal: controller.signal, ...buildRequest() });
    banner("error", null);
    render(result);
  } catch (err) {
    if (err.name !== "AbortError") showFailure();
    showError(err);
  } finally {
    if (inFlight === controller) {
      inFlight = null;
      page.classList.remove("is-searching");
      els.button.disabled = !query;
    }
  }
}

function card(hit, rank, models) {
  hit.byRole = scoresByRole(hit, models);
  const name = hit.filename || (hit.paths && hit.paths[0]) || hit.id;
  // Decided by the server with the calibrated fusion, whatever the sliders say.
  const dup = Boolean(hit.near_duplicate);
  const img = h("img.hit__img", { src: hit.thumbnail_url, alt: name, loading: "lazy", decoding: "async" });
  const button = h("button.hit__button", { type: "button", "aria-label": `Inspect ${name}, ${percent(hit.score)} match` },
    h("span.hit__thumb", {}, img,
      h("span.hit__rank", {}, String(rank)),
      dup ? h("span.badge.badge--dup.hit__badge", { "data-testid": "near-duplicate" }, "Near-duplicate") : null),
    h("span.hit__body", {},
      h("span.hit__row", {},
        h("span.hit__name", { title: name }, name),
        h("span.hit__score", { "data-testid": "score" }, percent(hit.score))),
      scoreBars(hit.byRole, { compact: true })));
  button.addEventListener("click", () =>
    openInspector(hit.id, { hit, onSearch: (image) => useLibraryImage(image) }));
  return h("li.hit", { dataset: { id: hit.id, testid: "hit" } }, button, colourButton(hit));
}

/** "More like this colour": filter by the hit's dominant colour and weigh colour up. */
function colourButton(hit) {
  const colour = (hit.palette || [])[0];
  if (!colour) return null;
  const swatch = h("span.swatch");
  swatch.style.backgroundColor = colour; // CSSOM, not a style attribute: the CSP forbids those
  return h("button.link-btn.hit__colour", {
    type: "button",
    title: `Images with ${colour} in their palette, closest in colour first`,
    "data-testid": "more-like-colour",
    onclick: () => {
      els.colour.value = colour;
      for (const { role } of ROLES) $(`#w-${role}`).value = role === "hsv" ? "1" : "0.2";
      syncSliderOutputs();
      useLibraryImage(hit);
    },
  }, swatch, "More like this colour");
}

function render(result) {
  const hits = result.hits || [];
  els.resultsEmpty.hidden = hits.length > 0;
  if (!hits.length) {
    els.resultsEmpty.querySelector(".empty__title").textContent = "No lookalikes found";
    els.resultsEmpty.querySelector(".empty__text").textContent =
      "Nothing in the library matches these filters. Clear the folder or tags, or add images on the Library page.";
  }
  const models = result.models || {};
  els.grid.replaceChildren(...hits.map((hit, i) => card(hit, i + 1, models)));
  const timings = result.timings || {};
  const total = Object.values(timings).reduce((a, b) => a + (Number(b) || 0), 0);
  const dups = hits.filter((hit) => hit.near_duplicate).length;
  els.title.textContent = hits.length === 1 ? "1 lookalike" : `${hits.length} lookalikes`;
  els.stats.textContent = [
    dups ? `${dups} near-duplicate${dups === 1 ? "" : "s"}` : null,
    total ? `${Math.round(total)} ms` : null,
  ].filter(Boolean).join(" · ");
}

/** The previous query's hits would read as this query's: clear them when a search fails. */
function showFailure() {
  els.grid.replaceChildren();
  els.resultsEmpty.hidden = false;
  els.resultsEmpty.querySelector(".empty__title").textContent = "No results for this query";
  els.resultsEmpty.querySelector(".empty__text").textContent = "The message above says why. Try another image.";
  els.title.textContent = "Results";
  els.stats.textContent = "";
}

function showQuery(name) {
  els.name.textContent = name;
  els.meta.hidden = false;
  els.empty.hidden = true;
  els.dropzone.classList.add("has-image");
  els.button.disabled = false;
}

async function useFile(file) {
  if (!file) return;
  if (file.type && !file.type.startsWith("image/")) {
    banner("error", `${file.name} is not an image.`);
    return;
  }
  query = { kind: "file", blob: file, name: file.name || "pasted image" };
  showQuery(query.name);
  if (!(await stage.load(file))) {
    // The browser cannot draw it (a TIFF, say): keep the drop target, the server may read it.
    els.empty.hidden = false;
    els.dropzone.classList.remove("has-image");
  }
  showCrop(null);
  search();
}

/** "Search with this image": the server already has its vectors, so search by id at once. */
async function useLibraryImage(image) {
  const name = image.filename || image.id;
  query = { kind: "id", id: image.id, name };
  showQuery(name);
  stage.clear();
  search();
  window.scrollTo({ top: 0, behavior: "smooth" });
  try {
    // The bytes only draw the preview to crop on: the search itself goes by id.
    const response = await fetch(image.file_url || `/api/v1/images/${image.id}/file`, { credentials: "same-origin" });
    if (!response.ok || !query || query.id !== image.id) return;
    query.blob = await response.blob();
    await stage.load(query.blob);
  } catch {
    // The preview is a convenience: the search by id has already run without it.
  }
  showCrop(null);
}

function clearQuery() {
  if (inFlight) inFlight.abort();
  query = null;
  stage.clear();
  els.meta.hidden = true;
  els.empty.hidden = false;
  els.dropzone.classList.remove("has-image");
  els.button.disabled = true;
  els.file.value = "";
}

function wire() {
  guardWindowDrops();
  wireInspector();
  els.file.addEventListener("change", () => useFile(els.file.files[0]));
  els.dropzone.addEventListener("dragover", (e) => {
    e.preventDefault();
    els.dropzone.classList.add("is-over");
  });
  els.dropzone.addEventListener("dragleave", () => els.dropzone.classList.remove("is-over"));
  els.dropzone.addEventListener("drop", (e) => {
    e.preventDefault();
    els.dropzone.classList.remove("is-over");
    useFile(e.dataTransfer.files[0]);
  });
  document.addEventListener("paste", (e) => {
    const items = [...(e.clipboardData ? e.clipboardData.items : [])];
    const item = items.find((i) => i.kind === "file" && i.type.startsWith("image/"));
    if (!item) return;
    e.preventDefault();
    useFile(item.getAsFile());
  });
  els.cropReset.addEventListener("click", () => {
    stage.resetCrop();
    search();
  });
  els.clear.addEventListener("click", clearQuery);
  els.form.addEventListener("submit", (e) => {
    e.preventDefault();
    search();
  });
  const rerun = debounce(() => search(), 350);
  for (const { role } of ROLES) {
    $(`#w-${role}`).addEventListener("input", () => {
      syncSliderOutputs();
      savePrefs();
      rerun();
    });
  }
  els.textForm.addEventListener("submit", (e) => {
    e.preventDefault();
    const text = els.text.value.trim();
    if (!text) return;
    query = { kind: "text", text, name: `“${text}”` };
    stage.clear();
    showQuery(query.name);
    search();
  });
  els.k.addEventListener("change", () => {
    savePrefs();
    search();
  });
}

async function init() {
  const hasPrefs = loadPrefs();
  syncSliderOutputs();
  wire();
  // The Library page links here with ?image=<id> for "search with this image".
  const initial = new URLSearchParams(location.search).get("image");
  if (initial) {
    history.replaceState(null, "", location.pathname);
    api(`/api/v1/images/${encodeURIComponent(initial)}`).then(useLibraryImage).catch(showError);
  }
  const status = await loadStatus();
  if (!status) return;
  warnFallbacks(status);
  if (!hasPrefs) {
    for (const [role, value] of Object.entries(status.default_weights || {})) {
      const input = $(`#w-${role}`);
      if (input) input.value = value;
    }
    syncSliderOutputs();
  }
  // A model that is off has no vectors to weigh: its slider says so instead of doing nothing.
  activeRoles = new Set((status.models || []).map((m) => m.role));
  // Text search needs CLIP: without it the box would only ever answer an error.
  els.text.disabled = !activeRoles.has("clip");
  els.textOff.hidden = activeRoles.has("clip");
  for (const { role } of ROLES) {
    const slider = $(`.slider[data-role="${role}"]`);
    const on = activeRoles.has(role);
    slider.classList.toggle("is-off", !on);
    slider.querySelector("input").disabled = !on;
    if (!on) slider.querySelector("output").textContent = "off";
  }
}

/** Suggestions for the folder and tag filters, from the first page of the library. */
async function loadSuggestions() {
  try {
    const page = await api("/api/v1/images?limit=200");
    const folders = new Set();
    const tags = new Set();
    for (const image of itemsOf(page)) {
      for (const folder of image.folder || []) if (folder) folders.add(folder);
      for (const tag of image.tags || []) tags.add(tag);
    }
    $("#folder-options").replaceChildren(...[...folders].sort().map((f) => h("option", { value: f })));
    els.tags.placeholder = tags.size ? `e.g. ${[...tags].sort().slice(0, 2).join(", ")}` : els.tags.placeholder;
  } catch {
    // Suggestions only: the filters work without them.
  }
}

init().catch(showError);
loadSuggestions();
