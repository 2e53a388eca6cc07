// The inspector: one image large, its metadata, and "search with this image".
// Shared by the Search and Library pages; the page passes what "search with this" does.

import { api } from "./api.js";
import { proofLine, proofOverlay } from "./proof.js";
import { $, fieldError, formatBytes, formatDate, h, parseTags, percent, scoreBars, toast } from "./ui.js";

const dialog = () => $("#inspect");

function row(label, value) {
  if (value === undefined || value === null || value === "" || (Array.isArray(value) && !value.length)) {
    return [];
  }
  return [h("dt", {}, label), h("dd", {}, value)];
}

function tagChips(tags) {
  if (!tags || !tags.length) return null;
  return h("span.chips", {}, tags.map((t) => h("span.chip", {}, t)));
}

function pathList(paths) {
  if (!paths || !paths.length) return null;
  return h("span.paths", {}, paths.map((p) => h("code.path", {}, p)));
}

function folders(image) {
  const list = Array.isArray(image.folder) ? image.folder : [image.folder];
  return list.filter((f) => f !== undefined && f !== null).map((f) => f || "(library root)").join(", ");
}

function fill(image, hit) {
  const name = image.filename || (image.paths && image.paths[0]) || image.id;
  $("#inspect-title").textContent = name;
  const eyebrow = $("#inspect-eyebrow");
  eyebrow.replaceChildren();
  // A verified copy: the matched region over the image, and the proof in words.
  const figure = $("#inspect-img").parentElement;
  for (const old of figure.querySelectorAll(".hit__region")) old.remove();
  const region = hit && proofOverlay({ ...hit, width: hit.width || image.width, height: hit.height || image.height });
  if (region) {
    region.classList.add("inspect__region");
    figure.append(region);
  }
  if (hit) {
    eyebrow.append(h("span.score-pill", {}, `${percent(hit.score)} match`));
    if (hit.near_duplicate) eyebrow.append(h("span.badge.badge--dup", {}, "Near-duplicate"));
  } else {
    eyebrow.textContent = folders(image) || "Library image";
  }

  const scores = $("#inspect-scores");
  scores.replaceChildren();
  scores.hidden = !hit;
  if (hit) scores.append(...[proofLine(hit), scoreBars(hit.byRole)].filter(Boolean));

  const size = image.width && image.height ? `${image.width} × ${image.height} px` : "";
  const format = [String(image.format || "").toUpperCase(), formatBytes(image.bytes)].filter(Boolean).join(" · ");
  $("#inspect-meta").replaceChildren(
    ...row("Size", size),
    ...row("Format", format),
    ...row((image.folder || []).length > 1 ? "Folders" : "Folder", folders(image)),
    ...row("Tags", tagChips(image.tags)),
    ...row(image.paths && image.paths.length > 1 ? "Paths" : "Path", pathList(image.paths)),
    ...row("Modified", formatDate(image.mtime)),
    ...row("Added", formatDate(image.added_at)),
    ...row("Id", h("code.id", {}, image.id)),
  );

  const palette = $("#inspect-palette");
  palette.replaceChildren();
  const colours = (image.palette || []).map((c) => (typeof c === "string" ? c : c && (c.hex || c.color)));
  palette.hidden = !colours.filter(Boolean).length;
  for (const colour of colours.filter(Boolean)) {
    const sw = h("span.swatch", { title: colour });
    sw.style.background = colour;
    palette.append(sw);
  }
}

/**
 * Opens the inspector for image `id`. `hit` (optional) is the search hit it came from, so the
 * scores that made it match stay in view; `onSearch(image)` runs "find similar images";
 * `onChange(image, {deleted})` (optional) turns on tag editing and delete, and is told after
 * either. Delete asks first, then removes the file, the point and its search-index row
 * (DELETE /api/v1/images/{id}, the same use case as the API).
 */
let showing = null; // the id on screen, so a slow answer for an earlier one is dropped

export async function openInspector(id, { hit = null, onSearch = null, onChange = null } = {}) {
  showing = id;
  const el = dialog();
  const img = $("#inspect-img");
  const base = hit || { id };
  img.removeAttribute("src");
  img.alt = base.filename || "";
  if (base.thumbnail_url) img.src = base.thumbnail_url; // something to look at while the full file loads
  fill(base, hit);
  const searchBtn = $("#inspect-search");
  searchBtn.hidden = !onSearch;
  let image = base;
  // Bound before the dialog shows: a click while the metadata loads searches this image
  // (by id), never the one inspected before.
  searchBtn.onclick = onSearch
    ? () => {
        el.close();
        onSearch(image);
      }
    : null;
  wireEdits(() => image, onChange, (updated) => {
    image = { ...image, ...updated };
    fill(image, hit);
  });
  if (!el.open) el.showModal();

  try {
    image = { ...base, ...(await api(`/api/v1/images/${encodeURIComponent(id)}`)) };
    if (showing !== id) return;
    fill(image, hit);
    $("#inspect-tags").value = (image.tags || []).join(", ");
  } catch (err) {
    fieldError($("#inspect-title"), err.detail || "This image could not be read.");
  }
  const fileUrl = image.file_url || `/api/v1/images/${encodeURIComponent(id)}/file`;
  const full = new Image();
  full.onload = () => {
    if (dialog().open && showing === id) img.src = fileUrl;
  };
  full.src = fileUrl;
  $("#inspect-open").href = fileUrl;
}

function wireEdits(current, onChange, update) {
  const form = $("#inspect-tags-form");
  const input = $("#inspect-tags");
  const remove = $("#inspect-delete");
  form.hidden = !onChange;
  remove.hidden = !onChange;
  fieldError(input, null);
  input.value = (current().tags || []).join(", ");
  form.onsubmit = async (event) => {
    event.preventDefault();
    const image = current();
    try {
      const saved = await api(`/api/v1/images/${encodeURIComponent(image.id)}`, {
        method: "PATCH",
        json: { tags: parseTags(input.value) },
      });
      fieldError(input, null);
      update(saved);
      input.value = (saved.tags || []).join(", ");
      toast("Tags saved.", "ok");
      onChange(saved, { deleted: false });
    } catch (err) {
      fieldError(input, err.detail || "The tags could not be saved.");
    }
  };
  remove.onclick = () => confirmDelete(current(), onChange);
}

function confirmDelete(image, onChange) {
  const confirm = $("#confirm-delete");
  const name = image.filename || image.id;
  const copies = (image.paths || []).length;
  $("#confirm-text").textContent =
    `${name}${copies > 1 ? ` and its ${copies - 1} other cop${copies === 2 ? "y" : "ies"}` : ""} ` +
    "will leave the library: the file moves to the trash folder of the data directory, and " +
    "searches no longer find it.";
  confirm.onclose = async () => {
    if (confirm.returnValue !== "delete") return;
    try {
      await api(`/api/v1/images/${encodeURIComponent(image.id)}`, { method: "DELETE" });
      dialog().close();
      toast(`${name} deleted.`, "ok");
      onChange(image, { deleted: true });
    } catch (err) {
      fieldError($("#inspect-delete"), err.detail || "The image could not be deleted.");
    }
  };
  confirm.returnValue = "";
  confirm.showModal();
}

export function wireInspector() {
  const el = dialog();
  if (!el) return;
  $("#inspect-close").addEventListener("click", () => el.close());
  // A click on the backdrop (the dialog element itself, outside its frame) closes it.
  el.addEventListener("click", (event) => {
    if (event.target === el) el.close();
  });
}
