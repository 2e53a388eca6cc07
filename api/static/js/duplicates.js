// The Duplicates page: runs GET /api/v1/duplicates at a threshold and shows each group's images
// with their scores; a click opens the inspector, whose "search" goes to the search page.

import { api } from "./api.js";
import { openInspector, wireInspector } from "./inspect.js";
import { $, fieldError, h, percent } from "./ui.js";

const els = {
  page: $("#duplicates-page"),
  form: $("#dup-form"),
  threshold: $("#dup-threshold"),
  value: $("#dup-threshold-value"),
  run: $("#dup-run"),
  stats: $("#dup-stats"),
  groups: $("#dup-groups"),
  empty: $("#dup-empty"),
};

function member(m) {
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
      onChange: () => run(Number(els.threshold.value)),
    }));
  return h("li.hit", { dataset: { id: m.id } }, button);
}

function group(g, i) {
  return h("section.dup-group", { "data-testid": "dup-group" },
    h("h2.results__title", {}, `Group ${i + 1} · ${g.size} files · best ${percent(g.score)}`),
    h("ol.grid.grid--compact", {}, g.members.map(member)));
}

// threshold null: the server's default, the calibrated one (the same the search page's
// near-duplicate badge uses); the slider then shows it.
async function run(threshold) {
  els.run.disabled = true;
  fieldError(els.threshold, null);
  els.stats.textContent = "Comparing every image with every other…";
  try {
    const t0 = performance.now();
    const query = threshold === null ? "" : `?threshold=${threshold}`;
    const report = await api(`/api/v1/duplicates${query}`);
    els.threshold.value = report.threshold;
    els.value.textContent = percent(report.threshold);
    els.groups.replaceChildren(...report.groups.map(group));
    els.empty.hidden = report.groups.length > 0;
    const files = report.groups.reduce((n, g) => n + g.size, 0);
    els.stats.textContent = `${report.groups.length} groups, ${files} files, at ${percent(report.threshold)} ` +
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
  els.form.addEventListener("submit", (event) => { event.preventDefault(); run(Number(els.threshold.value)); });
  run(asked === null || asked === "" || Number.isNaN(Number(asked)) ? null : Number(asked));
}

init();
