"""Where the warehouse (or a staging area) lives: a local folder, or a prefix of an S3-compatible bucket.

A `Location` is given as a folder path, a ``file://`` URL or an ``s3://bucket/prefix`` URL. The Delta tables under
it are read and written by deltalake and polars with `Location.storage_options` (their own object-store clients);
the few small files the warehouse manages itself (listing a table's log, its first commit, the lock) go through
fsspec (``s3fs`` for S3).

Storage options come from the environment, as for the landing zone: ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_REGION``/``AWS_DEFAULT_REGION``, and
``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL`` for an S3-compatible store (MinIO, Ceph, moto); an ``http://``
endpoint is allowed as such (``AWS_ALLOW_HTTP``). Credentials missing from the environment are left to the
clients' own chains (instance profile, AWS_PROFILE).
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from etl.errors import ConfigError

REMOTE_SCHEMES = ("s3",)  # object stores a Location may be on (tested against an S3 API server)
_ENV_OPTIONS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")  # passed as storage options of the same names


def is_remote(root: str | Path) -> bool:
    """Whether ``root`` names an object store (``s3://...``) rather than a local folder."""
    return isinstance(root, str) and urlsplit(root).scheme.lower() in REMOTE_SCHEMES


def endpoint_url() -> str | None:
    """The S3-compatible endpoint from the environment, if any."""
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def s3_storage_options() -> dict[str, str]:
    """deltalake's and polars' storage options for S3 from the environment (see the module docstring)."""
    options = {key: os.environ[key] for key in _ENV_OPTIONS if os.environ.get(key)}
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        options["AWS_REGION"] = region
    endpoint = endpoint_url()
    if endpoint:
        options["AWS_ENDPOINT_URL"] = endpoint
        if endpoint.lower().startswith("http://"):
            options["AWS_ALLOW_HTTP"] = "true"
    return options


@dataclass(frozen=True)
class Location:
    """A folder: local (``url`` is its absolute path) or on an object store (``url`` is ``s3://bucket/prefix``)."""

    url: str
    remote: bool
    _fs: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, root: str | Path, what: str = "warehouse") -> Location:
        if isinstance(root, Path):
            return cls(str(root), False)
        parts = urlsplit(root)
        scheme = parts.scheme.lower()
        if scheme == "file":
            return cls(unquote(parts.path) or "/", False)
        if scheme in REMOTE_SCHEMES:
            if not parts.netloc:
                raise ConfigError(f"{root}: the {what} URL names no bucket; give s3://bucket/prefix")
            prefix = parts.path.strip("/")
            return cls(f"{scheme}://{parts.netloc}" + (f"/{prefix}" if prefix else ""), True)
        if scheme and len(scheme) > 1:  # a Windows drive letter is not a scheme
            raise ConfigError(f"{root}: a {what} is a folder or an s3://bucket/prefix URL; {scheme}:// is not supported")
        return cls(str(root), False)

    # -- names ---------------------------------------------------------------------------------------
    def child(self, *parts: str) -> str:
        """The path (local) or URL (remote) of something under the location."""
        if self.remote:
            return posixpath.join(self.url, *parts)
        return str(Path(self.url, *parts))

    @property
    def path(self) -> Path:
        """The local folder (only for a local location)."""
        if self.remote:
            raise ConfigError(f"{self.url}: not a local folder")
        return Path(self.url)

    def key(self, *parts: str) -> str:
        """What fsspec calls the object: ``bucket/prefix/...`` (remote) or the local path."""
        full = self.child(*parts)
        return full.split("://", 1)[1] if self.remote else full

    @property
    def storage_options(self) -> dict[str, str] | None:
        """Options for deltalake and polars (None for a local folder)."""
        return s3_storage_options() if self.remote else None

    @cached_property
    def fs(self) -> Any:
        """An fsspec filesystem for the location's own small files."""
        if not self.remote:
            from fsspec.implementations.local import LocalFileSystem

            return LocalFileSystem()
        import fsspec

        endpoint = endpoint_url()
        try:
            return fsspec.filesystem("s3", skip_instance_cache=True, use_listings_cache=False, **({"endpoint_url": endpoint} if endpoint else {}))
        except ImportError:  # fsspec's S3 filesystem is the optional extra [s3]
            raise ConfigError(f"{self.url}: a location on S3 needs s3fs: pip install 'police-etl[s3]' (or pip install s3fs)") from None

    # -- small files -----------------------------------------------------------------------------------
    def names(self, *parts: str) -> list[str] | None:
        """The names directly in a folder under the location; None when there is no such folder."""
        if not self.remote:
            try:
                return os.listdir(self.child(*parts))
            except (FileNotFoundError, NotADirectoryError):
                return None
        try:
            listed = self.fs.ls(self.key(*parts), detail=False, refresh=True)
        except FileNotFoundError:
            return None
        return [posixpath.basename(p.rstrip("/")) for p in listed] or None

    def read_bytes(self, *parts: str) -> bytes | None:
        """A small file's content; None when it does not exist."""
        if not self.remote:
            try:
                return Path(self.child(*parts)).read_bytes()
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                return None
        try:
            return bytes(self.fs.cat_file(self.key(*parts)))
        except FileNotFoundError:
            return None

    def identity(self, *parts: str) -> tuple[Any, ...] | None:
        """What changes when a file is written again: (inode, mtime) locally, the ETag on an object store."""
        if not self.remote:
            try:
                st = os.stat(self.child(*parts))
            except OSError:
                return None
            return (st.st_ino, st.st_mtime_ns)
        try:
            info = self.fs.info(self.key(*parts))
        except FileNotFoundError:
            return None
        return (str(info.get("ETag") or ""), int(info.get("size") or 0))


WORK_DIR_ENV = "ETL_WORK_DIR"


def work_dir(location: Location) -> Path:
    """The local folder kept for a warehouse on an object store (its Data Docs and caches): under ``ETL_WORK_DIR``
    (default ``~/.cache/police-etl``), one folder per warehouse URL, named by the URL's bucket and a short hash."""
    import hashlib

    base = Path(os.environ.get(WORK_DIR_ENV, "").strip() or Path.home() / ".cache" / "police-etl")
    bucket = urlsplit(location.url).netloc or "local"
    return base / f"{bucket}-{hashlib.sha256(location.url.encode()).hexdigest()[:12]}"
