// A query image is shrunk in the page before it is uploaded (issue 16): a phone's 12 MP photo
// is 3-5 MB on the wire and a full decode on the server, while the models look at 224 px.
// Only search queries pass through here; the Library page uploads originals untouched.
//
// QUERY_MAX_SIDE is 1280 px on the longer side: well above the models' 224 px (even for a
// crop of a fifth of the picture), above the ~1024 px that verification by local features
// wants (issue 18), and about what the crop stage shows on a laptop screen (its canvas is at
// most ~700 CSS px wide, 1400 device px at 2x). A 4000 x 3000 photo becomes ~1280 x 960,
// about 0.2-0.4 MB as a JPEG at quality 0.9.
//
// The decode applies EXIF orientation once ('from-image'); the JPEG we encode carries no EXIF,
// so the server sees the picture upright, as the crop stage shows it. Crop boxes are in the
// pixels of the image that is sent (the stage draws that very bitmap), so they need no scaling.

export const QUERY_MAX_SIDE = 1280;
const QUALITY = 0.9;
// Below this a file goes as it is, whatever its size in pixels: it uploads in moments, and
// re-encoding would only lose detail (a PNG screenshot, say).
const SMALL_BYTES = 300_000;
// For bench/browser_search.py only: `localStorage["lookalike.shrink"] = "off"` sends the
// originals, so the bench can time both paths in the same page. Harmless: the server then
// answers exactly as it did before the page shrank queries.
const SWITCH_KEY = "lookalike.shrink";

function enabled() {
  try {
    return localStorage.getItem(SWITCH_KEY) !== "off";
  } catch {
    return true;
  }
}

/** Decodes `file` once, upright. Resolves to {blob, bitmap, original}:
 * - blob: what to upload, a JPEG File of at most QUERY_MAX_SIDE px when the file was large,
 *   else the file itself;
 * - bitmap: the decoded picture in the pixels of `blob` (the crop stage draws it), or null
 *   when this browser cannot decode the file (a TIFF, say: the server may still read it);
 * - original: {width, height} of the picture as chosen, or null. */
export async function prepareQuery(file, { maxSide = QUERY_MAX_SIDE } = {}) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
  } catch {
    return { blob: file, bitmap: null, original: null };
  }
  const original = { width: bitmap.width, height: bitmap.height };
  const side = Math.max(bitmap.width, bitmap.height);
  if (side <= maxSide || file.size <= SMALL_BYTES || !enabled()) return { blob: file, bitmap, original };
  const scale = maxSide / side;
  const width = Math.max(1, Math.round(bitmap.width * scale));
  const height = Math.max(1, Math.round(bitmap.height * scale));
  try {
    const canvas = makeCanvas(width, height);
    const ctx = canvas.getContext("2d");
    // JPEG has no alpha: composite on white, as the server does with a transparent image.
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(0, 0, width, height);
    ctx.imageSmoothingEnabled = true;
    ctx.imageSmoothingQuality = "high";
    ctx.drawImage(bitmap, 0, 0, width, height);
    const jpeg = await toJpeg(canvas);
    const small = await createImageBitmap(canvas);
    bitmap.close();
    // The name stays the user's (the server reads the bytes, not the name's extension).
    return { blob: new File([jpeg], file.name || "query.jpg", { type: "image/jpeg" }), bitmap: small, original };
  } catch {
    // No canvas to encode with (a very old browser): the original goes, as before.
    return { blob: file, bitmap, original };
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
