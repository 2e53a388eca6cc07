"""The library's images: upload, list, read, tag, delete, and their files and thumbnails."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import msgspec
from litestar import Controller, Response, delete, get, patch, post
from litestar.datastructures import ResponseHeader
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody, MultipartBody, PathParameter, QueryParameter
from litestar.response import File

from api.auth import requires_write
from api.errors import ERROR_RESPONSES
from api.routes.deps import ServicesDep
from api.schemas import (
    Folder,
    Format,
    Image,
    ImageCreate,
    ImagePage,
    ImageUpdate,
    Tag,
    UploadedFile,
    UploadRefused,
    UploadResult,
)
from engine.library import MAX_PAGE, parse_tags
from engine.search_request import Filters

if TYPE_CHECKING:
    from engine.uploads import UploadOutcome

# Documented as a UUID (and checked as one), so clients and fuzzers know a malformed id is
# their mistake (400) and a well-formed unknown one is a 404.
UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
ImageId = Annotated[str, PathParameter(pattern=UUID_PATTERN, description="The image's id.")]

# An image id is derived from its content, so what a URL returns never changes: let browsers
# keep thumbnails for good, and files for a day (a file may be deleted, the URL then 404s).
THUMB_CACHE = "private, max-age=31536000, immutable"
FILE_CACHE = "private, max-age=86400"
# Litestar documents a file's Last-Modified as an ISO date-time; HTTP sends an HTTP-date.
LAST_MODIFIED = ResponseHeader(
    name="last-modified",
    value="Wed, 21 Oct 2015 07:28:00 GMT",
    description="When the file last changed, as an HTTP-date (RFC 9110).",
    documentation_only=True,
)


def _any_of(item: Any, what: str) -> Any:
    """A list filter's parameter; its items' rules stated, which Litestar leaves out."""
    return QueryParameter(
        description=f"any of these {what}", schema_extra={"items": msgspec.json.schema(item)}
    )


# An original is shown as an image and nothing else: even a file that is also valid HTML
# (a TIFF with a page appended) gets no scripts, forms or same-origin access.
# 'sandbox' (no allow-scripts) already stops every script; the rest keeps the app's rules.
FILE_CSP = (
    "sandbox; default-src 'self'; script-src 'self'; style-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

UPLOAD_RESPONSES = {
    **ERROR_RESPONSES,
    **{
        status: ResponseSpec(UploadRefused, description=text, generate_examples=False)
        for status, text in {
            400: "Every file was rejected (each file's reason is in 'results'), or the "
            "request itself is not valid (no file, too many files, a bad tag).",
            413: "Every file was rejected, for being larger than LOOKALIKE_MAX_UPLOAD_MB; or "
            "the request as a whole is.",
        }.items()
    },
}


def upload_response(outcomes: list[UploadOutcome]) -> Response[UploadResult | UploadRefused]:
    """201 with every file's outcome, or, when no file got in, the error of the rejections
    (their own status when they agree, else 400) with the same per-file results."""
    results = [UploadedFile.from_outcome(o) for o in outcomes]
    kept = {o.id: o.image for o in outcomes if o.image is not None and o.id is not None}
    if kept:
        images = [Image.from_payload(i) for i in kept.values()]
        return Response(UploadResult(results=results, images=images), status_code=201)
    statuses = {o.http_status or 400 for o in outcomes}
    codes = {o.error or "bad_input" for o in outcomes}
    status = statuses.pop() if len(statuses) == 1 else 400
    code = codes.pop() if len(codes) == 1 else "bad_input"
    if len(outcomes) == 1:
        detail = outcomes[0].detail or "The file was rejected."
    else:
        reasons = "; ".join(f"{o.filename}: {(o.detail or '').rstrip('.')}" for o in outcomes[:3])
        more = f" (and {len(outcomes) - 3} more)" if len(outcomes) > 3 else ""
        detail = f"No file was added. {reasons}{more}."
    body = UploadRefused(status=status, error=code, detail=detail, results=results)
    return Response(body, status_code=status)


class ImageController(Controller):
    path = "/api/v1/images"
    tags = ("images",)

    @post(
        operation_id="uploadImages",
        responses=UPLOAD_RESPONSES,
        status_code=201,
        guards=[requires_write],
    )
    async def upload(
        self,
        services: ServicesDep,
        data: MultipartBody[ImageCreate],
    ) -> Response[UploadResult | UploadRefused]:
        """Upload images (repeat the ``files`` field, at most 100 per request), optionally
        tagged (``tags``: comma-separated). Each file is answered on its own: ``added``
        (saved under the library's uploads folder with a safe name and the suffix of its
        real format, and indexed), ``exists`` (the same content is already in the library:
        nothing is written, the tags are added to it) or ``rejected`` (with the reason).
        201 when at least one file is stored or already there; when every file is rejected,
        4xx with the standard error body and each file's reason. During a reindex the
        upload waits for it (up to a minute, then 503)."""
        files = [(f.filename or "image", f.file) for f in data.files]
        tags = parse_tags(data.tags)
        uploads = services.ready_lookalike().uploads
        return upload_response(await services.run(uploads.upload, files, tags))

    @get(operation_id="listImages", responses=ERROR_RESPONSES)
    async def list_images(
        self,
        services: ServicesDep,
        offset: Annotated[int, QueryParameter(ge=0)] = 0,
        limit: Annotated[int, QueryParameter(ge=1, le=MAX_PAGE)] = 50,
        folder: Annotated[list[Folder] | None, _any_of(Folder, "folders")] = None,
        tag: Annotated[list[Tag] | None, _any_of(Tag, "tags")] = None,
        format: Annotated[list[Format] | None, _any_of(Format, "formats")] = None,
    ) -> ImagePage:
        """The library's images in a stable order, a page at a time, optionally filtered."""
        flt = Filters(
            folders=tuple(folder or ()), tags_any=tuple(tag or ()), formats=tuple(format or ())
        ).store_filter()
        library = services.ready_lookalike().library
        page = await services.run(library.list_images, flt, offset=offset, limit=limit)
        items = [Image.from_payload(i) for i in page.items]
        return ImagePage(items=items, total=page.total, offset=page.offset, limit=page.limit)

    @get("/{image_id:str}", operation_id="getImage", responses=ERROR_RESPONSES)
    async def get_image(self, services: ServicesDep, image_id: ImageId) -> Image:
        """One image: paths, size, format, tags, palette, and its file and thumbnail URLs."""
        library = services.ready_lookalike().library
        return Image.from_payload(await services.run(library.get, image_id))

    @patch(
        "/{image_id:str}",
        operation_id="updateImage",
        responses=ERROR_RESPONSES,
        guards=[requires_write],
    )
    async def update_image(
        self, services: ServicesDep, image_id: ImageId, data: JSONBody[ImageUpdate]
    ) -> Image:
        """Replace the image's tags."""
        library = services.ready_lookalike().library
        return Image.from_payload(await services.run(library.set_tags, image_id, data.tags))

    @delete(
        "/{image_id:str}",
        operation_id="deleteImage",
        responses=ERROR_RESPONSES,
        guards=[requires_write],
    )
    async def delete_image(self, services: ServicesDep, image_id: ImageId) -> None:
        """Remove the image from the index and move its files to the trash (data_dir/trash)."""
        await services.run(services.ready_lookalike().library.delete, image_id)

    @delete(
        "/{image_id:str}/files",
        operation_id="removeImageFile",
        responses=ERROR_RESPONSES,
        guards=[requires_write],
        status_code=200,
    )
    async def remove_file(
        self,
        services: ServicesDep,
        image_id: ImageId,
        path: Annotated[Folder, QueryParameter(description="One of the image's paths.")],
    ) -> Image:
        """Move one of the image's identical files (one of its ``paths``) to the trash; the
        image stays, with the others. Refused (409) for its last file on disk: that is
        deleting the image."""
        library = services.ready_lookalike().library
        return Image.from_payload(await services.run(library.remove_file, image_id, path))

    @get(
        "/{image_id:str}/file",
        operation_id="getImageFile",
        responses=ERROR_RESPONSES,
        media_type="image/*",
        content_media_type="image/*",
        response_headers=[LAST_MODIFIED],
    )
    async def get_file(self, services: ServicesDep, image_id: ImageId) -> File:
        """The original file (the first of its paths still on disk), as the image type of
        its decoded format, sandboxed: a browser never runs anything from it."""
        found = await services.run(services.ready_lookalike().library.file, image_id)
        return File(
            found.path,
            filename=found.download_name,
            media_type=found.media_type,
            content_disposition_type="inline",
            headers={"Cache-Control": FILE_CACHE, "Content-Security-Policy": FILE_CSP},
        )

    @get(
        "/{image_id:str}/thumbnail",
        operation_id="getImageThumbnail",
        responses=ERROR_RESPONSES,
        media_type="image/webp",
        response_headers=[LAST_MODIFIED],
    )
    async def get_thumbnail(self, services: ServicesDep, image_id: ImageId) -> File:
        """A WebP of at most 256 px a side, made on first request and cached."""
        path = await services.run(services.ready_lookalike().thumbnails.path, image_id)
        return File(
            path,
            media_type="image/webp",
            content_disposition_type="inline",
            headers={"Cache-Control": THUMB_CACHE},
        )
