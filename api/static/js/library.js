// The Library page: counts and models, uploads (one request per file, a few at a time, each
// with its own progress and answer), re-index with live progress, and a paginated grid of
// every image, filtered by folder, tag and format, whose state lives in the URL.

import { Uppy, XHRUpload } from "../vendor/uppy/uppy.min.mjs";
import { api, csrfHeaderName, csrfToken, itemsOf } from "./api.js";
import { openInspector, wireInspector } from "./inspect.js";
import { fallbackModels, fallbackSentence, loadStatus } from "./status.js";
import {
  $, ROLES, clearFieldErrors, fieldError, formatBytes, guardWindowDrops, h, parseTags, roleLabel, showError, toast,
} from "./ui.js";

const POLL_MS = 500;
const PAGE_SIZE = 48;
const IN_FLIGHT = 3; // uploads at once: enough to keep the link busy, few enough to keep order
const page = $("#library-page");
const MAX_MB = Number(page.dataset.maxUploadMb) || 200;

const els = {
  dirs: $("#library-dirs"),
  warnings: $("#fallback-warnings"),
  points: $("#stat-points"),
  backend: $("#stat-backend"),
  mirror: $("#stat-mirror"),
  lag: $("#stat-lag"),
  modelCount: $("#stat-models"),
  models: $("#models"),
  form: $("#upload-form"),
  drop: $("#upload-drop"),
  files: $("#upload-files"),
  chosen: $("#upload-chosen"),
  tags: $("#upload-tags"),
  upload: $("#upload-btn"),
  results: $("#upload-results"),
  summary: $("#upload-summary"),
  reindex: $("#reindex-btn"),
  progress: $("#reindex-progress"),
  bar: $("#reindex-bar"),
  progressText: $("#reindex-text"),
  browseForm: $("#browse-form"),
  folder: $("#browse-folder"),
  tag: $("#browse-tag"),
  format: $("#browse-format"),
  clear: $("#browse-clear"),
  grid: $("#browse-grid"),
  empty: $("#browse-empty"),
  emptyText: $("#browse-empty-text"),
  emptyClear: $("#browse-empty-clear"),
  count: $("#browse-count"),
  pager: $("#pager"),
  prev: $("#pager-prev"),
  next: $("#pager-next"),
  pagerText: $("#pager-text"),
};

function renderStatus(status) {
  els.dirs.textContent = status.library_dir ? `Library folder: ${status.library_dir}` : "";
  els.points.textContent = Number(status.points || 0).toLocaleString();
  els.backend.textContent = status.backend || "–";
  const mode = status.search_mode || {};
  if (status.mirror) {
    els.mirror.textContent = Number(status.mirror.points).toLocaleString();
    const lag = Number(status.mirror_lag || 0);
    els.lag.textContent = lag ? `${lag.toLocaleString()} behind` : "in sync";
    els.lag.classList.toggle("is-behind", lag > 0);
  } else {  // Qdrant serves searches: this server keeps no mirror
    els.mirror.textContent = "Qdrant";
    els.lag.textContent = "searched directly";
    els.lag.classList.remove("is-behind");
  }
  els.lag.title = mode.reason || "";
  const models = status.models || [];
  els.modelCount.textContent = String(models.length);

  els.warnings.replaceChildren(
    ...fallbackModels(status).map((m) =>
      h("div.warning", { role: "alert", "data-testid": "fallback-warning" },
        h("strong", {}, "Fallback weights. "), fallbackSentence(m))),
  );
  // Every role gets a row, in a fixed order; one with no active model says "off", so
  // "why is there no Meaning score?" has an answer on this page.
  const byRole = Object.fromEntries(models.map((m) => [m.role, m]));
  const roles = [...ROLES.map((r) => r.role), ...models.map((m) => m.role).filter((r) => !ROLES.some((x) => x.role === r))];
  els.models.replaceChildren(
    ...roles.map((role) => {
      const m = byRole[role];
      if (!m) {
        return h("li.model.is-off", {}, h("span.dot"), h("span.model__role", {}, roleLabel(role)),
          h("span.model__name", {}, "off"), h("span.model__weights", {}, "not in use"));
      }
      return h(`li.model${m.fallback ? ".is-fallback" : ""}`, { "data-testid": `model-${role}` },
        h(`span.dot.dot--${role}`),
        h("span.model__role", {}, roleLabel(role)),
        h("span.model__name", {}, m.name),
        h("span.model__weights", {}, weightsLabel(m)));
    }),
  );
}

function weightsLabel(model) {
  const weights = model.weights === "none" || !model.weights ? "no weights to load" : `${model.weights} weights`;
  return model.fallback ? `fallback · ${weights}` : weights;
}

async function refreshStatus() {
  const status = await loadStatus();
  if (status) renderStatus(status);
  return status;
}

// ---------- Uploads ----------

// Uppy's own log would repeat in the console what each file's row already says.
const quiet = { debug() {}, warn() {}, error() {} };
const uppy = new Uppy({ autoProceed: false, allowMultipleUploadBatches: true, logger: quiet });
uppy.use(XHRUpload, {
  endpoint: "/api/v1/images",
  fieldName: "files",
  formData: true,
  bundle: false, // one request per file: no request is ever larger than one file
  limit: IN_FLIGHT,
  allowedMetaFields: ["tags"],
  headers: () => ({ Accept: "application/json", [csrfHeaderName()]: csrfToken() }),
  shouldRetry: () => false, // an answer is final: "exists" or "rejected" would not change
  timeout: 0, // a large file may take a while to index once sent: that is not a stall
  getResponseData: (xhr) => JSON.parse(xhr.responseText || "{}"),
});

const rows = new Map(); // uppy file id -> its row
const tally = { added: 0, exists: 0, rejected: 0 };

function row(name, size) {
  const bar = h("span.file__bar");
  const el = h("li.file", { "data-testid": "upload-file" },
    h("span.file__name", { title: name }, name),
    h("span.file__size", {}, formatBytes(size)),
    h("span.file__state", { "data-testid": "upload-state" }, "Waiting"),
    h("span.file__track", { "aria-hidden": "true" }, bar));
  els.results.append(el);
  return el;
}

function settle(el, status, text, link) {
  el.className = `file file--${status === "added" ? "ok" : status === "exists" ? "exists" : "bad"}`;
  el.dataset.status = status;
  const state = el.querySelector(".file__state");
  state.replaceChildren(text);
  if (link) state.append(" ", link);
  el.querySelector(".file__bar").style.width = "100%";
  tally[status] += 1;
}

/** One file's answer: added, exists (with a link to that image) or rejected (why). */
function showResult(el, result) {
  if (!result) {
    settle(el, "rejected", "The server gave no answer for this file.");
  } else if (result.status === "added") {
    settle(el, "added", "Added");
  } else if (result.status === "exists") {
    const link = h("a.file__link", { href: `/library?image=${encodeURIComponent(result.id)}`, "data-testid": "exists-link" }, "View it");
    settle(el, "exists", "Already in the library.", link);
  } else {
    settle(el, "rejected", result.detail || "Not added.");
  }
}

function choose(fileList) {
  const files = [...fileList];
  els.summary.textContent = "";
  for (const file of files) {
    const el = row(file.name, file.size);
    if (file.size > MAX_MB * 1024 * 1024) {
      // Refused here at once, with the numbers: sending it would only be refused later.
      settle(el, "rejected", `Too large: ${formatBytes(file.size)}; the limit is ${MAX_MB} MB per file.`);
      continue;
    }
    try {
      const id = uppy.addFile({ name: file.name, type: file.type || "application/octet-stream", data: file, source: "Local" });
      rows.set(id, el);
    } catch (err) {
      settle(el, "rejected", "Chosen twice: it is already in this list.");
    }
  }
  const waiting = uppy.getFiles().filter((f) => !f.progress.uploadComplete).length;
  els.chosen.textContent = waiting ? `${waiting} image${waiting === 1 ? "" : "s"} ready to upload` : "Drop images here, or";
  els.upload.disabled = waiting === 0;
  els.files.value = "";
}

uppy.on("upload-progress", (file, progress) => {
  const el = rows.get(file.id);
  if (!el || !progress.bytesTotal) return;
  const share = progress.bytesUploaded / progress.bytesTotal;
  el.querySelector(".file__bar").style.width = `${(share * 100).toFixed(1)}%`;
  el.querySelector(".file__state").textContent = share < 1 ? `Uploading ${Math.round(share * 100)}%` : "Indexing…";
});

uppy.on("upload-success", (file, response) => {
  const el = rows.get(file.id);
  if (el) showResult(el, ((response && response.body && response.body.results) || [])[0]);
});

uppy.on("upload-error", (file, error, xhr) => {
  const el = rows.get(file.id);
  if (!el) return;
  let body = null;
  try {
    body = JSON.parse((xhr && xhr.responseText) || "null");
  } catch {
    // Not JSON (a proxy's page): a plain sentence below.
  }
  if (body && Array.isArray(body.results) && body.results.length) {
    showResult(el, body.results[0]);
  } else if (body && body.detail) {
    settle(el, "rejected", body.detail);
  } else {
    const status = xhr && xhr.status;
    settle(el, "rejected", status ? `The server answered ${status}.` : "The server cannot be reached. Check that Lookalike is running.");
  }
});

uppy.on("complete", async () => {
  const parts = [
    tally.added ? `${tally.added} added` : null,
    tally.exists ? `${tally.exists} already in the library` : null,
    tally.rejected ? `${tally.rejected} not added` : null,
  ].filter(Boolean);
  els.summary.textContent = parts.length ? `${parts.join(", ")}.` : "";
  tally.added = tally.exists = tally.rejected = 0; // the next batch counts afresh
  uppy.cancelAll();
  rows.clear();
  els.upload.disabled = true;
  els.upload.textContent = "Upload and index";
  els.chosen.textContent = "Drop images here, or";
  await Promise.all([refreshStatus(), loadPage()]);
});

function upload(event) {
  event.preventDefault();
  clearFieldErrors(els.form);
  let tags;
  try {
    tags = parseTags(els.tags.value);
    const bad = tags.find((t) => t.length > 64);
    if (bad) throw new Error(`A tag can have at most 64 characters; "${bad.slice(0, 20)}…" has ${bad.length}.`);
  } catch (err) {
    fieldError(els.tags, err.message);
    return;
  }
  if (!uppy.getFiles().length) return;
  uppy.setMeta({ tags: tags.join(",") });
  els.upload.disabled = true;
  els.upload.textContent = "Uploading…";
  uppy.upload().catch((err) => showError(err));
}

// ---------- Browsing ----------

function readUrl() {
  const q = new URLSearchParams(location.search);
  return {
    page: Math.max(1, Number.parseInt(q.get("page") || "1", 10) || 1),
    folder: q.get("folder") || "",
    tag: q.get("tag") || "",
    format: q.get("format") || "",
    image: q.get("image") || "",
  };
}

function writeUrl(state, { push = true } = {}) {
  const q = new URLSearchParams();
  if (state.page > 1) q.set("page", String(state.page));
  for (const key of ["folder", "tag", "format", "image"]) if (state[key]) q.set(key, state[key]);
  const url = `${location.pathname}${q.toString() ? `?${q}` : ""}`;
  if (url === location.pathname + location.search) return;
  history[push ? "pushState" : "replaceState"](null, "", url);
}

let view = readUrl();

function card(image) {
  const name = image.filename || (image.paths && image.paths[0]) || image.id;
  // No aria-label: the button is called by its visible text (axe: label-content-name-mismatch).
  const button = h("button.hit__button", { type: "button", title: `Inspect ${name}` },
    h("span.hit__thumb", {}, h("img.hit__img", { src: image.thumbnail_url, alt: "", loading: "lazy", decoding: "async" })),
    h("span.hit__body", {},
      h("span.hit__row", {}, h("span.hit__name", { title: name }, name)),
      image.tags && image.tags.length ? h("span.hit__tags", {}, image.tags.join(", ")) : null));
  button.addEventListener("click", () => inspect(image.id));
  return h("li.hit", { dataset: { id: image.id, testid: "library-item" } }, button);
}

function inspect(id) {
  view.image = id;
  writeUrl(view, { push: false });
  openInspector(id, {
    onSearch: (img) => location.assign(`/?image=${encodeURIComponent(img.id)}`),
    onChange: (img, { deleted }) => {
      if (deleted) view.image = "";
      writeUrl(view, { push: false });
      refreshStatus();
      loadPage();
    },
  });
}

async function loadPage() {
  const q = new URLSearchParams({ offset: String((view.page - 1) * PAGE_SIZE), limit: String(PAGE_SIZE) });
  if (view.folder) q.set("folder", view.folder);
  if (view.tag) q.set("tag", view.tag);
  if (view.format) q.set("format", view.format);
  try {
    const result = await api(`/api/v1/images?${q}`);
    const items = itemsOf(result);
    const total = Number(result.total) || 0;
    const pages = Math.max(1, Math.ceil(total / PAGE_SIZE));
    if (view.page > pages) {
      view.page = pages;
      writeUrl(view, { push: false });
      return loadPage();
    }
    els.grid.replaceChildren(...items.map(card));
    els.empty.hidden = items.length > 0;
    const first = (view.page - 1) * PAGE_SIZE + 1;
    const filtered = Boolean(view.folder || view.tag || view.format);
    els.emptyText.textContent = filtered
      ? "No image matches these filters."
      : "No images here yet. Add some above, or put files in the library folder and re-index.";
    els.emptyClear.hidden = !filtered;
    els.count.textContent = total
      ? `${total.toLocaleString()} image${total === 1 ? "" : "s"}${filtered ? " match" : ""}` +
        (pages > 1 ? ` · showing ${first}–${first + items.length - 1}` : "")
      : filtered ? "No image matches these filters" : "";
    els.pager.hidden = pages <= 1;
    els.pagerText.textContent = `Page ${view.page} of ${pages}`;
    els.prev.disabled = view.page <= 1;
    els.next.disabled = view.page >= pages;
  } catch (err) {
    fieldError(els.folder, err.detail || "The images could not be listed.");
  }
}

function syncForm() {
  els.folder.value = view.folder;
  els.tag.value = view.tag;
  els.format.value = view.format;
}

async function loadSuggestions() {
  try {
    const result = await api("/api/v1/images?limit=500");
    const folders = new Set();
    const tags = new Set();
    for (const image of itemsOf(result)) {
      for (const folder of image.folder || []) if (folder) folders.add(folder);
      for (const tag of image.tags || []) tags.add(tag);
    }
    $("#browse-folders").replaceChildren(...[...folders].sort().map((f) => h("option", { value: f })));
    $("#browse-tags").replaceChildren(...[...tags].sort().map((t) => h("option", { value: t })));
  } catch {
    // Suggestions only: the filters work without them.
  }
}

// ---------- Re-index ----------

function jobProgress(job) {
  const p = job.progress || job;
  const done = Number(p.done ?? p.completed ?? 0);
  const total = Number(p.total ?? 0);
  const stage = p.stage || job.stage || "";
  const state = String(job.state || job.status || "running").toLowerCase(); // queued|running|done|failed
  return { done, total, stage, state, error: job.detail || job.error || "" };
}

/** Polls a job until it ends, drawing its progress; resolves when it is done. */
async function follow(id) {
  els.reindex.disabled = true;
  els.progress.hidden = false;
  els.bar.style.width = "0%";
  els.bar.classList.add("is-indeterminate");
  els.progressText.textContent = "Starting…";
  try {
    for (;;) {
      const p = jobProgress(await api(`/api/v1/jobs/${encodeURIComponent(id)}`));
      const known = p.total > 0;
      els.bar.classList.toggle("is-indeterminate", !known && p.state !== "done");
      if (known) els.bar.style.width = `${Math.min(100, (100 * p.done) / p.total).toFixed(1)}%`;
      const stage = p.stage ? `${p.stage[0].toUpperCase()}${p.stage.slice(1)}` : p.state === "queued" ? "Queued" : "Working";
      els.progressText.textContent = known ? `${stage}: ${p.done.toLocaleString()} of ${p.total.toLocaleString()}` : `${stage}…`;
      if (p.state === "done") {
        els.bar.classList.remove("is-indeterminate");
        els.bar.style.width = "100%";
        els.progressText.textContent = "Re-index finished.";
        toast("Library re-indexed.", "ok");
        break;
      }
      if (p.state === "failed") throw { detail: p.error || "The re-index failed." };
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
    await Promise.all([refreshStatus(), loadPage()]);
  } catch (err) {
    els.progress.hidden = true;
    fieldError(els.reindex, err.detail || "The re-index failed.");
  } finally {
    els.bar.classList.remove("is-indeterminate");
    els.reindex.disabled = false;
  }
}

async function reindex() {
  els.reindex.disabled = true;
  try {
    const job = await api("/api/v1/reindex", { method: "POST", json: {} });
    await follow(job.id || job.job_id);
  } catch (err) {
    fieldError(els.reindex, err.detail || "The re-index could not start.");
    els.reindex.disabled = false;
  }
}

function wire() {
  guardWindowDrops();
  wireInspector();
  els.files.addEventListener("change", () => choose(els.files.files));
  els.drop.addEventListener("dragover", (e) => {
    e.preventDefault();
    els.drop.classList.add("is-over");
  });
  els.drop.addEventListener("dragleave", () => els.drop.classList.remove("is-over"));
  els.drop.addEventListener("drop", (e) => {
    e.preventDefault();
    els.drop.classList.remove("is-over");
    choose(e.dataTransfer.files);
  });
  els.form.addEventListener("submit", upload);
  els.reindex.addEventListener("click", reindex);
  els.browseForm.addEventListener("submit", (e) => {
    e.preventDefault();
    view = { page: 1, folder: els.folder.value.trim(), tag: els.tag.value.trim(), format: els.format.value, image: "" };
    writeUrl(view);
    loadPage();
  });
  els.clear.addEventListener("click", clearFilters);
  els.emptyClear.addEventListener("click", clearFilters);
  els.prev.addEventListener("click", () => turn(-1));
  els.next.addEventListener("click", () => turn(1));
  window.addEventListener("popstate", () => {
    view = readUrl();
    syncForm();
    loadPage();
  });
}

function clearFilters() {
  view = { page: 1, folder: "", tag: "", format: "", image: "" };
  syncForm();
  writeUrl(view);
  loadPage();
}

function turn(step) {
  view.page += step;
  view.image = "";
  writeUrl(view);
  loadPage();
  els.grid.scrollIntoView({ block: "start", behavior: "smooth" });
}

wire();
syncForm();
refreshStatus().then((status) => {
  // A re-index started elsewhere (another tab, the CLI through the server) shows here too.
  const job = status && status.job;
  if (job && (job.state === "queued" || job.state === "running")) follow(job.id);
});
loadPage();
loadSuggestions();
if (view.image) inspect(view.image); // a link to one image ("already in the library")
