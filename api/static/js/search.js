// The Search page: a query image (dropped, picked, pasted or taken from the library) or a
// sentence, an optional crop, weights and filters in; a grid of scored lookalikes out.
// A search by a library image or by text lives in the URL (so it can be shared, and Back
// works); an image from this computer does not (only its weights and filters do).

import { proofLine, proofOverlay } from "./proof.js";
import { api, apiSteps, itemsOf } from "./api.js";
import { CropStage } from "./crop.js";
import { openInspector, wireInspector } from "./inspect.js";
import {
  addFiles, addLibraryImage, appendMarks, clearMarks, downloadSheet, extras, markButtons, marks, marksJson,
  matchedLabel, renderTray, setCombine, severalRequest, showSheetActions, syncMarks, combine,
} from "./multi.js";
import { prepareQuery, uploadable } from "./shrink.js";
import { loadStatus, textSearchHint, warnFallbacks } from "./status.js";
import {
  $, ROLES, banner, clearFieldErrors, debounce, fieldError, guardWindowDrops, h, parseTags, percent, scoreBars,
  scoresByRole, switchedOn,
} from "./ui.js";

const page = $("#search-page");
const PREFS_KEY = "lookalike.search.prefs";
const DEFAULT_K = page.dataset.defaultK || "10";
const DEFAULT_TOLERANCE = page.dataset.defaultTolerance || "20";
const HEX = /^#?([0-9a-f]{6}|[0-9a-f]{3})$/i;
const PHONE = window.matchMedia("(max-width: 640px)");
const STALE_LINK = "That image is no longer in the library (the link may be old). Drop an image to search.";

const els = {
  inside: $("#inside"),
  dropzone: $("#dropzone"),
  empty: $("#dropzone-empty"),
  file: $("#query-file"),
  meta: $("#query-meta"),
  name: $("#query-name"),
  cropText: $("#query-crop"),
  cropReset: $("#crop-reset"),
  clear: $("#query-clear"),
  form: $("#search-form"),
  refine: $("#refine"),
  weights: $("#weights"),
  k: $("#k"),
  folder: $("#folder"),
  tags: $("#tags"),
  colour: $("#colour"),
  picker: $("#colour-picker"),
  colourTolerance: $("#colour-tolerance"),
  toleranceValue: $("#tolerance-value"),
  textForm: $("#text-form"),
  text: $("#query-text"),
  textOff: $("#text-off"),
  button: $("#search-btn"),
  grid: $("#results-grid"),
  resultsEmpty: $("#results-empty"),
  title: $("#results-title"),
  stats: $("#results-stats"),
  notice: $("#colour-notice"),
  noticeText: $("#colour-notice-text"),
  undo: $("#colour-undo"),
};
// The empty state's first words, for when the query is cleared.
const IDLE = {
  title: els.resultsEmpty.querySelector(".empty__title").textContent,
  text: els.resultsEmpty.querySelector(".empty__text").textContent,
};
const COLOUR_NAMES = new Set([...document.querySelectorAll("#colour-names option")].map((o) => o.value));

// What is being searched: {kind: "file", blob, name}, {kind: "id", id, name, blob?} or
// {kind: "text", text, name}.
let query = null;
let inFlight = null;
let activeRoles = new Set(ROLES.map((r) => r.role));
let undoColour = null; // what "More like this colour" replaced, until undone or superseded
let queryImages = null; // several query images: as the server numbers them, for "Matched image n"

const stage = new CropStage({
  container: els.dropzone,
  stage: $("#stage"),
  canvas: $("#stage-canvas"),
  crop: $("#crop"),
  onChange: (box) => showCrop(box),
  onCommit: () => search(),
});

class Problem extends Error {
  constructor(control, message) {
    super(message);
    this.control = control;
  }
}

function showCrop(box) {
  els.cropReset.hidden = !box;
  els.cropText.textContent = box
    ? `Crop ${box[2]} × ${box[3]} px at ${box[0]}, ${box[1]}`
    : stage.width
      ? `${sizeText()} · drag on the image to crop`
      : "No preview in this browser; the server can still read it";
}

/** The picture's size, as searched (and cropped): a large photo is reduced before upload. */
function sizeText() {
  const size = `${stage.width} × ${stage.height} px`;
  return query && query.shrunk ? `${size} (reduced for the search)` : size;
}

function weights() {
  const out = {};
  for (const { role } of ROLES) {
    if (activeRoles.has(role)) out[role] = Number($(`#w-${role}`).value);
  }
  return out;
}

function setWeights(values) {
  for (const [role, value] of Object.entries(values)) {
    const input = $(`#w-${role}`);
    if (input && Number.isFinite(Number(value))) input.value = value;
  }
  syncSliderOutputs();
}

/** '#c0392b' for a hex colour as typed (with or without '#', 3 or 6 digits), the name for a
 * CSS colour name, null for nothing; a Problem next to the field for anything else. */
function colourValue() {
  const raw = els.colour.value.trim();
  if (!raw) return null;
  const match = raw.match(HEX);
  if (match) {
    const digits = match[1].length === 3 ? [...match[1]].map((c) => c + c).join("") : match[1];
    return `#${digits.toLowerCase()}`;
  }
  const name = raw.toLowerCase().replace(/[\s-]/g, "");
  if (COLOUR_NAMES.has(name)) return name;
  throw new Problem(els.colour, `Colour must look like #a1b2c3 or a colour name such as teal; “${raw}” is neither.`);
}

/** A CSS colour (hex or name) as '#rrggbb', for the native picker; the browser knows the names. */
function asHex(colour) {
  const ctx = document.createElement("canvas").getContext("2d");
  if (!ctx) return null;
  ctx.fillStyle = "#000000";
  ctx.fillStyle = colour;
  return /^#[0-9a-f]{6}$/i.test(ctx.fillStyle) ? ctx.fillStyle : null;
}

function filters() {
  const out = {};
  const folder = els.folder.value.trim();
  const tags = parseTags(els.tags.value);
  if (folder) out.folders = [folder];
  if (tags.length) out.tags_any = tags;
  const colour = colourValue();
  if (colour) {
    out.colour = colour;
    out.colour_tolerance = Number(els.colourTolerance.value);
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
    setWeights(prefs.weights || {});
    return true;
  } catch {
    localStorage.removeItem(PREFS_KEY);
    return false;
  }
}

function syncSliderOutputs() {
  for (const { role } of ROLES) {
    const input = $(`#w-${role}`);
    const output = input.closest(".slider").querySelector("output");
    output.textContent = input.disabled ? "off" : Number(input.value).toFixed(2);
  }
  els.toleranceValue.textContent = `ΔE ${els.colourTolerance.value}`;
}

// ---------- The URL ----------

/** The page's search as a URL: query (library image or text), weights, k and filters. */
function stateUrl() {
  const q = new URLSearchParams();
  if (query && query.kind === "id") q.set("image", query.id);
  if (query && query.kind === "text") q.set("text", query.text);
  const ids = extras.filter((e) => e.kind === "id").map((e) => e.id);
  if (query && query.kind !== "text" && ids.length) q.set("images", ids.join(","));
  if (query && query.kind !== "text" && extras.length && combine() === "all") q.set("combine", "all");
  if (marks.liked.size) q.set("like", [...marks.liked].join(","));
  if (marks.disliked.size) q.set("dislike", [...marks.disliked].join(","));
  const w = Object.entries(weights()).map(([role, value]) => `${role}:${value}`);
  if (w.length) q.set("w", w.join(","));
  if (els.k.value !== DEFAULT_K) q.set("k", els.k.value);
  if (els.folder.value.trim()) q.set("folder", els.folder.value.trim());
  if (els.tags.value.trim()) q.set("tags", els.tags.value.trim());
  if (els.colour.value.trim()) {
    q.set("colour", els.colour.value.trim());
    q.set("tol", els.colourTolerance.value);
  }
  const text = q.toString();
  return `${location.pathname}${text ? `?${text}` : ""}`;
}

function remember() {
  const url = stateUrl();
  if (url !== location.pathname + location.search) history.pushState(null, "", url);
}

/** Sets the controls from the URL; returns the query it names (or null). */
function applyUrl() {
  const q = new URLSearchParams(location.search);
  for (const part of (q.get("w") || "").split(",").filter(Boolean)) {
    const [role, value] = part.split(":");
    setWeights({ [role]: value });
  }
  const k = q.get("k") || DEFAULT_K;
  if ([...els.k.options].some((o) => o.value === k)) els.k.value = k;
  els.folder.value = q.get("folder") || "";
  els.tags.value = q.get("tags") || "";
  els.colour.value = q.get("colour") || "";
  els.colourTolerance.value = q.get("tol") || DEFAULT_TOLERANCE;
  syncPicker();
  syncSliderOutputs();
  const list = (name) => (q.get(name) || "").split(",").filter(Boolean);
  extras.splice(0, extras.length, ...list("images").slice(0, 7).map((id) => ({ kind: "id", id, name: id.slice(0, 8) })));
  setCombine(q.get("combine"));
  marks.liked = new Set(list("like"));
  marks.disliked = new Set(list("dislike"));
  syncMarks();
  if (q.get("image")) return { kind: "id", id: q.get("image") };
  if (q.get("text")) return { kind: "text", text: q.get("text") };
  return null;
}

async function runUrl() {
  const wanted = applyUrl();
  if (!wanted) return;
  if (wanted.kind === "text") {
    els.text.value = wanted.text;
    useText(wanted.text, { push: false });
    return;
  }
  try {
    useLibraryImage(await api(`/api/v1/images/${encodeURIComponent(wanted.id)}`), { push: false });
  } catch (err) {
    // A mistyped id (400) or a deleted image (404): the server's sentence names a pattern or
    // an id, which means nothing to whoever followed the link.
    const gone = err.status === 400 || err.status === 404;
    fieldError(els.dropzone, gone || !err.detail ? STALE_LINK : err.detail);
  }
}

// ---------- Searching ----------

/** The request for the current query: JSON for a library image (the server crops its file
 * at full resolution) or text, multipart with the bytes for an image from this computer. */
function buildRequest() {
  const box = stage.cropBox();
  const k = Number(els.k.value);
  const w = weights();
  const f = filters();
  queryImages = null;
  if (query.kind === "text") {
    // Only CLIP reads text: the server weighs its block alone, so no weights are sent.
    return { json: { text: query.text, k, ...(f ? { filters: f } : {}), ...marksJson() } };
  }
  if (extras.length) {
    const json = { k, weights: w, ...(f ? { filters: f } : {}), ...marksJson() };
    const form = { k: String(k), weights: JSON.stringify(w), ...(f ? { filters: JSON.stringify(f) } : {}) };
    const { images, ...request } = severalRequest(query, box, { json, form });
    if (request.form) appendMarks(request.form);
    queryImages = images;
    return request;
  }
  if (query.kind === "id") {
    return {
      json: {
        image_id: query.id, k, weights: w, ...(f ? { filters: f } : {}), ...(box ? { box } : {}), ...marksJson(),
        ...(els.inside.checked ? { inside: true } : {}),
        ...(selfId() ? { exclude: [query.id] } : {}), // its own image at 100 % says nothing
      },
    };
  }
  const form = new FormData();
  form.append("image", query.blob, query.name);
  form.append("k", String(k));
  form.append("weights", JSON.stringify(w));
  if (f) form.append("filters", JSON.stringify(f));
  if (box) form.append("box", JSON.stringify(box));
  if (els.inside.checked) form.append("inside", "true");
  appendMarks(form);
  return { form };
}

/** The control an error from the server is about, from its sentence. */
function controlFor(detail) {
  const text = String(detail || "").toLowerCase();
  if (text.includes("tolerance") || text.includes("δe")) return els.colourTolerance;
  if (text.includes("colour")) return els.colour;
  if (text.includes("weight")) return els.weights;
  if (text.includes("number of results") || text.startsWith("k must")) return els.k;
  if (text.includes("text search") || (query && query.kind === "text")) return els.text;
  if (text.includes("images go into one search")) return $("#extra-images");
  if (text.includes("folder")) return els.folder;
  if (text.includes("tag")) return els.tags;
  return els.dropzone;
}

// For bench/browser_search.py only: `localStorage["lookalike.steps"] = "off"` waits for the
// whole answer in one request (the page before search steps), so the bench can time both
// ways in the same page. Harmless: the same search, its answer shown once.
const STEPS_KEY = "lookalike.steps";

async function search({ push = true } = {}) {
  if (!query) return;
  if (inFlight) inFlight.abort();
  clearFieldErrors(page);
  let request;
  try {
    request = buildRequest();
  } catch (err) {
    if (!(err instanceof Problem)) throw err;
    els.refine.open = true;
    fieldError(err.control, err.message);
    return;
  }
  if (push) remember();
  const controller = new AbortController();
  inFlight = controller;
  page.classList.remove("is-checking");
  page.classList.add("is-searching");
  els.button.disabled = true;
  try {
    if (switchedOn(STEPS_KEY)) {
      // A picture's ranking shows at once, then its best matches checked as copies.
      const answer = await apiSteps("/api/v1/search/stream", { signal: controller.signal, ...request }, (step) => {
        if (step.stage === "ranked" && inFlight === controller) render(step.result, { checking: true });
      });
      render(answer.result);
    } else {
      render(await api("/api/v1/search", { method: "POST", signal: controller.signal, ...request }));
    }
  } catch (err) {
    if (err.name === "AbortError") return;
    showFailure();
    const control = controlFor(err.detail);
    if (els.refine.contains(control)) els.refine.open = true;
    fieldError(control, err.detail || "The search failed.");
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
  const img = h("img.hit__img", { src: hit.thumbnail_url, alt: "", loading: "lazy", decoding: "async" });
  // No aria-label: the button's own text (name, score, the bars) is what it is called.
  const button = h("button.hit__button", { type: "button", title: `Inspect ${name}` },
    h("span.hit__thumb", {}, img, proofOverlay(hit),
      h("span.hit__rank", {}, String(rank)),
      dup ? h("span.badge.badge--dup.hit__badge", { "data-testid": "near-duplicate" }, "Near-duplicate") : null),
    h("span.hit__body", {},
      h("span.hit__row", {},
        h("span.hit__name", { title: name }, name),
        h("span.hit__score", { "data-testid": "score" }, percent(hit.score))),
      proofLine(hit),
      scoreBars(hit.byRole, { compact: true })));
  button.addEventListener("click", () =>
    openInspector(hit.id, { hit, onSearch: (image) => useLibraryImage(image), onChange: () => search({ push: false }) }));
  const add = query && query.kind !== "text"
    ? h("button.link-btn.hit__add", { type: "button", "data-testid": "add-to-query", onclick: () => addLibraryImage(hit, severalChanged) }, "Add to query")
    : null;
  return h("li.hit", { dataset: { id: hit.id, testid: "hit" } }, button, matchedLabel(hit, queryImages),
    h("span.hit__tools", {}, markButtons(hit), add), colourButton(hit));
}

/** "More like this colour": filter by the hit's dominant colour and weigh colour up; the
 * notice says what changed, and Undo puts the colour, weights and query back. */
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
      const before = { colour: els.colour.value, tolerance: els.colourTolerance.value, weights: weights(), query };
      els.colour.value = colour;
      syncPicker();
      setWeights(Object.fromEntries(ROLES.map(({ role }) => [role, role === "hsv" ? "1" : "0.2"])));
      useLibraryImage(hit);
      undoColour = before;
      const name = hit.filename || "this image";
      els.noticeText.textContent =
        `Now searching with ${name}, filtered to ${colour} (ΔE ${els.colourTolerance.value}), ` +
        `with ${weighedText()}.`;
      els.notice.hidden = false;
    },
  }, swatch, "More like this colour");
}

/** What "More like this colour" set, naming only the models that are on: "colour weighed 1
 * and shape 0.2" when meaning (CLIP) is off. */
function weighedText() {
  const others = ROLES.filter(({ role }) => role !== "hsv" && activeRoles.has(role)).map(({ label }) => label.toLowerCase());
  const parts = [activeRoles.has("hsv") ? "colour weighed 1" : null, others.length ? `${others.join(" and ")} 0.2` : null];
  return parts.filter(Boolean).join(" and ");
}

function undoColourChange() {
  const before = undoColour;
  if (!before) return;
  undoColour = null;
  els.notice.hidden = true;
  els.colour.value = before.colour;
  els.colourTolerance.value = before.tolerance;
  syncPicker();
  setWeights(before.weights);
  savePrefs();
  if (before.query && before.query.kind === "id") {
    useLibraryImage({ id: before.query.id, filename: before.query.name });
  } else if (before.query) {
    query = before.query;
    showQuery(query.name);
    search();
  }
}

/** The id of the library image searched with on its own ("Find similar images"): it would
 * come first at 100 %, which says nothing, so the results leave it out. Several query images
 * stay in: there each one's best match says which image matched. */
function selfId() {
  return query && query.kind === "id" && !extras.length ? query.id : null;
}

/** Why a search found nothing, and what to do about it. */
function emptyText() {
  if (hasFilters()) {
    return "Nothing in the library matches these filters. Clear the folder, tags or colour to search everything.";
  }
  if (selfId()) return "No other image in the library is like this one yet. Add images on the Library page.";
  return "The library is empty. Add images on the Library page (upload them, or put files in the library folder and re-index).";
}

function hasFilters() {
  return Boolean(els.folder.value.trim() || els.tags.value.trim() || els.colour.value.trim());
}

/** `checking`: the ranking by the vectors alone, shown while its best matches are verified. */
function render(result, { checking = false } = {}) {
  page.classList.toggle("is-checking", checking);
  if (checking) page.classList.remove("is-searching");
  els.grid.setAttribute("aria-busy", String(checking));
  const hits = result.hits || [];
  els.resultsEmpty.hidden = hits.length > 0;
  if (!hits.length) {
    els.resultsEmpty.querySelector(".empty__title").textContent = "No lookalikes found";
    els.resultsEmpty.querySelector(".empty__text").textContent = emptyText();
  }
  const models = result.models || {};
  els.grid.replaceChildren(...hits.map((hit, i) => card(hit, i + 1, models)));
  const timings = result.timings || {};
  const total = Object.values(timings).reduce((a, b) => a + (Number(b) || 0), 0);
  const dups = hits.filter((hit) => hit.near_duplicate).length;
  els.title.textContent = hits.length === 1 ? "1 lookalike" : `${hits.length} lookalikes`;
  showSheetActions(hits.length > 0);
  els.stats.textContent = checking && hits.length ? "Checking the best matches for copies…" : [
    dups ? `${dups} near-duplicate${dups === 1 ? "" : "s"}` : null,
    total ? `${Math.round(total)} ms` : null,
  ].filter(Boolean).join(" · ");
}

/** The page as it opened: no query, no results. */
function showIdle() {
  page.classList.remove("is-checking", "is-searching");
  els.grid.setAttribute("aria-busy", "false");
  els.grid.replaceChildren();
  els.resultsEmpty.hidden = false;
  els.resultsEmpty.querySelector(".empty__title").textContent = IDLE.title;
  els.resultsEmpty.querySelector(".empty__text").textContent = IDLE.text;
  els.title.textContent = "Results";
  els.stats.textContent = "";
  showSheetActions(false);
}

/** The previous query's hits would read as this query's: clear them when a search fails. */
function showFailure() {
  page.classList.remove("is-checking");
  els.grid.setAttribute("aria-busy", "false");
  els.grid.replaceChildren();
  els.resultsEmpty.hidden = false;
  els.resultsEmpty.querySelector(".empty__title").textContent = "No results for this query";
  els.resultsEmpty.querySelector(".empty__text").textContent = "The message beside the search controls says why.";
  els.title.textContent = "Results";
  els.stats.textContent = "";
  showSheetActions(false);
}

function showQuery(name) {
  els.name.textContent = name;
  els.meta.hidden = false;
  els.empty.hidden = true;
  els.dropzone.classList.add("has-image");
  els.button.disabled = false;
  renderTray(severalChanged, query && query.kind !== "text");
}

function newQuery() {
  // A query chosen by hand ends what "More like this colour" did: nothing left to undo;
  // and starts afresh: no extra query images, no marks.
  undoColour = null;
  els.notice.hidden = true;
  extras.splice(0, extras.length);
  clearMarks();
}

/** Query images added or removed: marks were for the old query's hits. */
function severalChanged() {
  clearMarks();
  renderTray(severalChanged, query && query.kind !== "text");
  search();
}

async function useFile(file) {
  if (!file) return;
  newQuery();
  if (file.type && !file.type.startsWith("image/")) {
    fieldError(els.dropzone, `${file.name} is not an image: choose a JPEG, PNG, WebP, GIF, BMP or TIFF file.`);
    return;
  }
  const chosen = { kind: "file", blob: file, name: file.name || "pasted image", shrunk: false };
  query = chosen;
  showQuery(chosen.name);
  // One decode serves the preview and the upload: a large photo goes as a <= 1280 px JPEG.
  const { blob, bitmap, shrunk } = await prepareQuery(file);
  if (query !== chosen) {
    if (bitmap) bitmap.close(); // another query was chosen meanwhile
    return;
  }
  Object.assign(chosen, { blob, shrunk });
  if (bitmap) stage.show(bitmap);
  else {
    // The browser cannot draw it (a TIFF, say): keep the drop target, the server may read it.
    stage.clear();
    els.empty.hidden = false;
    els.dropzone.classList.remove("has-image");
  }
  showCrop(null);
  search();
}

function useText(text, { push = true } = {}) {
  newQuery();
  query = { kind: "text", text, name: `“${text}”` };
  stage.clear();
  showQuery(query.name);
  search({ push });
}

/** "Find similar images": the server already has its vectors, so search by id at once. */
async function useLibraryImage(image, { push = true } = {}) {
  if (push) newQuery(); // from the URL (push false), the extra images and marks are the URL's
  const name = image.filename || image.id;
  query = { kind: "id", id: image.id, name };
  showQuery(name);
  stage.clear();
  search({ push });
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
  newQuery();
  query = null;
  stage.clear();
  els.meta.hidden = true;
  els.empty.hidden = false;
  els.dropzone.classList.remove("has-image");
  els.button.disabled = true;
  els.file.value = "";
  renderTray(severalChanged, false);
  clearFieldErrors(page);
  showIdle(); // the old hits would stay, their buttons searching a query that is gone
  remember();
}

function syncPicker() {
  let colour = null;
  try {
    colour = colourValue();
  } catch {
    return; // not a colour yet: the picker keeps its last one
  }
  const hex = colour && asHex(colour);
  if (hex) els.picker.value = hex;
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
  els.colourTolerance.addEventListener("input", syncSliderOutputs);
  els.picker.addEventListener("input", () => {
    els.colour.value = els.picker.value;
    fieldError(els.colour, null);
  });
  els.colour.addEventListener("change", syncPicker);
  els.textForm.addEventListener("submit", (e) => {
    e.preventDefault();
    const text = els.text.value.trim();
    if (!text) {
      fieldError(els.text, "Type a few words describing the image, e.g. a gold ring with a blue stone.");
      return;
    }
    useText(text);
  });
  els.k.addEventListener("change", () => {
    savePrefs();
    search();
  });
  els.undo.addEventListener("click", undoColourChange);
  $("#extra-file").addEventListener("change", async (e) => {
    const files = [...e.target.files];
    e.target.value = "";
    addFiles(await Promise.all(files.map(uploadable)), severalChanged);
  });
  for (const input of document.querySelectorAll('#combine input[name="combine"]')) {
    input.addEventListener("change", () => search());
  }
  $("#search-again").addEventListener("click", () => search());
  els.inside.addEventListener("change", () => { if (query && query.kind !== "text") search(); });
  for (const button of document.querySelectorAll("#sheet-actions button")) {
    button.addEventListener("click", async () => {
      if (!query) return;
      try {
        await downloadSheet(button.dataset.format, buildRequest());
      } catch (err) {
        fieldError($("#sheet-actions"), err.detail || err.message || "The contact sheet could not be made.");
      }
    });
  }
  window.addEventListener("popstate", () => {
    newQuery();
    if (!new URLSearchParams(location.search).has("image") && !new URLSearchParams(location.search).has("text")) {
      applyUrl();
      return;
    }
    runUrl();
  });
}

async function init() {
  // A phone shows the query and its results first; weights and filters open on a tap.
  if (PHONE.matches) els.refine.open = false;
  const hasPrefs = loadPrefs();
  syncSliderOutputs();
  wire();
  const status = await loadStatus();
  if (status) {
    warnFallbacks(status);
    if (!hasPrefs) setWeights(status.default_weights || {});
    // A model that is off has no vectors to weigh: its slider says so instead of doing nothing.
    activeRoles = new Set((status.models || []).map((m) => m.role));
    const hint = textSearchHint(status);
    els.text.disabled = Boolean(hint);
    els.textOff.hidden = !hint;
    els.textOff.textContent = hint || "";
    for (const { role } of ROLES) {
      const slider = $(`.slider[data-role="${role}"]`);
      const on = activeRoles.has(role);
      slider.classList.toggle("is-off", !on);
      slider.querySelector("input").disabled = !on;
    }
    syncSliderOutputs();
  }
  // The URL wins over the remembered preferences: it is what someone shared.
  await runUrl();
}

/** Suggestions for the folder and tag filters, from the first page of the library. */
async function loadSuggestions() {
  try {
    const result = await api("/api/v1/images?limit=200");
    const folders = new Set();
    const tags = new Set();
    for (const image of itemsOf(result)) {
      for (const folder of image.folder || []) if (folder) folders.add(folder);
      for (const tag of image.tags || []) tags.add(tag);
    }
    $("#folder-options").replaceChildren(...[...folders].sort().map((f) => h("option", { value: f })));
    els.tags.placeholder = tags.size ? `e.g. ${[...tags].sort().slice(0, 2).join(", ")}` : els.tags.placeholder;
  } catch {
    // Suggestions only: the filters work without them.
  }
}

init().catch((err) => banner("error", err.detail || err.message || "The page could not start."));
loadSuggestions();
