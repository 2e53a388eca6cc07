// GET /api/v1/status, and the sentences a person must see about the models: a model on
// fallback weights (results still come, but mean less than with the configured model), and
// why text search is off.

import { api } from "./api.js";
import { banner, roleLabel, showError } from "./ui.js";

export async function loadStatus() {
  try {
    return await api("/api/v1/status");
  } catch (err) {
    showError(err, "status");
    return null;
  }
}

export function fallbackModels(status) {
  return ((status && status.models) || []).filter((m) => m.fallback);
}

/** What happened and what fixes it; the server's reason says both in plain words. */
export function fallbackSentence(model) {
  const why = model.reason ? ` ${String(model.reason).replace(/\.?$/, ".")}` : "";
  return `${roleLabel(model.role)} uses the bundled ${model.name} instead of the configured model.${why}`;
}

/** Why the text box is off (a sentence), or null when text search works. */
export function textSearchHint(status) {
  const roles = (status && status.roles) || [];
  const clip = roles.find((r) => r.role === "clip");
  if (!clip || clip.name) return null;
  if (clip.fallback) {
    return `Text search needs the CLIP model, which could not be loaded here. ${String(clip.reason || "").replace(/\.?$/, ".")}`;
  }
  return "Text search needs the CLIP model, which is turned off here (LOOKALIKE_CLIP_WEIGHTS=off). " +
    "To search by text, remove that setting (the default downloads the weights once) and restart.";
}

/** On pages other than Library: one compact banner naming every model on fallback; once
 * dismissed it stays dismissed until the message changes. */
export function warnFallbacks(status) {
  const models = fallbackModels(status);
  if (!models.length) return;
  banner("fallback", `${models.map(fallbackSentence).join(" ")} The Library page has details.`, "warn");
}
