// GET /api/v1/status, and the warning a person must see when a model runs on fallback weights:
// results still come back, but they mean less than they would with the configured model.

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

export function fallbackSentence(model) {
  const why = model.reason ? ` ${String(model.reason).replace(/\.?$/, ".")}` : "";
  return `${roleLabel(model.role)} model runs on fallback weights (${model.name}, ${model.weights}).${why}`;
}

/** On pages other than Library: one dismissible banner naming every model on fallback. */
export function warnFallbacks(status) {
  const models = fallbackModels(status);
  if (!models.length) return;
  banner("fallback", `${models.map(fallbackSentence).join(" ")} See the Library page for details.`, "warn");
}
