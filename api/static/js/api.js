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

/**
 * fetch() with the session cookie, the CSRF header on state-changing methods, and JSON errors
 * turned into ApiError. `json` sends a JSON body; `form` sends a FormData body.
 */
export async function api(url, { method = "GET", json, form, signal, blob = false } = {}) {
  const headers = { Accept: "application/json" };
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
  if (response.status === 204) return null;
  if (blob) return response.blob();
  const type = response.headers.get("content-type") || "";
  return type.includes("json") ? response.json() : response.text();
}

/** The list inside a paginated answer, whatever the envelope calls it. */
export function itemsOf(page) {
  if (Array.isArray(page)) return page;
  if (!page) return [];
  return page.items || page.images || page.data || page.results || [];
}
