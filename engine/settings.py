"""One settings tree for the whole product. Every variable is prefixed ``LOOKALIKE_``.

Each section knows how to build the config object of the layer it feeds, so the
lower layers (``embedder``, ``store``) never read the environment themselves.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from embedder.config import ModelConfig

if TYPE_CHECKING:
    # Imported where used: the store package loads numpy, which a CLI command answered by
    # a running server (``lookalike status``) never needs.
    from store.config import StoreConfig


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOOKALIKE_", extra="ignore")

    data_dir: Path = Field(
        Path("./data"),
        description="Where the embedded store, the FAISS mirror snapshot, thumbnails and "
        "secrets live.",
    )
    library_dir: Path = Field(
        Path("./library"),
        description="The image folder indexed by default and where uploads are stored.",
    )
    qdrant_url: str | None = Field(
        None,
        description="URL of a Qdrant server. When set, the server backend is used instead of "
        "the embedded Qdrant Edge store.",
    )
    # A secret: SecretStr keeps it out of reprs, so logging the settings cannot leak it.
    qdrant_api_key: SecretStr | None = Field(
        None, description="API key for the Qdrant server (only with LOOKALIKE_QDRANT_URL)."
    )
    collection: str = Field("lookalike", description="Qdrant collection name (server backend).")
    # --- store layout (docs/scaling.md "Collections"); store_config() passes these on ---
    qdrant_shards: int | None = Field(
        None,
        ge=1,
        le=1024,
        description="Shards of a new server collection. Default: 2 x the cluster's peers "
        "(1 on a single node). Fixed at creation: self-hosted Qdrant cannot reshard, so "
        "choose it for the nodes you will grow to.",
    )
    qdrant_replication: int | None = Field(
        None,
        ge=1,
        le=16,
        description="Copies of each shard in a new server collection (replication_factor). "
        "Default: 2 when the cluster has two or more peers, else 1.",
    )
    qdrant_write_consistency: int = Field(
        1,
        ge=1,
        le=16,
        description="Replicas that must confirm a write (write_consistency_factor); at most "
        "LOOKALIKE_QDRANT_REPLICATION.",
    )
    qdrant_quantization: Literal["int8", "off"] = Field(
        "int8",
        description="Quantization of each named vector: 'int8' keeps an int8 scalar copy in "
        "RAM (a quarter of the float size) for approximate searches, rescored with the "
        "originals; 'off' none. Binary quantization is not offered: the CNN and HSV vectors "
        "are non-negative and lose everything to it.",
    )
    qdrant_on_disk: bool = Field(
        True,
        description="Keep the original vectors on disk (memory-mapped) rather than in RAM; "
        "with int8 quantization in RAM, only rescoring reads them.",
    )
    hnsw_m: int = Field(32, ge=4, le=128, description="HNSW graph: edges per node (Qdrant's m).")
    hnsw_ef_construct: int = Field(
        256,
        ge=4,
        le=2000,
        description="HNSW graph: candidates considered while building it (ef_construct); at "
        "least LOOKALIKE_HNSW_M.",
    )
    hnsw_ef: int | None = Field(
        None,
        ge=16,
        le=16384,
        description="HNSW search: candidates an approximate search keeps while walking the "
        "graph (Qdrant's hnsw_ef, at least the number asked for). Unset: it grows with the "
        "collection, 256 up to 100,000 images and about 1,000 at 1M. Read per search: "
        "changing it rebuilds nothing.",
    )
    edge_shards: int = Field(
        1,
        ge=1,
        le=64,
        description="Shards of the embedded Qdrant Edge store: 1 (one shard, as always) or "
        "more (points spread by id over subdirectories, searched together). Fixed when the "
        "data directory is first used: changing it later fails at start-up.",
    )

    @model_validator(mode="after")
    def _store_layout_agrees(self) -> Settings:
        server_only = {
            "LOOKALIKE_QDRANT_SHARDS": self.qdrant_shards,
            "LOOKALIKE_QDRANT_REPLICATION": self.qdrant_replication,
        }
        for name, value in server_only.items():
            if value is not None and not self.qdrant_url:
                raise ValueError(
                    f"{name} is set but LOOKALIKE_QDRANT_URL is not: it applies to a Qdrant "
                    "server collection only (the embedded store uses LOOKALIKE_EDGE_SHARDS)."
                )
        if self.edge_shards > 1 and self.qdrant_url:
            raise ValueError(
                "LOOKALIKE_EDGE_SHARDS is set above 1 but LOOKALIKE_QDRANT_URL is set too: Edge "
                "shards apply to the embedded store only (use LOOKALIKE_QDRANT_SHARDS)."
            )
        replicas = self.qdrant_replication
        if replicas is not None and self.qdrant_write_consistency > replicas:
            raise ValueError(
                f"LOOKALIKE_QDRANT_WRITE_CONSISTENCY={self.qdrant_write_consistency} exceeds "
                f"LOOKALIKE_QDRANT_REPLICATION={replicas}: a write cannot wait for more "
                "replicas than exist."
            )
        if self.hnsw_ef_construct < self.hnsw_m:
            raise ValueError(
                f"LOOKALIKE_HNSW_EF_CONSTRUCT={self.hnsw_ef_construct} is below "
                f"LOOKALIKE_HNSW_M={self.hnsw_m}: building the graph needs at least m candidates."
            )
        return self

    clip_weights: str = Field(
        "openai",
        description="CLIP ViT-B/32 weights: 'openai' (open_clip pretrained tag), a local "
        "checkpoint path, 'random' (explicit test use only, fixed seed) or 'off'.",
    )
    cnn: Literal["resnet50", "effnet-lite0", "off"] = Field(
        "resnet50",
        description="CNN backbone for shape and texture: 'resnet50', 'effnet-lite0' or 'off'.",
    )
    cnn_weights: str = Field(
        "imagenet",
        description="CNN weights: 'imagenet' (torchvision / bundled), a local path, or 'random'.",
    )
    hsv: bool = Field(True, description="Enable the HSV colour histogram model.")
    models_strict: bool = Field(
        False,
        description="Make any model-weight failure fatal instead of falling back "
        "(cnn -> bundled EfficientNet-Lite0, clip -> off).",
    )
    model_cache_dir: Path | None = Field(
        None,
        description="Where downloaded model weights are cached. Default: the libraries' own "
        "caches (~/.cache/torch, ~/.cache/huggingface).",
    )
    device: str = Field("auto", description="Torch device: 'auto', 'cpu' or 'cuda'.")
    batch_size: int = Field(16, ge=1, le=512, description="Images per inference batch.")
    inference_threads: int = Field(
        0, ge=0, description="Torch intra-op threads; 0 lets torch decide (all cores)."
    )
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto",
        description="Inference precision of the neural models: 'auto' runs bf16 (autocast) "
        "where the hardware computes it natively (AVX512-BF16 or AMX CPUs, bf16 GPUs) and fp32 "
        "elsewhere; 'fp32' always; 'bf16' always (slow where it is emulated).",
    )
    compile: Literal["auto", "on", "off"] = Field(
        "auto",
        description="torch.compile the neural models: 'auto' compiles in the background when "
        "an index run is long enough that compiling makes it faster (docs/performance.md; it "
        "takes 30-75 s a model on 2 cores and speeds bulk embedding up ~1.5x), or under "
        "sustained search load; 'on' compiles while loading the models (slower start); 'off' "
        "never. Compiled code is kept in <data_dir or model_cache_dir>/compiled. Needs a C++ "
        "compiler; without one the models stay eager.",
    )
    int8: Literal["auto", "off"] = Field(
        "auto",
        description="'auto': a compiled model on a CPU with VNNI and native bf16 is quantized "
        "to int8 (calibrated on the first 64 images it embeds) and used only if its vectors "
        "keep a cosine >= 0.998 to fp32 on check images (~1.4x faster); 'off': never.",
    )
    search_batch_wait_ms: float = Field(
        2.0,
        ge=0,
        le=100,
        description="Dynamic batching of searches: how long a query image waits for others "
        "to share its inference batch. Queries that arrive while a batch is being embedded "
        "always join the next one.",
    )
    search_batch_gather_ms: float = Field(
        60.0,
        ge=0,
        le=1000,
        description="Dynamic batching of searches under load: how long a batch waits for "
        "companions while queries are still being decoded, or after a shared batch, before "
        "it leaves without them (8 clients at 100k points: 25 ms gave 29.5 searches/s with "
        "batches of 7 and 1 alternating, 60 ms gave 33.9/s with batches of 8). A lone query "
        "waits search_batch_wait_ms only.",
    )
    search_batch_max: int = Field(
        8, ge=1, le=64, description="Most query images embedded in one search batch."
    )
    port: int = Field(5050, ge=1, le=65535, description="HTTP port for `lookalike serve`.")
    host: str = Field("127.0.0.1", description="HTTP bind address.")
    watch: bool = Field(
        False,
        description="Watch the library folder while serving: new and changed files are "
        "indexed and deleted ones dropped within seconds (`lookalike watch` does the same "
        "from a terminal).",
    )
    reconcile_every_s: float = Field(
        3600.0,
        ge=0,
        description="While watching, also run a full reconcile this often (seconds; 0: "
        "never), for the changes no event reports (network mounts, folders moved at once).",
    )
    mirror_full_diff_s: float = Field(
        300.0, gt=0, description="Seconds between full id comparisons of mirror and store."
    )
    verify: bool = Field(
        True,
        description="Copy verification: keep each image's local features (SIFT, at most "
        "16 KB per image, under the data directory) and re-rank a search's best candidates "
        "by matching them with a geometric check, so a hit can say '312 matching points, "
        "same layout: a copy'. Off: plain embedding similarity, a little faster indexing.",
    )
    verify_candidates: int = Field(
        50,
        ge=0,
        le=200,
        description="Copy verification: how many of a search's best candidates are checked "
        "(0: none). More finds copies the embeddings rank lower, at about 2 ms each.",
    )
    inside: Literal["auto", "on", "off"] = Field(
        "auto",
        description="'Look inside' a picture query (find a library image inside a catalogue "
        "page or a screenshot: five windows, its quarters and centre, embedded and searched, "
        "their best candidates verified). 'auto': only when the whole picture proves no "
        "copy and is at least 256 px on each side; 'on': always; 'off': only when a query "
        "asks. Costs five more embeddings and up to 50 more verifications where it runs.",
    )
    search: Literal["mirror", "qdrant", "auto"] = Field(
        "auto",
        description="Who serves a search: 'mirror' (the FAISS mirror in this process: fast, "
        "one machine), 'qdrant' (Qdrant itself, exact two-round fusion: no per-point state "
        "here, so any number of API replicas can serve one collection) or 'auto' (the "
        "mirror while the fused vectors fit LOOKALIKE_MIRROR_MAX_MB and it keeps up with "
        "the store, else Qdrant). Both give the same answer.",
    )
    fused_index: Literal["auto", "on", "off"] = Field(
        "auto",
        description="Keep a fused index in Qdrant: one more named vector per image, every "
        "model's vector side by side, so a search that weighs several models is one graph "
        "search instead of a deep read of each model's list (at 1M images, milliseconds "
        "instead of up to a second). Costs as much again of the store's RAM, disk and "
        "indexing time. 'auto': kept when LOOKALIKE_SEARCH is 'qdrant'. Built at start-up "
        "for existing images.",
    )
    mirror_max_mb: float = Field(
        4096.0,
        gt=0,
        description="'auto' search: the largest mirror (fused float32 vectors, in MiB) this "
        "process keeps; above it Qdrant serves. 4096 MiB is about 350k images with all "
        "three models (512 + 2048 + 512 dimensions).",
    )
    max_upload_mb: int = Field(
        200,
        ge=1,
        le=4096,
        description="Largest file accepted, in MiB: each uploaded image (the web page sends "
        "one file per request, so a batch of any size goes through) and a search image. A "
        "larger file is refused with 413 and this number.",
    )
    admin_password: SecretStr | None = Field(
        None,
        description="The admin's initial password, read only when none is stored yet (first "
        "start): remove it from the environment afterwards. Without it the first start "
        "generates one, writes it to data_dir/auth/initial_admin_password (0600, never "
        "logged) and asks for a new one at the first login. Change it later with `lookalike "
        "passwd`; only an argon2 hash is kept, under data_dir/auth.",
    )
    secret_key: SecretStr | None = Field(
        None,
        description="Secret that signs CSRF tokens. Default: a random key generated on first "
        "start and kept in data_dir/auth/secret_key. Set it when several API processes share "
        "one data directory behind a load balancer.",
    )
    cookie_secure: bool | Literal["auto"] = Field(
        "auto",
        description="Mark the session and CSRF cookies Secure: 'auto' does so when the request "
        "came over HTTPS (directly or per X-Forwarded-Proto from a proxy), 'true' always, "
        "'false' never.",
    )
    trusted_proxies: str = Field(
        "",
        description="Comma-separated IP addresses or CIDR networks of the reverse proxies in "
        "front of the server (e.g. '127.0.0.1,172.18.0.0/16'). Only a request from one of "
        "them has its X-Forwarded-For (client address: login limits) and X-Forwarded-Proto "
        "believed. Default: none, so X-Forwarded-For is ignored.",
    )

    @model_validator(mode="after")
    def _no_contradictions(self) -> Settings:
        if self.qdrant_api_key and not self.qdrant_url:
            raise ValueError(
                "LOOKALIKE_QDRANT_API_KEY is set but LOOKALIKE_QDRANT_URL is not: the API key "
                "only applies to a Qdrant server. Set the URL or unset the key."
            )
        for item in self.trusted_proxy_list():
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(
                    f"LOOKALIKE_TRUSTED_PROXIES: {item!r} is not an IP address or CIDR network "
                    "(e.g. 127.0.0.1 or 172.18.0.0/16)."
                ) from None
        if self.cnn == "off" and self.cnn_weights not in ("imagenet",):
            raise ValueError(
                f"LOOKALIKE_CNN_WEIGHTS={self.cnn_weights!r} has no effect with LOOKALIKE_CNN=off."
            )
        return self

    def trusted_proxy_list(self) -> list[str]:
        return [item.strip() for item in self.trusted_proxies.split(",") if item.strip()]

    def model_config_for_embedder(self) -> ModelConfig:
        return ModelConfig(
            clip_weights=self.clip_weights,
            cnn=self.cnn,
            cnn_weights=self.cnn_weights,
            hsv=self.hsv,
            strict=self.models_strict,
            cache_dir=self.model_cache_dir,
            # Compiled code is kept with the data (embedder.compile_cache), not in /tmp.
            compile_dir=(self.model_cache_dir or self.data_dir) / "compiled",
            device=self.device,
            batch_size=self.batch_size,
            query_batch=self.search_batch_max,
            threads=self.inference_threads,
            precision=self.precision,
            compile=self.compile,
            int8=self.int8,
            keypoints=self.verify,
        )

    @property
    def wants_fused_index(self) -> bool:
        return self.fused_index == "on" or (self.fused_index == "auto" and self.search == "qdrant")

    def store_config(self) -> StoreConfig:
        from store.config import StoreConfig

        return StoreConfig(
            data_dir=self.data_dir,
            url=self.qdrant_url,
            api_key=self.qdrant_api_key.get_secret_value() if self.qdrant_api_key else None,
            collection=self.collection,
            shards=self.qdrant_shards,
            replication=self.qdrant_replication,
            write_consistency=self.qdrant_write_consistency,
            quantization=self.qdrant_quantization,
            on_disk=self.qdrant_on_disk,
            hnsw_m=self.hnsw_m,
            hnsw_ef_construct=self.hnsw_ef_construct,
            hnsw_ef=self.hnsw_ef,
            edge_shards=self.edge_shards,
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
