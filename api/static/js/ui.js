// Small DOM helpers shared by the pages. Elements are built with textContent, never innerHTML,
// so a filename or tag can never inject markup.

export const ROLES = [
  { role: "clip", label: "Meaning" },
  { role: "cnn", label: "Shape" },
  { role: "hsv", label: "Colour" },
];

export function roleLabel(role) {
  const found = ROLES.find((r) => r.role === role);
  return found ? found.label : role;
}

/** h("div.card", {attrs}, child, "text", ...) -> HTMLElement */
export function h(tagAndClasses, attrs = {}, ...children) {
  const [tag, ...classes] = tagAndClasses.split(".");
  const el = document.createElement(tag || "div");
  if (classes.length) el.className = classes.join(" ");
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "text") el.textContent = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function $(selector, root = document) {
  return root.querySelector(selector);
}

export function toast(message, kind = "info", ms = 4500) {
  const box = $("#toasts");
  if (!box) return;
  const el = h(`div.toast.toast--${kind}`, { role: kind === "error" ? "alert" : "status" }, message);
  box.append(el);
  setTimeout(() => el.classList.add("is-leaving"), ms);
  setTimeout(() => el.remove(), ms + 400);
}

const DISMISSED = "lookalike.dismissed.";

function fingerprint(text) {
  let hash = 0;
  for (const ch of String(text)) hash = (hash * 31 + ch.codePointAt(0)) | 0;
  return String(hash);
}

/**
 * A compact banner at the top of the page, replaced when shown again with the same key.
 * Warnings stay dismissed (per message, in this browser) once closed; errors are shown
 * next to their control instead (fieldError), so a banner is for what belongs to no control.
 */
export function banner(key, message, kind = "error") {
  const stack = $("#banners");
  if (!stack) return;
  const old = stack.querySelector(`[data-key="${key}"]`);
  if (old) old.remove();
  if (!message) return;
  const remember = kind !== "error";
  if (remember && localStorage.getItem(DISMISSED + key) === fingerprint(message)) return;
  const close = h("button.icon-btn.icon-btn--sm", { type: "button", "aria-label": "Dismiss" }, "×");
  const el = h(`div.banner.banner--${kind}`, { role: kind === "error" ? "alert" : "status", dataset: { key } },
    h("span.banner__text", {}, message), close);
  close.addEventListener("click", () => {
    if (remember) localStorage.setItem(DISMISSED + key, fingerprint(message));
    el.remove();
  });
  stack.append(el);
}

export function showError(err, key = "error") {
  if (err && err.name === "AbortError") return;
  const message = (err && (err.detail || err.message)) || "Something went wrong.";
  banner(key, message, "error");
}

/**
 * An error shown where the eye is: right under the control that caused it, announced to
 * screen readers (aria-live), tied to the control (aria-describedby) and scrolled into view.
 */
export function fieldError(control, message) {
  if (!control) return;
  const id = `${control.id || control.dataset.errorId || "field"}-error`;
  let box = document.getElementById(id);
  if (!message) {
    if (box) box.remove();
    control.removeAttribute("aria-invalid");
    return;
  }
  if (!box) {
    box = h("p.field__error", { id, role: "alert", "aria-live": "assertive" });
    const anchor = control.closest(".field, fieldset, .dropzone") || control;
    anchor.after(box);
  }
  box.textContent = message;
  control.setAttribute("aria-invalid", "true");
  control.setAttribute("aria-describedby", id);
  box.scrollIntoView({ block: "nearest", behavior: "smooth" });
}

/** Clears every field error inside `root`. */
export function clearFieldErrors(root = document) {
  for (const box of root.querySelectorAll(".field__error")) box.remove();
  for (const el of root.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
}

export function percent(score) {
  const value = Math.max(0, Math.min(1, Number(score) || 0));
  return `${Math.round(value * 100)}%`;
}

export function formatBytes(n) {
  if (n === undefined || n === null) return "";
  const units = ["B", "KB", "MB", "GB"];
  let value = Number(n);
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value < 10 && unit ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}

export function formatDate(value) {
  if (value === undefined || value === null || value === "") return "";
  // Payload times are either ISO strings or Unix seconds.
  const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  return date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

export function parseTags(text) {
  return String(text || "")
    .split(",")
    .map((t) => t.trim())
    .filter(Boolean);
}

/** Per-model score bars: one labelled row per role the server scored. */
export function scoreBars(scores, { compact = false } = {}) {
  const list = h(`ul.bars${compact ? ".bars--compact" : ""}`);
  for (const { role, label } of ROLES) {
    if (!scores || scores[role] === undefined || scores[role] === null) continue;
    const value = Math.max(0, Math.min(1, Number(scores[role])));
    const fill = h(`span.bar__fill.bar__fill--${role}`);
    fill.style.width = `${(value * 100).toFixed(1)}%`;
    list.append(
      h("li.bar", { title: `${label}: ${percent(value)}` },
        h("span.bar__label", {}, label),
        h("span.bar__track", {}, fill),
        h("span.bar__value", {}, percent(value))),
    );
  }
  return list;
}

/** The roles a search answer scored, keyed by role even if the server keyed them by model name. */
export function scoresByRole(hit, models) {
  const scores = hit.scores || {};
  const out = {};
  const nameToRole = {};
  for (const [role, name] of Object.entries(models || {})) nameToRole[name] = role;
  for (const [key, value] of Object.entries(scores)) out[nameToRole[key] || key] = value;
  return out;
}

/** A switch the benchmarks flip in localStorage: on unless set to "off" (or storage is blocked). */
export function switchedOn(key) {
  try {
    return localStorage.getItem(key) !== "off";
  } catch {
    return true;
  }
}

export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

/** Stop the browser from opening a file dropped outside a drop zone. */
export function guardWindowDrops() {
  for (const type of ["dragover", "drop"]) {
    window.addEventListener(type, (event) => {
      if (event.dataTransfer && [...event.dataTransfer.types].includes("Files")) event.preventDefault();
    });
  }
}
