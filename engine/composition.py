"""Wires the use cases: the one place that knows what each of them is given.

``Lookalike(settings)`` is what an adapter (the HTTP app, the CLI, a benchmark) holds. It
opens nothing until asked (``engine.resources``) and hands every use case only the narrow
collaborators it needs: a provider of the store, the read policy, the query encoder, the
model catalogue. No use case receives this object.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from engine.catalog import ModelCatalog
from engine.colour import ColourFilter
from engine.duplicate_review import DuplicateReview
from engine.duplicates import Duplicates
from engine.folder import PathKeys
from engine.health import StoreHealth
from engine.indexing import Indexing
from engine.library import Library
from engine.mirror_keeper import MirrorKeeper
from engine.query import BatchSettings, QueryEncoder
from engine.read_policy import ReadPolicy
from engine.reconcile import Reconcile
from engine.resources import Resources
from engine.search import Search
from engine.search_mode import SearchMode
from engine.status import StatusReport
from engine.store_search import StoreFusedSearch
from engine.thumbnails import Thumbnails
from engine.uploads import Uploads
from engine.verification import Verification
from engine.watch import LibraryWatcher

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from engine.settings import Settings
    from store.base import Store
    from store.mirror import Mirror


class Lookalike:
    def __init__(
        self, settings: Settings, *, store: Store | None = None, index_only: bool = False
    ) -> None:
        """``index_only`` for a process that only indexes (``lookalike index``): the models
        take less memory (embedder.config.ModelConfig.index_only); a search still works."""
        self.settings = settings
        self.keys = PathKeys(settings.library_dir)
        self.health = StoreHealth()
        self.resources = Resources(
            settings,
            store=store,
            on_models_loaded=self._models_loaded,
            index_only=index_only,
        )
        self.catalog = ModelCatalog(
            settings,
            store=self.resources.store,
            embedder=self.resources.embedder,
            embedder_loaded=self.resources.embedder_loaded,
        )
        self.mirror_keeper = MirrorKeeper(
            settings.data_dir, self.resources.store, self.catalog.blocks, self.health
        )
        self.search_mode = SearchMode(
            settings.search,
            settings.mirror_max_mb,
            self.resources.store,
            width=lambda: sum(dim for _, dim in self.catalog.blocks()),
            mirror_problem=lambda: self.mirror_keeper.problem,
        )
        self.mirror_keeper.wanted = self.search_mode.keeps_mirror
        self.reader = ReadPolicy(
            self.resources.store,
            self.mirror_keeper,
            self.health,
            self.search_mode,
            StoreFusedSearch(self.resources.store, self.search_mode.points),
        )
        self.queries = QueryEncoder(
            self.resources.embedder,
            self.catalog.clip_status,
            BatchSettings(
                max_batch=settings.search_batch_max,
                wait_ms=settings.search_batch_wait_ms,
                gather_ms=settings.search_batch_gather_ms,
            ),
        )

    # -- for adapters, tests and benchmarks: read access to what the use cases share ------------
    @property
    def store(self) -> Store:
        return self.resources.store()

    @property
    def mirror(self) -> Mirror:
        return self.mirror_keeper.mirror

    def _kept_mirror(self) -> Mirror | None:
        """The mirror, loaded if this process keeps one; None when Qdrant alone serves."""
        return self.mirror_keeper.mirror if self.mirror_keeper.wanted() else None

    def _store_serving(self) -> tuple[Store, StoreFusedSearch] | None:
        """The store and its fused search while Qdrant serves searches, else None."""
        if self.search_mode.current().mode != "qdrant":
            return None
        return self.resources.store(), self.reader.fused

    def _models_loaded(self, embedder: Any) -> None:
        self.catalog.record(embedder)

    def _embed_files(self, items: Sequence[tuple[str, Path]]) -> Any:
        return self.resources.embedder().embed_files(items)

    # -- the use cases ------------------------------------------------------------------------
    @cached_property
    def indexing(self) -> Indexing:
        return Indexing(
            store=self.resources.store,
            keys=self.keys,
            library_dir=self.settings.library_dir,
            embed=self._embed_files,
            vector_tags=self.catalog.vector_tags,
            sync_mirror=self._after_write,
            require_store=self.reader.require_store,
            keep_features=self.verification.save,
        )

    @cached_property
    def library(self) -> Library:
        return Library(
            store=self.resources.store,
            reader=self.reader,
            keys=self.keys,
            trash_dir=self.settings.data_dir / "trash",
            sync_mirror=self._after_write,
            unindex=lambda paths: self.indexing.unindex_files(paths),
        )

    @cached_property
    def uploads(self) -> Uploads:
        return Uploads(
            store=self.resources.store,
            indexing=self.indexing,
            keys=self.keys,
            library_dir=self.settings.library_dir,
            image=self.library.get,
            sync_mirror=self._after_write,
            max_file_bytes=self.settings.max_upload_mb * 1024 * 1024,
        )

    @cached_property
    def search(self) -> Search:
        return Search(
            reader=self.reader,
            queries=self.queries,
            catalog=self.catalog,
            colours=ColourFilter(self.reader),
            file_of=self.library.file_path,
            verification=self.verification,
            inside=self.settings.inside,
        )

    @cached_property
    def duplicates(self) -> Duplicates:
        return Duplicates(
            mirror=lambda: self.mirror_keeper.mirror,
            payloads=lambda: self.mirror_keeper.payloads,
            catalog=self.catalog,
            by_store=self._store_serving,
        )

    @cached_property
    def duplicate_review(self) -> DuplicateReview:
        return DuplicateReview(
            self.duplicates,
            store=self.resources.store,
            library=self.library,
            sync_mirror=self._after_write,
            copies=self.verification.all_copies,
        )

    @cached_property
    def reconcile(self) -> Reconcile:
        return Reconcile(
            self.indexing,
            self._after_write,
            store=self.resources.store,
            verification=self.verification,
        )

    @cached_property
    def verification(self) -> Verification:
        return Verification(
            self.settings.data_dir,
            self._image_file,
            candidates=self.settings.verify_candidates,
            enabled=self.settings.verify,
        )

    def _image_file(self, point_id: str) -> Path:
        """An image's first file that exists (indexing read it; it may lie outside the
        library when the CLI indexed another folder): to rebuild its keypoints."""
        for key in self.reader.image(point_id).get("paths") or ():
            path = self.keys.path(key)
            if path.is_file():
                return path
        raise FileNotFoundError(f"no file of image {point_id} exists any more")

    def _after_write(self, *, full: bool = False, removed: Sequence[str] | set[str] = ()) -> int:
        """After the store changed: the mirror follows, and deleted images' keypoint
        records go."""
        if removed:
            self.verification.forget(removed)
        return self.mirror_keeper.sync(full=full, removed=removed)

    @cached_property
    def thumbnails(self) -> Thumbnails:
        return Thumbnails(
            self.settings.data_dir / "thumbs", self.library.get, self.library.file_path
        )

    @cached_property
    def status(self) -> StatusReport:
        return StatusReport(
            settings=self.settings,
            store=self.resources.store,
            catalog=self.catalog,
            mirror=self._kept_mirror,
            serving=self.search_mode.current,
            embedder=self.resources.loaded_embedder,
        )

    def watcher(self, folder: Path | None = None, **kw: Any) -> LibraryWatcher:
        """A watcher of ``folder`` (default: the library) that indexes what changes."""
        return LibraryWatcher(
            self.indexing,
            folder or self.settings.library_dir,
            reconcile=self.reconcile.run,
            reconcile_every_s=self.settings.reconcile_every_s,
            **kw,
        )

    def close(self) -> None:
        """Save the mirror and its payload cache, stop the query batcher, close the models
        and the store."""
        self.mirror_keeper.close()
        if "verification" in self.__dict__:
            self.verification.close()
        self.queries.close()
        self.resources.close()
