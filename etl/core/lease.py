"""The warehouse lock on an object store: a lease object taken with a conditional write.

A local warehouse is locked with an OS file lock (``filelock``), which dies with its holder. An object store has no
such lock, so a warehouse on S3 is locked by a small JSON object, ``<warehouse>/.etl.lock``:

* taken by creating it only if it does not exist (``If-None-Match: *``; exactly one of several writers succeeds);
* renewed by its holder every ``ETL_LEASE_SECONDS``/3 seconds (default lease 60 s) with a write that succeeds only
  if the object is still the one it wrote (``If-Match`` on its ETag);
* released by deleting it, again only if it is still the holder's;
* taken over only when it has expired (its holder stopped renewing: a killed process or a lost machine), with an
  ``If-Match`` write on the expired object's ETag, so two waiters cannot both take it over.

A holder that fails to renew (the lease was taken over after it stalled past the lease) marks the lease lost, and
a commit checks on the store that the lease is still the one its holder last wrote (`Lease.still_held`) before it
writes anything; either refuses the commit (`etl.core.warehouse.WarehouseBusy`), and the warehouse's own check that the
committed state did not move (`StaleSnapshot`) stays as a second guard. The body names the holder (process, host,
since) for the "waiting for the warehouse" messages. Needs a store with conditional writes (AWS S3 since 2024,
MinIO, moto).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
import threading
import time
import uuid
from typing import Any

from etl.core.storage import Location

log = logging.getLogger(__name__)

DEFAULT_LEASE_SECONDS = 60.0


def lease_seconds() -> float:
    from etl.core.warehouse import seconds_setting  # the warehouse module imports this one

    return seconds_setting("ETL_LEASE_SECONDS", DEFAULT_LEASE_SECONDS, 3, "3 seconds or more")


def _precondition_failed(exc: BaseException) -> bool:
    text = str(exc)
    return isinstance(exc, FileExistsError) or "pre-condition" in text or "PreconditionFailed" in text or "412" in text


class Lease:
    """One process's hold on a lease object (re-entrant in the thread that holds it)."""

    def __init__(self, location: Location, name: str):
        self.location = location
        self.bucket, _, self.key = location.key(name).partition("/")
        self.url = location.child(name)
        self.token = uuid.uuid4().hex
        self.etag: str | None = None
        self.lost = False
        self.count = 0
        self._owner: int | None = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self._guard = threading.Lock()

    @property
    def held(self) -> bool:
        return self.count > 0 and self._owner == threading.get_ident()

    def _s3(self, method: str, **kwargs: Any) -> Any:
        return self.location.fs.call_s3(method, Bucket=self.bucket, Key=self.key, **kwargs)

    def _body(self, seconds: float) -> bytes:
        now = time.time()
        since = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return json.dumps({"holder": f"pid {os.getpid()} on {socket.gethostname()} since {since}", "token": self.token, "expires": now + seconds}).encode()

    def _get(self) -> tuple[bytes, dict]:
        """The lease object's body and response (FileNotFoundError when there is none)."""
        from fsspec.asyn import sync

        got = self._s3("get_object")
        return sync(self.location.fs.loop, got["Body"].read), got

    def holder(self) -> tuple[str, float | None, str | None]:
        """(who holds it, when it expires (epoch s), its ETag) - ("", None, None) when nobody does. A body that
        cannot be read expires a lease period after it was written."""
        try:
            data, got = self._get()
        except FileNotFoundError:
            return "", None, None
        try:
            body = json.loads(data)
            return str(body.get("holder") or "another run"), float(body["expires"]), got.get("ETag")
        except (ValueError, KeyError, TypeError):
            written = got.get("LastModified")
            expires = written.timestamp() + lease_seconds() if isinstance(written, dt.datetime) else time.time() + lease_seconds()
            return "another run (an unreadable lock object)", expires, got.get("ETag")

    def try_acquire(self) -> tuple[bool, str]:
        """Take the lease if it is free or expired; (taken, who holds it otherwise)."""
        if self.held:
            self.count += 1
            return True, ""
        seconds = lease_seconds()
        try:
            got = self._s3("put_object", Body=self._body(seconds), IfNoneMatch="*")
        except Exception as exc:
            if not _precondition_failed(exc):
                raise
            who, expires, etag = self.holder()
            if expires is None:
                return False, "another run"  # released just now: the next attempt takes it
            if expires > time.time() or etag is None:
                return False, who
            try:  # expired: take it over, unless another waiter did first
                got = self._s3("put_object", Body=self._body(seconds), IfMatch=etag)
            except Exception as exc2:
                if _precondition_failed(exc2):
                    return False, "another run"
                raise
            log.warning("warehouse lock %s: taken over from %s (its lease expired)", self.url, who)
        self.etag = got.get("ETag")
        self.lost = False
        self.count = 1
        self._owner = threading.get_ident()
        self._stop.clear()
        self._renewer = threading.Thread(target=self._renew, args=(seconds,), name="etl-lease", daemon=True)
        self._renewer.start()
        return True, ""

    def _renew(self, seconds: float) -> None:
        while not self._stop.wait(seconds / 3):
            with self._guard:
                if self._stop.is_set():
                    return
                try:
                    got = self._s3("put_object", Body=self._body(seconds), IfMatch=self.etag)
                    self.etag = got.get("ETag")
                except Exception as exc:
                    if _precondition_failed(exc):
                        self.lost = True
                        log.error("warehouse lock %s: lost (another run took it over); this run will not commit", self.url)
                        return
                    log.warning("warehouse lock %s: could not renew (%s); trying again", self.url, type(exc).__name__)

    def release(self) -> None:
        if not self.held:
            return
        self.count -= 1
        if self.count:
            return
        with self._guard:
            self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        self._owner = None
        if self.lost:
            return
        try:
            self._s3("delete_object", IfMatch=self.etag)
        except Exception as exc:
            if not _precondition_failed(exc) and self._mine():
                try:  # a store without conditional deletes: the object is still this holder's, so remove it
                    self._s3("delete_object")
                    return
                except Exception as exc2:
                    exc = exc2
            # taken over (precondition) or unreachable: it expires on its own
            log.warning("warehouse lock %s: not removed (%s); it expires within %.0f s", self.url, type(exc).__name__, lease_seconds())

    def still_held(self) -> bool:
        """Whether the lease object is still the one this holder last wrote (checked on the store, not assumed)."""
        if not self.held or self.lost:
            return False
        with self._guard:
            try:
                info = self.location.fs.info(f"{self.bucket}/{self.key}", refresh=True)
            except FileNotFoundError:
                return False
            return info.get("ETag") == self.etag

    def _mine(self) -> bool:
        try:
            return json.loads(self._get()[0]).get("token") == self.token
        except Exception:
            return False
