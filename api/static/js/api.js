// Talks to the REST API. Every error the server sends has the shape
// {"status", "error", "detail"}; `detail` is a sentence written for people, so the UI shows it as is.

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

export class ApiError extends Error {
  constructor(status, code, detail) {
    super(detail);
    this.status = status;
    this.code = code;
    this.detail = detail;
  }
}

function meta(name) {
  const el = document.querySelector(`meta[name="${name}"]`);
  return el ? el.getAttribute("content") || "" : "";
}

function cookie(name) {
  for (const part of document.cookie.split(";")) {
    const [key, ...rest] = part.trim().split("=");
    if (key === name) return decodeURIComponent(rest.join("="));
  }
  return "";
}

// The token is rendered into the page; the cookie is the fallback because a long-open tab
// may outlive the token it was rendered with if the server rotates it.
export function csrfToken() {
  return cookie(meta("csrf-cookie") || "csrftoken") || meta("csrf-token");
}

export function csrfHeaderName() {
  return meta("csrf-header") || "x-csrftoken";
}

async function errorFrom(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // Not JSON (a proxy's HTML page, say): fall through to a generic sentence.
  }
  if (response.status === 401 && !(body && body.detail)) {
    return new ApiError(401, "unauthorized", "Your session has ended. Log in again to continue.");
  }
  const detail =
    (body && (body.detail || body.message)) ||
    `The server answered ${response.status} ${response.statusText || ""}`.trim() + ".";
  return new ApiError(response.status, (body && body.error) || "error", String(detail));
}

/** fetch() with the session cookie and the CSRF header; a refusal becomes an ApiError. */
async function send(url, { method = "GET", json, form, signal, accept = "application/json" }) {
  const headers = { Accept: accept };
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = form; // the browser sets the multipart boundary itself
  }
  if (!SAFE_METHODS.has(method)) {
    const token = csrfToken();
    if (token) headers[csrfHeaderName()] = token;
  }
  let response;
  try {
    response = await fetch(url, { method, headers, body, signal, credentials: "same-origin" });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, "network", "The server cannot be reached. Check that Lookalike is running.");
  }
  if (response.status === 401) {
    // A page left open past the session's life: send the person to log in, then back here.
    const next = encodeURIComponent(location.pathname + location.search);
    setTimeout(() => location.assign(`/login?next=${next}`), 1500);
  }
  if (!response.ok) throw await errorFrom(response);
  return response;
}

/**
 * fetch() with the session cookie, the CSRF header on state-changing methods, and JSON errors
 * turned into ApiError. `json` sends a JSON body; `form` sends a FormData body.
 */
export async function api(url, { method = "GET", json, form, signal, blob = false } = {}) {
  const response = await send(url, { method, json, form, signal });
  if (response.status === 204) return null;
  if (blob) return response.blob();
  const type = response.headers.get("content-type") || "";
  return type.includes("json") ? response.json() : response.text();
}

const CUT_OFF = "The answer was cut off before it was complete. Search again.";

/**
 * An answer in steps (NDJSON, e.g. POST /api/v1/search/stream): `onStep(step)` for each line
 * as it arrives; resolves with the last, which must be stage "final". A refusal before the
 * first line is an ApiError as from api(); a line with stage "error" is thrown the same way.
 */
export async function apiSteps(url, { method = "POST", json, form, signal } = {}, onStep = () => {}) {
  const response = await send(url, { method, json, form, signal, accept: "application/x-ndjson" });
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffered = "";
  let last = null;
  for (;;) {
    let chunk;
    try {
      chunk = await reader.read();
    } catch (err) {
      if (err.name === "AbortError") throw err;
      throw new ApiError(0, "network", CUT_OFF);
    }
    buffered += decoder.decode(chunk.value || new Uint8Array(), { stream: !chunk.done });
    const lines = buffered.split("\n");
    buffered = lines.pop(); // an unfinished line waits for the rest
    for (const line of lines.filter((l) => l.trim())) {
      last = JSON.parse(line);
      if (last.stage === "error") throw new ApiError(last.error.status, last.error.error, last.error.detail);
      onStep(last);
    }
    if (chunk.done) break;
  }
  if (!last || last.stage !== "final") throw new ApiError(0, "network", CUT_OFF);
  return last;
}

/** The list inside a paginated answer, whatever the envelope calls it. */
export function itemsOf(page) {
  if (Array.isArray(page)) return page;
  if (!page) return [];
  return page.items || page.images || page.data || page.results || [];
}
