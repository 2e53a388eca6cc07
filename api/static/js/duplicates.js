// The Duplicates page: runs GET /api/v1/duplicates at a threshold and shows each group's images
// with their scores; a click opens the inspector, whose "search" goes to the search page.
// Each group can be marked (Not duplicates, Keep all, Keep this one); the marks are kept by the
// server, and one button deletes the others in every group marked "keep this one". An image
// stored at several paths (identical files) can keep one file: the others go to the trash.

import { api } from "./api.js";
import { openInspector, wireInspector } from "./inspect.js";
import { $, fieldError, h, percent, toast } from "./ui.js";

const els = {
  page: $("#duplicates-page"),
  form: $("#dup-form"),
  threshold: $("#dup-threshold"),
  value: $("#dup-threshold-value"),
  all: $("#dup-all"),
  run: $("#dup-run"),
  stats: $("#dup-stats"),
  groups: $("#dup-groups"),
  empty: $("#dup-empty"),
  apply: $("#dup-apply"),
  csv: $("#dup-csv"),
  confirm: $("#dup-confirm"),
  files: $("#dup-files"),
};
const KIND = { exact: "Exact copy", copy: "Verified copy", similar: "Similar" };
let shown = { threshold: null, groups: [] };

function query(extra = {}) {
  const params = new URLSearchParams(extra);
  if (shown.threshold !== null) params.set("threshold", shown.threshold);
  const text = params.toString();
  return text ? `?${text}` : "";
}

function rerun() {
  return run(Number(els.threshold.value));
}

function member(m, g) {
  const name = m.filename || m.paths[0] || m.id;
  const exact = m.paths.length > 1 ? `${m.paths.length} identical files` : null;
  // No aria-label: the button is called by its visible text (axe: label-content-name-mismatch).
  const button = h("button.hit__button", { type: "button", title: `Inspect ${name}` },
    h("span.hit__thumb", {}, h("img.hit__img", { src: m.thumbnail_url, alt: "", loading: "lazy", decoding: "async" })),
    h("span.hit__body", {},
      h("span.hit__row", {},
        h("span.hit__name", { title: m.paths.join("\n") }, name),
        h("span.hit__score", { "data-testid": "dup-score" }, percent(m.score))),
      exact ? h("span.hit__tags", {}, exact) : null));
  button.addEventListener("click", () =>
    openInspector(m.id, {
      onSearch: (img) => location.assign(`/?image=${encodeURIComponent(img.id)}`),
      onChange: rerun,
    }));
  // One image at several paths: its extra files can go, whatever the group decides.
  const files = m.paths.length > 1
    ? h("button.btn.btn--ghost.btn--sm.dup-files", {
      type: "button",
      title: `${name} is stored ${m.paths.length} times: keep one file, trash the others`,
      "data-testid": "dup-keep-file",
    }, "Keep one file…")
    : null;
  if (files) files.addEventListener("click", () => chooseFile(m));
  // A group of one image (an exact copy alone) has no other image to delete: its files
  // are the whole question.
  if (g.members.length === 1) return h("li.hit", { dataset: { id: m.id } }, button, files);
  const keep = h("button.btn.btn--secondary.dup-keep", {
    type: "button",
    title: `Keep ${name}, delete the others of this group`,
    "aria-pressed": String(g.decision === "keep_one" && g.kept === m.id),
    "data-testid": "dup-keep",
  }, "Keep this one");
  keep.addEventListener("click", () => decide(g, "keep_one", m.id, keep));
  return h("li.hit", { dataset: { id: m.id } }, button, keep, files);
}

/** Keep one of an image's identical files: DELETE /api/v1/images/{id}/files for the rest. */
function chooseFile(m) {
  const list = $("#dup-files-list");
  list.replaceChildren(list.querySelector("legend"), ...m.paths.map((path, i) =>
    h("label.dup-files__item", {},
      h("input", { type: "radio", name: "keep-file", value: path, checked: i === 0 }),
      h("span.path", {}, path))));
  els.files.onclose = async () => {
    if (els.files.returnValue !== "apply") return;
    const kept = list.querySelector("input:checked").value;
    const gone = m.paths.filter((path) => path !== kept);
    try {
      for (const path of gone) {
        await api(`/api/v1/images/${encodeURIComponent(m.id)}/files?path=${encodeURIComponent(path)}`,
          { method: "DELETE" });
      }
      toast(`Kept ${kept}; ${plural(gone.length, "file")} moved to the trash.`, "ok", 9000);
      await rerun();
    } catch (err) {
      // The page is drawn again below: the sentence goes in a toast, not beside the button.
      toast(err.detail || "The files could not be moved to the trash.", "error", 9000);
      await rerun();
    }
  };
  els.files.returnValue = "";
  els.files.showModal();
}

function state(g) {
  const kept = g.members.find((m) => m.id === g.kept);
  if (g.decision === "not_duplicates") return "Marked: not duplicates";
  if (g.decision === "keep_all") return "Marked: keep all";
  if (g.decision === "keep_one") return `Keeping ${kept ? kept.filename : "one"}; the others go on delete`;
  return g.reopened ? "New image since it was marked: review it again" : "";
}

function group(g, i) {
  const notDup = h("button.btn.btn--ghost", { type: "button", "data-testid": "dup-not" }, "Not duplicates");
  const keepAll = h("button.btn.btn--ghost", { type: "button", "data-testid": "dup-keep-all" }, "Keep all");
  notDup.addEventListener("click", () => decide(g, "not_duplicates", null, notDup));
  keepAll.addEventListener("click", () => decide(g, "keep_all", null, keepAll));
  const sheet = h("a.btn.btn--ghost", {
    href: `/api/v1/duplicates/sheet${query({ group: g.signature, format: "pdf" })}`,
    download: `duplicates-${g.signature.slice(0, 8)}.pdf`,
    "data-testid": "dup-sheet",
  }, "Contact sheet");
  const decided = g.decision ? ".dup-group--decided" : "";
  return h(`section.dup-group${decided}`, { "data-testid": "dup-group", dataset: { signature: g.signature } },
    h("div.dup-group__head", {},
      h("h2.results__title", {}, `Group ${i + 1} · ${plural(g.size, "file")} · best ${percent(g.score)}`),
      h(`span.badge.badge--${g.kind}`, { "data-testid": "dup-kind" }, KIND[g.kind] || g.kind),
      h("span.dup-group__state", { "data-testid": "dup-state" }, state(g))),
    h("div.dup-group__actions", {}, notDup, keepAll, sheet),
    h("ol.grid.grid--compact", {}, g.members.map((m) => member(m, g))));
}

async function decide(g, decision, kept, control) {
  fieldError(control, null);
  const body = { members: g.members.map((m) => m.id), decision, signature: g.signature };
  if (kept) body.kept = kept;
  if (shown.threshold !== null) body.threshold = shown.threshold;
  try {
    await api("/api/v1/duplicates/decisions", { method: "POST", json: body });
    await rerun();
  } catch (err) {
    if (err.status === 409) await rerun();
    const again = document.querySelector(`[data-signature="${g.signature}"] [data-testid="${control.dataset.testid}"]`);
    fieldError(again || control, err.detail || "The decision could not be saved.");
  }
}

const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

/** "1 image", or "3 files (2 images)" when an image is stored at several paths: deleting an
 * image moves every one of its files to the trash. */
function howMany(images, files) {
  return files > images ? `${plural(files, "file")} (${plural(images, "image")})` : plural(images, "image");
}

function showBulk(groups) {
  const pending = groups.filter((g) => g.decision === "keep_one");
  const going = pending.flatMap((g) => g.members.filter((m) => m.id !== g.kept));
  els.apply.hidden = pending.length === 0;
  els.apply.textContent = `Delete the others in ${plural(pending.length, "group")}`;
  els.apply.dataset.images = String(going.length);
  els.apply.dataset.files = String(going.reduce((n, m) => n + Math.max(1, m.paths.length), 0));
}

function confirmApply() {
  const images = Number(els.apply.dataset.images || 0);
  const files = Number(els.apply.dataset.files || 0);
  $("#dup-confirm-text").textContent =
    `${howMany(images, files)} will leave the library, keeping the one you chose in each ` +
    "group. The files move to the trash folder of the data directory.";
  els.confirm.onclose = async () => {
    if (els.confirm.returnValue !== "apply") return;
    fieldError(els.apply, null);
    try {
      const body = { confirm: true };
      if (shown.threshold !== null) body.threshold = shown.threshold;
      const result = await api("/api/v1/duplicates/apply", { method: "POST", json: body });
      const files = result.deleted.reduce((n, d) => n + Math.max(1, (d.paths || []).length), 0);
      toast(`${howMany(result.deleted.length, files)} deleted.`, "ok");
      await rerun();
    } catch (err) {
      fieldError(els.apply, err.detail || "The images could not be deleted.");
    }
  };
  els.confirm.returnValue = "";
  els.confirm.showModal();
}

// threshold null: the server's default, the calibrated one (the same the search page's
// near-duplicate badge uses); the slider then shows it.
async function run(threshold) {
  els.run.disabled = true;
  fieldError(els.threshold, null);
  els.stats.textContent = "Comparing every image with every other…";
  try {
    const t0 = performance.now();
    const params = new URLSearchParams();
    if (threshold !== null) params.set("threshold", threshold);
    if (els.all.checked) params.set("include_dismissed", "true");
    const report = await api(`/api/v1/duplicates${params.toString() ? `?${params}` : ""}`);
    shown = { threshold: threshold === null ? null : report.threshold, groups: report.groups };
    els.threshold.value = report.threshold;
    els.value.textContent = percent(report.threshold);
    els.groups.replaceChildren(...report.groups.map(group));
    els.empty.hidden = report.groups.length > 0;
    els.csv.href = `/api/v1/duplicates.csv${query()}`;
    showBulk(report.groups);
    const files = report.groups.reduce((n, g) => n + g.size, 0);
    const hidden = report.hidden ? `, ${report.hidden} dismissed hidden` : "";
    els.stats.textContent = `${plural(report.groups.length, "group")}, ${plural(files, "file")}, at ${percent(report.threshold)}${hidden} ` +
      `(${Math.round(performance.now() - t0)} ms)`;
  } catch (err) {
    els.stats.textContent = "";
    fieldError(els.threshold, err.detail || "The duplicates could not be found.");
  } finally {
    els.run.disabled = false;
  }
}

function init() {
  wireInspector();
  const asked = new URLSearchParams(location.search).get("threshold");
  els.threshold.addEventListener("input", () => { els.value.textContent = percent(Number(els.threshold.value)); });
  els.form.addEventListener("submit", (event) => { event.preventDefault(); rerun(); });
  els.all.addEventListener("change", rerun);
  els.apply.addEventListener("click", confirmApply);
  run(asked === null || asked === "" || Number.isNaN(Number(asked)) ? null : Number(asked));
}

init();
