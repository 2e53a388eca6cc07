"""Unknown query parameters are refused with 400 on every operation the OpenAPI document
describes. A misspelt filter (``?treshold=0.99``), silently ignored, would answer another
question than the one asked, and nothing would say so. The document is the contract: what
it lists for an operation is what the operation takes. Routes it does not describe (the
UI's pages, static files) accept what browsers and links add.
"""

from __future__ import annotations

import re
from typing import Any

from litestar import Litestar, Request
from litestar.exceptions import ValidationException

_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
# Litestar's path templates carry the parameter type ('{image_id:str}'); the document not.
_TYPED = re.compile(r"\{(\w+):[^}]*\}")
_STATE_KEY = "documented_query_params"


def documented_query_params(app: Litestar) -> dict[tuple[str, str], frozenset[str]]:
    """(path, METHOD) -> the query parameter names the document lists for it."""
    table: dict[tuple[str, str], frozenset[str]] | None = app.state.get(_STATE_KEY)
    if table is None:
        table = {}
        for path, item in (app.openapi_schema.paths or {}).items():
            for method in _METHODS:
                operation = getattr(item, method, None)
                if operation is None:
                    continue
                table[(path, method.upper())] = frozenset(
                    p.name
                    for p in operation.parameters or ()
                    if getattr(p, "param_in", None) == "query"
                )
        app.state[_STATE_KEY] = table  # built once: the document does not change
    return table


async def refuse_unknown_query_params(request: Request[Any, Any, Any]) -> None:
    """``before_request`` hook: 400 naming the unknown parameters and the known ones."""
    if not request.scope.get("query_string"):
        return
    template = request.scope.get("path_template")
    if not isinstance(template, str):
        return
    path = _TYPED.sub(r"{\1}", template)
    allowed = documented_query_params(request.app).get((path, request.method))
    if allowed is None:
        return  # not in the document: a page or a static file
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        names = ", ".join(repr(name) for name in unknown)
        takes = f"takes {', '.join(sorted(allowed))}" if allowed else "takes no query parameters"
        noun = "parameter" if len(unknown) == 1 else "parameters"
        raise ValidationException(f"Unknown query {noun} {names}: {request.method} {path} {takes}.")
