// Copy verification on a result card: the server checked the hit against the query's local
// features and found them in the same layout (engine/verification.py). The card says so in
// the server's sentence ("312 matching points, same layout: a copy") and outlines the
// matched region on the thumbnail, in the hit's own pixels.
import { h } from "./ui.js";

const SVG = "http://www.w3.org/2000/svg";

/** Under the name: a "Verified copy" badge (or "Likely copy" for a thumbnail query's
 * layout match, which is no proof) and the server's sentence. */
export function proofLine(hit) {
  if (!hit.verified) return null;
  const v = hit.verified;
  const label = v.method === "thumbnail" ? "Likely copy" : v.mirrored ? "Mirrored copy" : "Verified copy";
  return h("span.hit__proof", {},
    h("span.badge.badge--copy", { "data-testid": "verified" }, label),
    " ", h("span", { "data-testid": "proof" }, hit.verified.sentence));
}

/** The matched region over the thumbnail (drawn like the image: contained, centred). */
export function proofOverlay(hit) {
  const poly = hit.verified && hit.verified.hit_polygon;
  if (!poly || poly.length < 3 || !hit.width || !hit.height) return null;
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", "hit__region");
  svg.setAttribute("viewBox", `0 0 ${hit.width} ${hit.height}`);
  svg.setAttribute("preserveAspectRatio", "xMidYMid meet");
  svg.setAttribute("aria-hidden", "true");
  svg.dataset.testid = "matched-region";
  const shape = document.createElementNS(SVG, "polygon");
  shape.setAttribute("points", poly.map(([x, y]) => `${x},${y}`).join(" "));
  shape.setAttribute("vector-effect", "non-scaling-stroke");
  svg.append(shape);
  return svg;
}
