// A query image is shrunk in the page before it is uploaded (issue 16): a phone's 12 MP photo
// is 3-5 MB on the wire and a full decode on the server, while the models look at 224 px.
// Only search queries pass through here; the Library page uploads originals untouched.
//
// QUERY_MAX_SIDE is 1280 px on the longer side: well above the models' 224 px (even for a
// crop of a fifth of the picture), about the ~1024 px that verification by local features
// wants (issue 18), and about what the crop stage shows on a laptop screen (its canvas is at
// most ~700 CSS px wide, 1400 device px at 2x). A 4000 x 3000 photo goes as 1000 x 750 where
// the browser's JPEG decoder scales while decoding (a 1/8 step, see decodeReduced), else as
// 1280 x 960: 0.15-0.3 MB as a JPEG at quality 0.9, instead of ~3 MB.
//
// The decode applies EXIF orientation once; the JPEG we encode carries no EXIF,
// so the server sees the picture upright, as the crop stage shows it. Crop boxes are in the
// pixels of the image that is sent (the stage draws that very bitmap), so they need no scaling.

import { switchedOn } from "./ui.js";

export const QUERY_MAX_SIDE = 1280;
const QUALITY = 0.9;
// Below this a file goes as it is, whatever its size in pixels: it uploads in moments, and
// re-encoding would only lose detail (a PNG screenshot, say).
const SMALL_BYTES = 300_000;
// For bench/browser_search.py only: `localStorage["lookalike.shrink"] = "off"` sends the
// originals, so the bench can time both paths in the same page. Harmless: the server then
// answers exactly as it did before the page shrank queries.
const SWITCH_KEY = "lookalike.shrink";

/** Decodes `file` once, upright. Resolves to {blob, bitmap, shrunk}:
 * - blob: what to upload, a JPEG File of at most `maxSide` px when the file was large, else
 *   the file itself;
 * - bitmap: the decoded picture in the pixels of `blob` (the crop stage draws it), or null
 *   when this browser cannot decode the file (a TIFF, say: the server may still read it);
 * - shrunk: whether blob is a smaller copy rather than the file. */
export async function prepareQuery(file, { maxSide = QUERY_MAX_SIDE } = {}) {
  const shrink = file.size > SMALL_BYTES && switchedOn(SWITCH_KEY);
  const picture = (shrink && (await decodeReduced(file, maxSide))) || (await decodeWhole(file));
  if (!picture) return { blob: file, bitmap: null, shrunk: false };
  const { source, width, height, reduced } = picture;
  const side = Math.max(width, height);
  if (!reduced && (!shrink || side <= maxSide)) return { blob: file, bitmap: source, shrunk: false };
  const scale = Math.min(1, maxSide / side);
  const w = Math.max(1, Math.round(width * scale));
  const h = Math.max(1, Math.round(height * scale));
  try {
    const canvas = makeCanvas(w, h);
    const ctx = canvas.getContext("2d");
    // JPEG has no alpha: composite on white, as the server does with a transparent image.
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(0, 0, w, h);
    ctx.imageSmoothingEnabled = true;
    ctx.imageSmoothingQuality = "high";
    ctx.drawImage(source, 0, 0, w, h);
    const [jpeg, bitmap] = await Promise.all([toJpeg(canvas), createImageBitmap(canvas)]);
    source.close(); // a 12 MP bitmap holds 48 MB
    // The name stays the user's (the server reads the bytes, not the name's extension).
    return { blob: new File([jpeg], file.name || "query.jpg", { type: "image/jpeg" }), bitmap, shrunk: true };
  } catch {
    // No canvas to encode with (a very old browser): the original goes, as before.
    if (reduced) source.close();
    return { blob: file, bitmap: reduced ? null : source, shrunk: false };
  }
}

/** A JPEG decoded straight at a reduced size by WebCodecs' ImageDecoder: libjpeg's DCT
 * scaling gives the largest 1/8 step with at most maxSide² pixels (1000 x 750 for a
 * 4000 x 3000 photo, 1500 x 998 for 4000 x 2660) in about half the time of a full decode. Only in secure contexts (HTTPS,
 * localhost) and only for JPEG; null elsewhere, and createImageBitmap decodes in full.
 * The frame carries the EXIF rotation, which drawImage and createImageBitmap apply. */
async function decodeReduced(file, maxSide) {
  if (typeof ImageDecoder === "undefined" || file.type !== "image/jpeg") return null;
  let decoder = null;
  try {
    decoder = new ImageDecoder({
      data: file.stream(), type: file.type, desiredWidth: maxSide, desiredHeight: maxSide, preferAnimation: false,
    });
    const { image } = await decoder.decode();
    return { source: image, width: image.displayWidth, height: image.displayHeight, reduced: true };
  } catch {
    return null;
  } finally {
    if (decoder) decoder.close();
  }
}

/** The whole picture as an ImageBitmap, EXIF orientation applied; null when undecodable. */
async function decodeWhole(file) {
  try {
    const bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
    return { source: bitmap, width: bitmap.width, height: bitmap.height, reduced: false };
  } catch {
    return null;
  }
}

/** A query image as it is uploaded, when no preview is drawn (the extra query images). */
export async function uploadable(file) {
  const { blob, bitmap } = await prepareQuery(file);
  if (bitmap) bitmap.close();
  return blob;
}

function makeCanvas(width, height) {
  if (typeof OffscreenCanvas !== "undefined") return new OffscreenCanvas(width, height);
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  return canvas;
}

function toJpeg(canvas) {
  if (canvas.convertToBlob) return canvas.convertToBlob({ type: "image/jpeg", quality: QUALITY });
  return new Promise((resolve, reject) =>
    canvas.toBlob((b) => (b ? resolve(b) : reject(new Error("no JPEG"))), "image/jpeg", QUALITY));
}
