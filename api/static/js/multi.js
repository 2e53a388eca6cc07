// A query of several images and relevance feedback on the Search page (issue 17).
// `extras` are the query images after the first (files from this computer or library
// images), combined with it by "any" or "all"; `marks` are the hits marked Like or Dislike,
// which "Search again" sends so the next search moves toward the liked ones.
// Library images, the marks and "all" live in the URL; files from this computer do not.

import { api } from "./api.js";
import { $, fieldError, h } from "./ui.js";

export const MAX_IMAGES = 8;

export const extras = [];  // {kind: "file", blob, name} | {kind: "id", id, name}
export const marks = { liked: new Set(), disliked: new Set() };

const els = {
  tray: $("#extra-images"),
  list: $("#extra-list"),
  add: $("#extra-file"),
  addLabel: $("#extra-add"),
  combine: $("#combine"),
  again: $("#search-again"),
  marksText: $("#marks-text"),
  sheet: $("#sheet-actions"),
};

export function combine() {
  const chosen = els.combine.querySelector("input:checked");
  return chosen ? chosen.value : "any";
}

export function setCombine(value) {
  const input = els.combine.querySelector(`input[value="${value === "all" ? "all" : "any"}"]`);
  if (input) input.checked = true;
}

/** Query images in the order the server numbers them (uploads, then library images): the
 * first is the page's own query, with its crop box. */
export function ordered(primary, box) {
  const all = [{ ...primary, box }, ...extras.map((e) => ({ ...e, box: null }))];
  return [...all.filter((q) => q.kind === "file"), ...all.filter((q) => q.kind === "id")];
}

/** The several-images request, JSON when every image is in the library, else multipart. */
export function severalRequest(primary, box, common) {
  const images = ordered(primary, box);
  const ids = images.filter((q) => q.kind === "id").map((q) => q.id);
  const boxes = images.map((q) => q.box || null);
  const crops = boxes.some(Boolean) ? { boxes } : {};
  if (images.every((q) => q.kind === "id")) {
    return { images, json: { ...common.json, image_ids: ids, combine: combine(), ...crops } };
  }
  const form = new FormData();
  for (const q of images) if (q.kind === "file") form.append("images", q.blob, q.name);
  for (const id of ids) form.append("image_ids", id);
  for (const [name, value] of Object.entries(common.form)) form.append(name, value);
  form.append("combine", combine());
  if (crops.boxes) form.append("boxes", JSON.stringify(boxes));
  return { images, form };
}

/** liked/disliked for a JSON body ({} when nothing is marked). */
export function marksJson() {
  const out = {};
  if (marks.liked.size) out.liked = [...marks.liked];
  if (marks.disliked.size) out.disliked = [...marks.disliked];
  return out;
}

export function appendMarks(form) {
  for (const id of marks.liked) form.append("liked", id);
  for (const id of marks.disliked) form.append("disliked", id);
}

export function clearMarks() {
  marks.liked.clear();
  marks.disliked.clear();
  syncMarks();
}

export function syncMarks() {
  const n = marks.liked.size + marks.disliked.size;
  els.again.hidden = n === 0;
  els.marksText.textContent = n
    ? `${marks.liked.size} liked, ${marks.disliked.size} disliked: search again to refine.`
    : "";
}

// A thumb drawn in SVG, not an emoji: a machine without an emoji font shows an empty box.
const THUMB = "M2 9h3v11H2zM7 20h9.5a2 2 0 0 0 2-1.6l1.4-7A2 2 0 0 0 18 9h-5l.8-4a1.6 1.6 0 0 0-3-1L7 9z";

function thumb(down) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 22 24");
  svg.setAttribute("width", "14");
  svg.setAttribute("height", "14");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("class", "hit__thumb");
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", THUMB);
  path.setAttribute("fill", "currentColor");
  if (down) path.setAttribute("transform", "translate(0 24) scale(1 -1)");
  svg.append(path);
  return svg;
}

/** Like and Dislike buttons for a hit: pressed state is the mark; a second press unmarks. */
export function markButtons(hit) {
  const button = (kind, icon, label) => {
    const el = h(`button.chip-btn.hit__mark.hit__mark--${kind}`, {
      type: "button",
      "aria-pressed": String(marks[kind].has(hit.id)),
      "data-testid": kind === "liked" ? "like" : "dislike",
    }, icon, label);
    el.addEventListener("click", () => {
      const other = kind === "liked" ? "disliked" : "liked";
      if (marks[kind].has(hit.id)) marks[kind].delete(hit.id);
      else {
        marks[kind].add(hit.id);
        marks[other].delete(hit.id);
      }
      const row = el.parentElement;
      for (const b of row.querySelectorAll(".hit__mark")) {
        const k = b.classList.contains("hit__mark--liked") ? "liked" : "disliked";
        b.setAttribute("aria-pressed", String(marks[k].has(hit.id)));
      }
      syncMarks();
    });
    return el;
  };
  return h("span.hit__marks", {}, button("liked", thumb(false), "Like"), button("disliked", thumb(true), "Dislike"));
}

/** "Matched image 2": which query image a hit matched best, when there are several. */
export function matchedLabel(hit, images) {
  if (hit.matched_query === null || hit.matched_query === undefined || !images) return null;
  const q = images[hit.matched_query];
  const name = q ? q.name : "";
  return h("span.hit__matched", { "data-testid": "matched", title: name },
    `Matched image ${hit.matched_query + 1}${name ? `: ${name}` : ""}`);
}

/** The tray of extra query images: a thumbnail and a Remove button each. */
export function renderTray(onChange, hasPrimary) {
  els.list.replaceChildren(...extras.map((q, i) => {
    const img = h("img.extra__img", { alt: "", src: q.blob ? URL.createObjectURL(q.blob) : `/api/v1/images/${q.id}/thumbnail` });
    const remove = h("button.link-btn", { type: "button", onclick: () => { extras.splice(i, 1); onChange(); } }, `Remove ${q.name}`);
    return h("li.extra", { "data-testid": "extra-image" }, img, h("span.extra__name", {}, `${i + 2}. ${q.name}`), remove);
  }));
  els.tray.hidden = !hasPrimary || extras.length === 0;
  els.addLabel.hidden = !hasPrimary;
  els.add.disabled = !hasPrimary || extras.length >= MAX_IMAGES - 1;
}

export function addFiles(files, onChange) {
  for (const file of files) {
    if (extras.length >= MAX_IMAGES - 1) {
      fieldError(els.tray.hidden ? els.addLabel : els.tray, `At most ${MAX_IMAGES} images go into one search: remove one to add another.`);
      break;
    }
    extras.push({ kind: "file", blob: file, name: file.name || "pasted image" });
  }
  onChange();
}

export function addLibraryImage(image, onChange) {
  if (extras.length >= MAX_IMAGES - 1) {
    fieldError(els.tray, `At most ${MAX_IMAGES} images go into one search: remove one to add another.`);
    return;
  }
  if (!extras.some((q) => q.id === image.id)) {
    extras.push({ kind: "id", id: image.id, name: image.filename || image.id });
  }
  onChange();
}

/** Downloads the contact sheet of the current search (the same request, as PDF or PNG). */
export async function downloadSheet(format, request) {
  const blob = await api(`/api/v1/search/sheet?format=${format}`, { method: "POST", blob: true, ...request });
  const url = URL.createObjectURL(blob);
  const link = h("a", { href: url, download: `lookalike-results.${format}` });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export function showSheetActions(visible) {
  els.sheet.hidden = !visible;
}
