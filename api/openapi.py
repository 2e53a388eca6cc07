"""OpenAPI: the document at /schema/openapi.json and browsable docs at /schema that work offline.

Litestar's Swagger plugin loads Swagger UI from a CDN and starts it with an inline script;
both break here (the machine may be offline, and the CSP allows scripts from this origin
only). ``LocalSwaggerPlugin`` serves a page that loads the copy vendored under
/static/vendor/swagger-ui (``scripts/vendor_swagger_ui.sh``) and a start-up script served
from /schema/swagger-init.js. That script sends the CSRF header on "Try it out" requests, so
the docs work with the login session as well as with an API key ("Authorize").
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

import msgspec
from litestar import Request, Response, get
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, OpenAPIRenderPlugin
from litestar.openapi.spec import Components, Operation, SecurityScheme
from litestar.router import Router

VENDOR = "/static/vendor/swagger-ui"
CSRF_COOKIE = "csrftoken"
CSRF_HEADER = "x-csrftoken"

_INIT_JS = f"""// Starts Swagger UI on the OpenAPI document of this server (see api/openapi.py).
"use strict";
function csrfToken() {{
  const hit = document.cookie.split("; ").find((c) => c.startsWith("{CSRF_COOKIE}="));
  return hit ? decodeURIComponent(hit.split("=")[1]) : undefined;
}}
window.ui = SwaggerUIBundle({{
  url: document.body.dataset.openapiUrl,
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: "none",
  presets: [SwaggerUIBundle.presets.apis],
  requestInterceptor: (request) => {{
    const token = csrfToken();
    if (token !== undefined) request.headers["{CSRF_HEADER}"] = token;
    return request;
  }},
}});
"""


class LocalSwaggerPlugin(OpenAPIRenderPlugin):
    def __init__(self) -> None:
        super().__init__(path=["/", "/swagger"], favicon="", style="")

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        title = html.escape(openapi_schema["info"]["title"])
        json_url = self.get_openapi_json_route(request)
        url = html.escape(json_url)
        init = html.escape(json_url.rsplit("/", 1)[0] + "/swagger-init.js")
        return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · API</title>
<link rel="icon" href="/static/img/mark.svg" type="image/svg+xml">
<link rel="stylesheet" href="{VENDOR}/swagger-ui.css">
</head><body data-openapi-url="{url}">
<div id="swagger-ui"></div>
<script src="{VENDOR}/swagger-ui-bundle.js"></script>
<script src="{init}"></script>
</body></html>""".encode()

    def receive_router(self, router: Router) -> None:
        router.register(swagger_init)


@get(
    "/swagger-init.js",
    operation_id="swaggerInit",
    include_in_schema=False,
    media_type="text/javascript",
    sync_to_thread=False,
)
def swagger_init() -> Response[str]:
    return Response(_INIT_JS, media_type="text/javascript; charset=utf-8")


# What Litestar's generator leaves out of the document, though the server enforces it: a
# client (or schemathesis) reading the document would otherwise send requests it believes
# valid and get 400s. Keyed by component schema, then property.
_EXTRA_CONSTRAINTS: dict[str, dict[str, dict[str, Any]]] = {
    # On the wire one file part is the same whether a client thinks "a file" or "a list of
    # one": both are stated, so clients (and fuzzers) send either with a filename.
    "ImageCreate": {
        "files": {
            "type": ["array", "string"],
            "format": "binary",
            "contentMediaType": "image/*",
            "minItems": 1,
            "items": {"contentMediaType": "image/*"},
        }
    },
    # Anything but true is refused: a 400 saying how many images would be deleted.
    "DuplicateApply": {"confirm": {"const": True}},
}


def strict_struct_schemas() -> dict[str, dict[str, Any]]:
    """Rules of a whole Struct that msgspec cannot state, by component name."""
    from api.schemas import WEIGHTS_ANY_POSITIVE

    return {"Weights": WEIGHTS_ANY_POSITIVE}


class StrictJsonRenderPlugin(JsonRenderPlugin):
    """/schema/openapi.json, with the request rules Litestar's generator drops put back."""

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        return super().render(request, strict_document(openapi_schema))


def strict_document(document: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``document`` whose request and response Structs are described by msgspec
    itself, which validates them (Litestar's generator drops constraints on list items),
    where Structs that refuse unknown fields say so (``additionalProperties: false``), and
    where the constraints above are stated."""
    import copy

    from api import duplicate_schemas, schemas, search_schemas

    doc = copy.deepcopy(document)
    components = doc.get("components", {}).get("schemas", {})
    modules = (schemas, search_schemas, duplicate_schemas)
    found: dict[str, Any] = {
        name: next((getattr(m, name) for m in modules if hasattr(m, name)), None)
        for name in components
    }
    structs = {n: t for n, t in found.items() if hasattr(t, "__struct_config__")}
    for struct in structs.values():
        try:
            _, own = msgspec.json.schema_components([struct], ref_template=REF_TEMPLATE)
        except TypeError:  # holds a type msgspec cannot describe (UploadFile): keep Litestar's
            own = {}
        components.update({sub: schema for sub, schema in own.items() if sub in components})
    for name, struct in structs.items():
        if struct.__struct_config__.forbid_unknown_fields:
            components[name]["additionalProperties"] = False
        for prop, extra in _EXTRA_CONSTRAINTS.get(name, {}).items():
            _merge(components[name].get("properties", {}).get(prop, {}), extra)
    for name, extra in strict_struct_schemas().items():
        if name in components:
            components[name].update(extra)
    _encode_image_parts(doc)
    return doc


def _merge(target: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value


def _encode_image_parts(doc: dict[str, Any]) -> None:
    """A multipart field documented as an image (``contentMediaType: image/*``) is sent
    with that content type: said in the body's ``encoding``, where clients look for it."""
    components = doc.get("components", {}).get("schemas", {})
    for item in doc.get("paths", {}).values():
        for operation in item.values():
            body = operation.get("requestBody", {}) if isinstance(operation, dict) else {}
            form = body.get("content", {}).get("multipart/form-data")
            if not form:
                continue
            schema = form.get("schema", {})
            ref = schema.get("$ref", "")
            schema = components.get(ref.rsplit("/", 1)[-1], schema) if ref else schema
            for name, prop in schema.get("properties", {}).items():
                media = prop.get("contentMediaType") or prop.get("items", {}).get(
                    "contentMediaType"
                )
                if media and media.startswith("image/"):
                    form.setdefault("encoding", {}).setdefault(name, {})["contentType"] = media


REF_TEMPLATE = "#/components/schemas/{name}"


@dataclass
class OptionalBodyOperation(Operation):
    """For a handler whose body may be left out (``data: ... | None = None``): Litestar marks
    every request body required."""

    def __post_init__(self) -> None:
        if self.request_body is not None:
            self.request_body.required = False  # type: ignore[union-attr]


def openapi_config(version: str) -> OpenAPIConfig:
    return OpenAPIConfig(
        title="Lookalike",
        version=version,
        description=(
            "Self-hosted image search. Authenticate with the login session (the web UI) or "
            "an API key: `Authorization: Bearer <key>` (`lookalike apikey create`). Every "
            'error has the body `{"status": 4xx, "error": "code", "detail": "sentence"}`.'
        ),
        path="/schema",
        render_plugins=[LocalSwaggerPlugin(), StrictJsonRenderPlugin()],
        components=Components(
            security_schemes={
                "apiKey": SecurityScheme(
                    type="http", scheme="bearer", description="`lookalike apikey create`"
                ),
            }
        ),
        security=[{"apiKey": []}],
    )


def inline_schema(tp: Any, extra: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """msgspec's JSON Schema of ``tp`` with its $defs inlined, for a hand-written request body;
    ``extra``: keys to add to the named $defs."""
    schema = msgspec.json.schema(tp)
    defs = schema.pop("$defs", {})
    for name, keys in (extra or {}).items():
        if name in defs:
            defs[name] = {**defs[name], **keys}

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            if node.get("items") is False and node.get("maxItems") == len(
                node.get("prefixItems", ())
            ):
                # Said twice for a tuple (no items past the prefix); generators that read
                # only schema objects choke on the boolean one.
                node = {k: v for k, v in node.items() if k != "items"}
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved
