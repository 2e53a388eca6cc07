// The query preview and its crop box, written on pointer events rather than a crop library:
// it is all the UI needs, and it keeps the page free of third-party script.
//
// The image is drawn on a canvas from createImageBitmap(file), so no blob: URL is ever needed
// (a strict img-src CSP would refuse one). The box is kept in the image's own pixels, which is
// what the server crops with, and only projected to screen pixels for display. A query from
// this computer is drawn from the bitmap shrink.js made, so "the image's own pixels" are those
// of the (possibly downscaled) image that is uploaded.

const MIN_SIDE_PX = 8; // in image pixels: smaller crops are not worth embedding
const CLICK_SLOP_PX = 4; // in screen pixels: a press that moves less than this is a click
const MAX_HEIGHT_PX = 440;
const PHONE_PX = 640;
const PHONE_MAX_HEIGHT_PX = 200;
const MAX_UPSCALE = 4;

const clamp = (v, lo, hi) => Math.max(lo, Math.min(hi, v));

export class CropStage {
  constructor({ container, stage, canvas, crop, onChange = () => {}, onCommit = () => {} }) {
    Object.assign(this, { container, stage, canvas, crop, onChange, onCommit });
    this.bitmap = null;
    this.box = null; // {x, y, w, h} in image pixels, or null for the whole image
    this.drag = null;
    stage.addEventListener("pointerdown", (e) => this.#down(e));
    stage.addEventListener("pointermove", (e) => this.#move(e));
    stage.addEventListener("pointerup", (e) => this.#up(e));
    stage.addEventListener("pointercancel", (e) => this.#up(e));
    new ResizeObserver(() => this.#layout()).observe(container);
  }

  get width() {
    return this.bitmap ? this.bitmap.width : 0;
  }

  get height() {
    return this.bitmap ? this.bitmap.height : 0;
  }

  /** Draws a Blob; resolves to false when the browser cannot decode it (a TIFF, say). */
  async load(blob) {
    let bitmap;
    try {
      bitmap = await createImageBitmap(blob, { imageOrientation: "from-image" });
    } catch {
      this.clear(); // never leave the previous query's picture under the new name
      return false;
    }
    this.show(bitmap);
    return true;
  }

  /** Draws a decoded picture (the stage owns it from now on, and closes it); the crop box
   * is then in this bitmap's pixels, which must be those of the image the server gets. */
  show(bitmap) {
    if (this.bitmap && this.bitmap !== bitmap) this.bitmap.close();
    this.bitmap = bitmap;
    this.box = null;
    this.stage.hidden = false;
    this.#layout();
  }

  clear() {
    if (this.bitmap) this.bitmap.close();
    this.bitmap = null;
    this.box = null;
    this.stage.hidden = true;
    this.crop.hidden = true;
  }

  resetCrop() {
    this.box = null;
    this.#render();
    this.onChange(null);
  }

  /** [x, y, w, h] in image pixels, integers inside the image; null when nothing is cropped. */
  cropBox() {
    if (!this.box) return null;
    const x = clamp(Math.floor(this.box.x), 0, this.width - 1);
    const y = clamp(Math.floor(this.box.y), 0, this.height - 1);
    const w = clamp(Math.round(this.box.w), 1, this.width - x);
    const h = clamp(Math.round(this.box.h), 1, this.height - y);
    if (w >= this.width - 1 && h >= this.height - 1) return null; // the whole image
    return [x, y, w, h];
  }

  #scale() {
    return this.width ? this.canvas.clientWidth / this.width : 1;
  }

  #layout() {
    if (!this.bitmap) return;
    const style = getComputedStyle(this.container);
    const avail = this.container.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
    // A phone keeps the first results on screen below the preview.
    const maxHeight = window.innerWidth <= PHONE_PX ? PHONE_MAX_HEIGHT_PX : MAX_HEIGHT_PX;
    const scale = Math.min(avail / this.width, maxHeight / this.height, MAX_UPSCALE);
    const w = Math.max(1, Math.round(this.width * scale));
    const h = Math.max(1, Math.round(this.height * scale));
    const dpr = window.devicePixelRatio || 1;
    this.canvas.style.width = `${w}px`;
    this.canvas.style.height = `${h}px`;
    this.canvas.width = Math.round(w * dpr);
    this.canvas.height = Math.round(h * dpr);
    const ctx = this.canvas.getContext("2d");
    ctx.imageSmoothingQuality = "high";
    ctx.drawImage(this.bitmap, 0, 0, this.canvas.width, this.canvas.height);
    this.#render();
  }

  #render() {
    if (!this.box) {
      this.crop.hidden = true;
      this.stage.classList.remove("has-crop");
      return;
    }
    const s = this.#scale();
    Object.assign(this.crop.style, {
      left: `${this.box.x * s}px`,
      top: `${this.box.y * s}px`,
      width: `${this.box.w * s}px`,
      height: `${this.box.h * s}px`,
    });
    this.crop.hidden = false;
    this.stage.classList.add("has-crop");
  }

  #point(event) {
    const rect = this.canvas.getBoundingClientRect();
    const s = this.#scale();
    return {
      x: clamp((event.clientX - rect.left) / s, 0, this.width),
      y: clamp((event.clientY - rect.top) / s, 0, this.height),
      sx: event.clientX,
      sy: event.clientY,
    };
  }

  #down(event) {
    if (!this.bitmap || event.button !== 0) return;
    event.preventDefault();
    const p = this.#point(event);
    const handle = event.target.dataset ? event.target.dataset.handle : undefined;
    let mode = "new";
    if (handle) mode = handle;
    else if (this.box && event.target === this.crop) mode = "move";
    this.drag = { mode, start: p, box: this.box ? { ...this.box } : null, moved: false };
    this.stage.setPointerCapture(event.pointerId);
    this.stage.classList.add("is-dragging");
  }

  #move(event) {
    if (!this.drag) return;
    const p = this.#point(event);
    const { mode, start, box } = this.drag;
    if (!this.drag.moved && Math.hypot(p.sx - start.sx, p.sy - start.sy) < CLICK_SLOP_PX) return;
    this.drag.moved = true;
    if (mode === "new") {
      this.box = {
        x: Math.min(start.x, p.x),
        y: Math.min(start.y, p.y),
        w: Math.abs(p.x - start.x),
        h: Math.abs(p.y - start.y),
      };
    } else if (mode === "move") {
      this.box = {
        ...box,
        x: clamp(box.x + p.x - start.x, 0, this.width - box.w),
        y: clamp(box.y + p.y - start.y, 0, this.height - box.h),
      };
    } else {
      this.box = resize(box, mode, p.x - start.x, p.y - start.y, this.width, this.height);
    }
    this.#render();
    this.onChange(this.cropBox());
  }

  #up(event) {
    if (!this.drag) return;
    const { moved, mode } = this.drag;
    this.drag = null;
    this.stage.classList.remove("is-dragging");
    if (this.stage.hasPointerCapture(event.pointerId)) this.stage.releasePointerCapture(event.pointerId);
    if (!moved) {
      // A click on the image outside the box drops the crop; a click on the box keeps it.
      if (mode === "new" && this.box) this.resetCrop();
      return;
    }
    if (this.box && (this.box.w < MIN_SIDE_PX || this.box.h < MIN_SIDE_PX)) {
      this.resetCrop();
      return;
    }
    this.onCommit(this.cropBox());
  }
}

/** The box after dragging `handle` (n, se, w, ...) by (dx, dy), kept inside the image. */
function resize(box, handle, dx, dy, maxW, maxH) {
  let left = box.x;
  let top = box.y;
  let right = box.x + box.w;
  let bottom = box.y + box.h;
  if (handle.includes("w")) left = clamp(left + dx, 0, right - MIN_SIDE_PX);
  if (handle.includes("e")) right = clamp(right + dx, left + MIN_SIDE_PX, maxW);
  if (handle.includes("n")) top = clamp(top + dy, 0, bottom - MIN_SIDE_PX);
  if (handle.includes("s")) bottom = clamp(bottom + dy, top + MIN_SIDE_PX, maxH);
  return { x: left, y: top, w: right - left, h: bottom - top };
}
