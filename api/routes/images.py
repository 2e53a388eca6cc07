"""The library's images: upload, list, read, tag, delete, and their files and thumbnails."""

from __future__ import annotations

import mimetypes
from typing import Annotated, Any

import msgspec
from litestar import Controller, delete, get, patch, post
from litestar.datastructures import ResponseHeader
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
    UploadResult,
)
from engine.library import MAX_PAGE, parse_tags
from engine.search import Filters

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


class ImageController(Controller):
    path = "/api/v1/images"
    tags = ("images",)

    @post(
        operation_id="uploadImages",
        responses=ERROR_RESPONSES,
        status_code=201,
        guards=[requires_write],
    )
    async def upload(
        self,
        services: ServicesDep,
        data: MultipartBody[ImageCreate],
    ) -> UploadResult:
        """Upload one or more images (repeat the ``files`` field), optionally tagged
        (``tags``: comma-separated). Each is saved under the library's uploads folder with a
        safe name, and indexed. Nothing is saved if any file is not a readable image.
        During a reindex the upload waits for it (up to a minute, then 503)."""
        files = [(f.filename or "image", await f.read()) for f in data.files]
        tags = parse_tags(data.tags)
        stored = await services.run(services.ready_lookalike().library.upload, files, tags)
        return UploadResult(images=[Image.from_payload(i) for i in stored])

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

    @get(
        "/{image_id:str}/file",
        operation_id="getImageFile",
        responses=ERROR_RESPONSES,
        media_type="image/*",
        content_media_type="image/*",
        response_headers=[LAST_MODIFIED],
    )
    async def get_file(self, services: ServicesDep, image_id: ImageId) -> File:
        """The original file (the first of its paths still on disk)."""
        path = await services.run(services.ready_lookalike().library.file_path, image_id)
        return File(
            path,
            media_type=mimetypes.guess_type(path.name)[0] or "application/octet-stream",
            filename=path.name,
            content_disposition_type="inline",
            headers={"Cache-Control": FILE_CACHE},
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
