"""The artifact root: where checkpoint files live.

A local folder by default (``cre-results/artifacts``); any fsspec URI for a
cluster (``s3://bucket/prefix`` with s3fs installed, ``gs://`` with gcsfs, a
mounted NFS path as a plain folder, ``memory://`` in tests). The store keeps the
URI, epoch and sha256 of every file; reads verify the sha256.

Layout: ``<root>/<sweep-independent trial id[:2]>/<trial id>/{last,best}.pt``.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from cre.checkpoint import write_atomic


class ArtifactError(RuntimeError):
    """A checkpoint file is missing, unreadable or does not match its sha256."""


def _is_uri(root: str) -> bool:
    return "://" in root  # file:// too: fsspec's local filesystem (open() turns a file:// root into a folder)


@dataclass(frozen=True)
class ArtifactRoot:
    """Reads and writes checkpoint bytes under one root (local folder or fsspec URI)."""

    root: str

    @classmethod
    def open(cls, root: str | os.PathLike) -> "ArtifactRoot":
        """Validate the root: a local folder is created; a URI needs its fsspec filesystem installed."""
        text = str(root)
        if text.startswith("file://"):
            text = text[len("file://") :]
        if _is_uri(text):
            protocol = text.split("://", 1)[0]
            try:
                import fsspec

                fsspec.filesystem(protocol)
            except (ImportError, ValueError) as exc:
                raise ArtifactError(
                    f"artifact root {text}: no filesystem for '{protocol}://' ({exc}); install its fsspec "
                    f"package (s3fs for s3://, gcsfs for gs://) or use a shared local folder (NFS)"
                ) from None
            rest = text.split("://", 1)[1].rstrip("/")
            return cls(f"{protocol}://{rest}")  # "memory://" must not become "memory:", a local folder
        path = Path(text).expanduser().resolve()
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ArtifactError(f"artifact root {path}: cannot create folder ({exc.strerror})") from None
        return cls(str(path))

    def uri_for(self, trial_id: str, kind: str) -> str:
        """Where a trial's ``last`` / ``best`` checkpoint goes."""
        return f"{self.root}/{trial_id[:2]}/{trial_id}/{kind}.pt"

    def write(self, uri: str, data: bytes) -> tuple[str, int]:
        """Write atomically (local: temporary file + rename); returns (sha256, bytes)."""
        digest = hashlib.sha256(data).hexdigest()
        if _is_uri(uri):
            import fsspec

            fs, path = fsspec.core.url_to_fs(uri)
            parent = path.rsplit("/", 1)[0]
            fs.makedirs(parent, exist_ok=True)
            tmp = f"{path}.{uuid.uuid4().hex}.tmp"
            with fs.open(tmp, "wb") as fh:
                fh.write(data)
            fs.mv(tmp, path)
            return digest, len(data)
        write_atomic(uri, data)
        return digest, len(data)

    @staticmethod
    def read(uri: str, sha256: str | None = None) -> bytes:
        """The file's bytes; ArtifactError when missing or when the sha256 does not match."""
        try:
            if _is_uri(uri):
                import fsspec

                with fsspec.open(uri, "rb") as fh:
                    data = fh.read()
            else:
                data = Path(uri).read_bytes()
        except (OSError, FileNotFoundError) as exc:
            raise ArtifactError(f"checkpoint {uri}: cannot read ({exc})") from None
        if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
            raise ArtifactError(f"checkpoint {uri}: sha256 does not match the store's record")
        return data
