"""The model store: hub weights the toolbox models load, kept on local disk by revision.

No model hub is reached at Triton start or at call time. Weights enter the store
only through ``toolmesh models pull`` (the hub client, ``huggingface_hub``, on a
machine that reaches the hub, or ``--from DIR`` for a snapshot copied by hand);
models read them from disk and fail to load, naming the exact ``pull`` command,
when they are absent.

Layout of ``$TOOLMESH_MODEL_DIR`` (default ``~/.cache/toolmesh/models``)::

    manifest.json                      what is installed: repo, revision, sha256 per file
    <name>/<revision>/config.json ...  one folder per installed revision

The manifest records the exact revision (a commit id when pulled from the hub)
and every file's sha256, so ``verify`` detects a truncated copy or a file
changed after the pull, and two machines can compare what they serve.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import WeightsMissing

__all__ = [
    "CATALOG",
    "MODEL_DIR_ENV",
    "HubUnreachable",
    "Installed",
    "ModelStore",
    "StoreEntry",
    "StoreError",
    "default_model_dir",
]

MODEL_DIR_ENV = "TOOLMESH_MODEL_DIR"
MANIFEST = "manifest.json"


class StoreError(RuntimeError):
    """The store cannot be read or written, or an entry is unknown or corrupt."""


class HubUnreachable(StoreError):
    """``pull`` could not reach the model hub (offline machine, proxy, DNS)."""


@dataclass(frozen=True)
class StoreEntry:
    """A model the store knows how to fetch.

    Attributes:
        name: The store name (``toolmesh models pull NAME``).
        repo: The hub repository.
        architecture: The ``transformers`` class the serving code instantiates.
        functions: Functions served from these weights.
        revision: A commit to pull; None pulls the current ``main`` and records
            its commit id in the manifest (pinned from then on).
        allow_patterns: Files to fetch: the safetensors weights, configs and
            tokenizer/processor files; never the duplicate PyTorch/TF/Flax weights.
        licence: As stated on the model card.
    """

    name: str
    repo: str
    architecture: str
    functions: tuple[str, ...]
    revision: str | None = None
    allow_patterns: tuple[str, ...] = ("*.json", "*.txt", "*.safetensors", "*.model")
    licence: str = ""


CATALOG: dict[str, StoreEntry] = {
    entry.name: entry
    for entry in (
        StoreEntry(
            "owlv2",
            "google/owlv2-base-patch16-ensemble",
            "Owlv2ForObjectDetection",
            ("find", "exists", "count", "verify_property"),
            licence="Apache-2.0",
        ),
        StoreEntry(
            "blip-vqa",
            "Salesforce/blip-vqa-base",
            "BlipForQuestionAnswering",
            ("simple_query",),
            licence="BSD-3-Clause",
        ),
        StoreEntry(
            "blip-caption",
            "Salesforce/blip-image-captioning-base",
            "BlipForConditionalGeneration",
            ("caption",),
            licence="BSD-3-Clause",
        ),
        StoreEntry(
            "blip-itm",
            "Salesforce/blip-itm-base-coco",
            "BlipForImageTextRetrieval",
            ("verify_property",),
            licence="BSD-3-Clause",
        ),
        StoreEntry(
            "clip",
            "openai/clip-vit-base-patch32",
            "CLIPModel",
            ("best_image_match", "best_text_match"),
            licence="MIT",
        ),
        StoreEntry(
            "depth",
            "depth-anything/Depth-Anything-V2-Small-hf",
            "DepthAnythingForDepthEstimation",
            ("compute_depth",),
            licence="Apache-2.0",
        ),
    )
}


def default_model_dir() -> Path:
    """``TOOLMESH_MODEL_DIR``, else ``~/.cache/toolmesh/models``; read on every call, never at import."""
    override = os.environ.get(MODEL_DIR_ENV)
    return Path(override) if override else Path.home() / ".cache" / "toolmesh" / "models"


@dataclass(frozen=True)
class Installed:
    """One installed entry, as the manifest records it."""

    name: str
    repo: str
    revision: str
    path: Path
    files: dict[str, str] = field(default_factory=dict)
    source: str = ""
    installed_at: str = ""

    @property
    def size_bytes(self) -> int:
        return sum((self.path / f).stat().st_size for f in self.files if (self.path / f).exists())


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


class ModelStore:
    """One store directory; cheap to construct, reads the manifest on each query.

    Safe for several readers (Triton instances) and one writer at a time: the
    manifest is replaced atomically, and a revision's folder is complete before
    the manifest names it.

    Args:
        root: The store directory; default :func:`default_model_dir`.
    """

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root) if root is not None else default_model_dir()

    # --- reading -----------------------------------------------------------------

    def manifest(self) -> dict[str, Any]:
        path = self.root / MANIFEST
        if not path.exists():
            return {"models": {}}
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise StoreError(f"{path}: unreadable manifest: {exc}") from exc
        if not isinstance(document, dict) or not isinstance(document.get("models"), dict):
            raise StoreError(f"{path}: not a toolmesh model-store manifest")
        return document

    def installed(self) -> dict[str, Installed]:
        """Every installed entry by name."""
        return {
            name: Installed(
                name=name,
                repo=record.get("repo", ""),
                revision=record["revision"],
                path=self.root / record["path"],
                files=dict(record.get("files", {})),
                source=record.get("source", ""),
                installed_at=record.get("installed_at", ""),
            )
            for name, record in self.manifest()["models"].items()
        }

    def require(self, name: str, *, function: str) -> Path:
        """The folder holding ``name``'s weights, for a model about to load them.

        Only presence is checked here (a full sha256 pass would cost seconds per
        instance); ``toolmesh models verify`` checks content.

        Raises:
            WeightsMissing: ``name`` is not installed, or its folder or a file
                the manifest lists is gone; the message names the pull command.
        """
        entry = CATALOG.get(name)
        repo = f" ({entry.repo})" if entry else ""
        try:
            record = self.installed().get(name)
        except StoreError as exc:
            raise WeightsMissing(f"{function}: {exc}; {self.pull_hint(name)}") from exc
        if record is None:
            raise WeightsMissing(
                f"{function} needs the weights {name!r}{repo}, which are not in the model "
                f"store {self.root}: {self.pull_hint(name)}"
            )
        absent = [f for f in record.files if not (record.path / f).is_file()]
        if not record.path.is_dir() or absent:
            raise WeightsMissing(
                f"{function}: the model store {self.root} lists {name!r} but its files are "
                f"missing ({', '.join(absent[:3]) or record.path}): {self.pull_hint(name)}"
            )
        return record.path

    def has(self, name: str) -> bool:
        """Whether ``name`` is installed with all its files (no hashing)."""
        try:
            self.require(name, function="check")
        except WeightsMissing:
            return False
        return True

    def pull_hint(self, name: str) -> str:
        """The exact command that installs ``name`` into this store."""
        prefix = "" if self.root == _home_default() else f"TOOLMESH_MODEL_DIR={self.root} "
        return (
            f"run `{prefix}toolmesh models pull {name}` on a machine that reaches the model hub "
            f"(or `toolmesh models pull {name} --from DIR` with a copied snapshot), then restart "
            "the mesh"
        )

    def verify(self) -> dict[str, list[str]]:
        """Recompute every file's sha256; returns problems per entry (empty lists: intact)."""
        problems: dict[str, list[str]] = {}
        for name, record in self.installed().items():
            found = problems.setdefault(name, [])
            for relative, expected in record.files.items():
                path = record.path / relative
                if not path.is_file():
                    found.append(f"{relative}: missing")
                elif sha256_file(path) != expected:
                    found.append(f"{relative}: sha256 differs from the manifest")
        return problems

    # --- writing -----------------------------------------------------------------

    def add(
        self,
        name: str,
        source: Path | str,
        *,
        repo: str = "",
        revision: str = "local",
        origin: str | None = None,
    ) -> Installed:
        """Install a local snapshot folder as ``name`` at ``revision`` (copied, hashed).

        Used by ``pull --from DIR`` and by tests that save tiny models. The copy is
        made next to its final place and renamed, then the manifest is replaced, so
        a reader never sees half an entry.

        Raises:
            StoreError: ``source`` is not a folder or holds no files.
        """
        source = Path(source)
        if not source.is_dir():
            raise StoreError(f"{source}: not a folder")
        files = sorted(p for p in source.rglob("*") if p.is_file() and ".cache" not in p.parts)
        if not files:
            raise StoreError(f"{source}: no files to install")
        safe_revision = revision.replace("/", "_")
        target = self.root / name / safe_revision
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{safe_revision}-", dir=target.parent))
        try:
            hashes = {}
            for path in files:
                relative = path.relative_to(source).as_posix()
                (staging / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, staging / relative)
                hashes[relative] = sha256_file(staging / relative)
            staging.chmod(0o755)
            if target.exists():
                shutil.rmtree(target)
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        entry = CATALOG.get(name)
        record = {
            "repo": repo or (entry.repo if entry else ""),
            "revision": revision,
            "path": f"{name}/{safe_revision}",
            "files": hashes,
            "source": origin or str(source),
            "installed_at": datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds"
            ),
        }
        with self._editing() as manifest:
            previous = manifest["models"].get(name)
            manifest["models"][name] = record
        if previous and previous.get("path") != record["path"]:
            shutil.rmtree(self.root / previous["path"], ignore_errors=True)
        return self.installed()[name]

    def pull(self, name: str, *, revision: str | None = None) -> Installed:
        """Download ``name`` from the hub at a pinned revision and install it.

        The revision is the argument, else the catalog's, else the current
        ``main`` resolved to its commit id, which the manifest then records.

        Raises:
            StoreError: ``name`` is not in :data:`CATALOG`.
            HubUnreachable: The hub cannot be reached (this is the case on
                machines without internet: copy a snapshot and use ``--from``).
        """
        entry = CATALOG.get(name)
        if entry is None:
            raise StoreError(
                f"unknown model {name!r}; the store knows: {', '.join(sorted(CATALOG))}"
            )
        try:
            from huggingface_hub import HfApi, snapshot_download
        except ImportError as exc:  # pragma: no cover - a dependency of the toolbox extra
            raise StoreError(
                "pulling needs huggingface_hub: pip install 'toolmesh[toolbox]'"
            ) from exc
        wanted = revision or entry.revision or "main"
        download = Path(tempfile.mkdtemp(prefix=f".pull-{name}-"))
        try:
            try:
                commit = HfApi().model_info(entry.repo, revision=wanted, timeout=20).sha or wanted
                snapshot_download(
                    entry.repo,
                    revision=commit,
                    local_dir=download,
                    allow_patterns=list(entry.allow_patterns),
                )
            except Exception as exc:  # the hub client raises many types for "offline"
                if _is_network_error(exc):
                    raise HubUnreachable(
                        f"cannot reach the model hub for {entry.repo}@{wanted} "
                        f"({type(exc).__name__}: {exc}); on a machine without internet, download "
                        f"the snapshot elsewhere and run `toolmesh models pull {name} --from DIR`"
                    ) from exc
                raise StoreError(
                    f"pulling {entry.repo}@{wanted} failed: {type(exc).__name__}: {exc}"
                ) from exc
            origin = f"hub:{entry.repo}@{commit}"
            return self.add(name, download, repo=entry.repo, revision=commit, origin=origin)
        finally:
            shutil.rmtree(download, ignore_errors=True)

    @contextlib.contextmanager
    def _editing(self) -> Iterator[dict[str, Any]]:
        self.root.mkdir(parents=True, exist_ok=True)
        manifest = self.manifest()
        yield manifest
        handle, tmp = tempfile.mkstemp(prefix=".manifest-", dir=self.root)
        with os.fdopen(handle, "w", encoding="utf-8") as fh:
            json.dump(manifest, fh, indent=2, sort_keys=True)
            fh.write("\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, self.root / MANIFEST)


def _home_default() -> Path:
    return Path.home() / ".cache" / "toolmesh" / "models"


def _is_network_error(exc: BaseException) -> bool:
    """Whether ``exc`` (or its cause chain) means the hub was not reachable."""
    names = {"ConnectionError", "ConnectTimeout", "ReadTimeout", "Timeout", "OfflineModeIsEnabled",
             "LocalEntryNotFoundError", "gaierror", "NewConnectionError", "MaxRetryError",
             "ConnectError", "ProxyError"}  # fmt: skip
    seen: BaseException | None = exc
    while seen is not None:
        if type(seen).__name__ in names or isinstance(seen, OSError | TimeoutError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
