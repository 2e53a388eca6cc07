// The Library page: counts and models, upload with tags, re-index with live progress, and the
// most recently added images.

import { api, itemsOf } from "./api.js";
import { openInspector, wireInspector } from "./inspect.js";
import { fallbackModels, fallbackSentence, loadStatus } from "./status.js";
import { $, ROLES, banner, guardWindowDrops, h, parseTags, roleLabel, showError, toast } from "./ui.js";

const POLL_MS = 500;
const RECENT = 24;
const RECENT_SCAN = 500; // the API's largest page

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
  summary: $("#upload-summary"),
  tags: $("#upload-tags"),
  upload: $("#upload-btn"),
  results: $("#upload-results"),
  reindex: $("#reindex-btn"),
  progress: $("#reindex-progress"),
  bar: $("#reindex-bar"),
  progressText: $("#reindex-text"),
  recent: $("#recent-grid"),
  recentEmpty: $("#recent-empty"),
  recentStats: $("#recent-stats"),
};

let chosen = [];

function renderStatus(status) {
  els.dirs.textContent = status.library_dir ? `Indexing ${status.library_dir}` : "";
  els.points.textContent = Number(status.points || 0).toLocaleString();
  els.backend.textContent = status.backend || "–";
  const mirror = status.mirror || {};
  els.mirror.textContent = mirror.points !== undefined ? Number(mirror.points).toLocaleString() : "–";
  const lag = Number(status.mirror_lag || 0);
  els.lag.textContent = lag ? `${lag.toLocaleString()} behind` : "in sync";
  els.lag.classList.toggle("is-behind", lag > 0);
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

function recentCard(image) {
  const name = image.filename || (image.paths && image.paths[0]) || image.id;
  const thumb = image.thumbnail_url || `/api/v1/images/${encodeURIComponent(image.id)}/thumbnail`;
  const button = h("button.hit__button", { type: "button", "aria-label": `Inspect ${name}` },
    h("span.hit__thumb", {}, h("img.hit__img", { src: thumb, alt: name, loading: "lazy", decoding: "async" })),
    h("span.hit__body", {},
      h("span.hit__row", {}, h("span.hit__name", { title: name }, name)),
      image.tags && image.tags.length ? h("span.hit__tags", {}, image.tags.join(", ")) : null));
  button.addEventListener("click", () =>
    openInspector(image.id, {
      onSearch: (img) => location.assign(`/?image=${encodeURIComponent(img.id)}`),
    }));
  return h("li.hit", { dataset: { id: image.id } }, button);
}

async function refreshRecent() {
  try {
    // The list comes in id order (stable pages); the newest are found among the first
    // RECENT_SCAN, which is every image in all but large libraries.
    const page = await api(`/api/v1/images?limit=${RECENT_SCAN}`);
    const images = itemsOf(page)
      .sort((a, b) => String(b.added_at || "").localeCompare(String(a.added_at || "")))
      .slice(0, RECENT);
    els.recent.replaceChildren(...images.map(recentCard));
    els.recentEmpty.hidden = images.length > 0;
    const total = page && !Array.isArray(page) ? Number(page.total) : images.length;
    els.recentStats.textContent = total ? `${images.length} of ${total.toLocaleString()}` : "";
  } catch (err) {
    showError(err, "recent");
  }
}

function choose(files) {
  chosen = [...files].filter((f) => !f.type || f.type.startsWith("image/"));
  const skipped = files.length - chosen.length;
  els.summary.textContent = chosen.length
    ? `${chosen.length} image${chosen.length === 1 ? "" : "s"} ready${skipped ? ` (${skipped} not images, skipped)` : ""}`
    : "Drop images here, or";
  els.upload.disabled = chosen.length === 0;
}

function uploadOutcome(result) {
  const done = Array.isArray(result) ? result : result.images || result.items || result.uploaded || [];
  const failed = (!Array.isArray(result) && (result.failed || result.errors)) || [];
  return { done, failed };
}

async function upload(event) {
  event.preventDefault();
  if (!chosen.length) return;
  const form = new FormData();
  for (const file of chosen) form.append("files", file, file.name);
  const tags = parseTags(els.tags.value);
  if (tags.length) form.append("tags", tags.join(","));
  els.upload.disabled = true;
  els.upload.textContent = "Uploading…";
  try {
    const { done, failed } = uploadOutcome(await api("/api/v1/images", { method: "POST", form }));
    banner("error", null);
    els.results.replaceChildren(
      ...done.map((img) => h("li.file.file--ok", {}, h("span.file__name", {}, img.filename || img.id), h("span.file__state", {}, "indexed"))),
      ...failed.map((f) => h("li.file.file--bad", {}, h("span.file__name", {}, f.filename || f.name || ""), h("span.file__state", {}, f.detail || f.reason || "failed"))),
    );
    toast(`${done.length} image${done.length === 1 ? "" : "s"} added${failed.length ? `, ${failed.length} failed` : ""}.`,
      failed.length ? "warn" : "ok");
    els.files.value = "";
    choose([]);
    await Promise.all([refreshStatus(), refreshRecent()]);
  } catch (err) {
    showError(err);
    els.upload.disabled = false;
  } finally {
    els.upload.textContent = "Upload and index";
  }
}

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
    await Promise.all([refreshStatus(), refreshRecent()]);
  } catch (err) {
    els.progress.hidden = true;
    showError(err);
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
    showError(err);
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
}

wire();
refreshStatus().then((status) => {
  // A re-index started elsewhere (another tab, the CLI's API call) shows its progress here too.
  const job = status && status.job;
  if (job && (job.state === "queued" || job.state === "running")) follow(job.id);
});
refreshRecent();
