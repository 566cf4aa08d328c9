"""The local model registry: a folder of versioned models with an atomic default pointer.

Layout (one folder per model name)::

    <root>/<model_name>/versions/v0001/{model.pkl, meta.json}
    <root>/<model_name>/default.json            -> {"version": "v0001", ...}

Why it cannot lose data: a version is written into a temporary folder and renamed into
place (``os.rename`` of a folder is atomic and fails if the target exists, so two
concurrent promotes claim different numbers); the default pointer is replaced with
``os.replace``. A crash at any point leaves the previous default intact and readable.
A corrupt ``default.json`` is an error, and nothing is overwritten.
"""
from __future__ import annotations

import datetime as _dt
import errno
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_snowpipe.errors import RegistryError
from pytest_snowpipe.pipeline.gate import MODEL_NAME as _NAME
from pytest_snowpipe.pipeline.gate import MODEL_NAME_RULE

_VERSION = re.compile(r"^v(\d{4,})$")  # numbered versions (the default naming)
_VERSION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")  # a named version (snowpipe_gate(version_name=...))
META_FILE = "meta.json"
MODEL_FILE = "model.pkl"
DEFAULT_FILE = "default.json"


@dataclass(frozen=True)
class ModelVersion:
    """One logged model version and what it was promoted with."""

    model_name: str
    version: str
    path: Path
    metrics: Mapping[str, Any]
    config: Mapping[str, Any]
    fingerprints: Mapping[str, Any]
    created_at: str
    extra: Mapping[str, Any]
    checksums: Mapping[str, str] = field(default_factory=dict)  # file name -> sha256, from meta.json

    def verify(self) -> None:
        """Check every file of this version against the sha256 recorded in its meta.json at promote.

        Raises RegistryError naming the file and the fix; versions written before checksums were
        recorded have none to check.
        """
        for name, expected in self.checksums.items():
            path = self.path / name
            try:
                actual = _sha256_file(path)
            except OSError as exc:
                raise RegistryError(
                    f"registry file {path} is unreadable ({exc.strerror or exc}); {self._fix()}"
                ) from None
            if actual != expected:
                raise RegistryError(
                    f"registry file {path} does not match the sha256 checksum recorded in {self.path / META_FILE} "
                    f"at promote (truncated or changed since); {self._fix()}"
                )

    def _fix(self) -> str:
        return (
            f"restore the file from a backup, or remove the folder {self.path} and promote again "
            f"(if it is the default, remove {self.path.parent.parent / DEFAULT_FILE} too)"
        )

    def load(self) -> Any:
        """The model object, unpickled (after its checksum is verified)."""
        import cloudpickle

        self.verify()
        path = self.path / MODEL_FILE
        try:
            return cloudpickle.loads(path.read_bytes())
        except OSError as exc:
            raise RegistryError(f"registry file {path} is unreadable ({exc.strerror or exc}); {self._fix()}") from None
        except Exception as exc:  # UnpicklingError, EOFError, a missing module: any of them means the file is unusable
            raise RegistryError(
                f"registry file {path} cannot be unpickled ({type(exc).__name__}: {exc}); {self._fix()}"
            ) from None


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class LocalRegistry:
    """A model registry in a folder; see the module docstring for its guarantees."""

    @property
    def location(self) -> str:
        """The registry's folder, for messages and reports."""
        return str(self.root)

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def _model_dir(self, model_name: str) -> Path:
        if not _NAME.match(model_name):
            raise RegistryError(
                f"model name {model_name!r} is not valid; {MODEL_NAME_RULE}"
            )
        return self.root / model_name

    def _ensure_writable(self, folder: Path) -> None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-", delete=True):
                pass
        except OSError as exc:
            raise RegistryError(
                f"model registry folder {self.root} is not writable ({exc.strerror or exc}); set "
                "the snowpipe_registry ini option to a folder you can write. Nothing was promoted."
            ) from None

    def _read_json(self, path: Path) -> dict[str, Any]:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:  # garbage bytes are not UTF-8 either
            fix = (
                f"restore it from a backup or remove its version folder {path.parent}"
                if path.name == META_FILE
                else "restore it from a backup or remove it (the model versions beside it are intact)"
            )
            raise RegistryError(f"registry metadata file {path} is corrupt ({exc}); {fix}. Nothing was overwritten.") from None
        except OSError as exc:
            raise RegistryError(
                f"registry metadata file {path} is unreadable ({exc.strerror or exc}); check its permissions "
                "or restore it. Nothing was overwritten."
            ) from None
        if not isinstance(data, dict):
            raise RegistryError(
                f"registry metadata file {path} is corrupt (not a JSON object); restore or remove "
                "it. Nothing was overwritten."
            )
        return data

    def default(self, model_name: str) -> ModelVersion | None:
        """The current default version of ``model_name``, or None if none was promoted."""
        pointer = self._model_dir(model_name) / DEFAULT_FILE
        if not pointer.exists():
            return None
        version = self._read_json(pointer).get("version")
        if not isinstance(version, str) or not _VERSION_NAME.match(version):
            raise RegistryError(
                f"registry metadata file {pointer} is corrupt (no valid 'version'); restore or "
                "remove it. Nothing was overwritten."
            )
        return self.get(model_name, version)

    def get(self, model_name: str, version: str) -> ModelVersion:
        """One version's metadata (the model is loaded on demand)."""
        folder = self._model_dir(model_name) / "versions" / version
        meta = self._read_json(folder / META_FILE)
        return ModelVersion(
            model_name=model_name,
            version=version,
            path=folder,
            metrics=meta.get("metrics", {}),
            config=meta.get("config", {}),
            fingerprints=meta.get("fingerprints", {}),
            created_at=str(meta.get("created_at", "")),
            extra=meta.get("extra", {}),
            checksums=_checksums(meta, folder / META_FILE),
        )

    def unchanged_default(
        self, model_name: str, *, metrics: Mapping[str, Any], fingerprints: Mapping[str, Any]
    ) -> ModelVersion | None:
        """The default version if it was promoted with these very metrics and fingerprints, else None.

        Compared as they would be stored (JSON-safe values), so what a promote writes compares
        equal on the next run. Only metadata is read: the model is never unpickled.
        """
        current = self.default(model_name)
        if current is None:
            return None
        try:
            current.verify()  # a truncated model.pkl must not stay the default because its metadata matches
        except RegistryError:
            return None
        same = jsonable(dict(metrics)) == current.metrics and jsonable(dict(fingerprints)) == current.fingerprints
        return current if same else None

    def sweep_stale(self, model_name: str) -> None:
        """Remove what killed promotes left: staging folders and pointer temp files over an hour old."""
        model_dir = self._model_dir(model_name)
        _sweep_stale(model_dir / "versions", ".staging-")
        _sweep_stale(model_dir, f".{DEFAULT_FILE}.")

    def versions(self, model_name: str) -> list[str]:
        """All logged versions, oldest first (by creation time; numbered versions by number)."""
        folder = self._model_dir(model_name) / "versions"
        if not folder.is_dir():
            return []
        found = [p for p in folder.iterdir() if _VERSION_NAME.match(p.name) and (p / META_FILE).is_file()]

        def order(path: Path) -> tuple[str, int, str]:
            try:
                created = str(json.loads((path / META_FILE).read_text(encoding="utf-8")).get("created_at", ""))
            except (OSError, ValueError, AttributeError):
                created = ""
            m = _VERSION.match(path.name)
            return (created, int(m.group(1)) if m else 0, path.name)

        return [p.name for p in sorted(found, key=order)]

    def prune(self, model_name: str, keep: int) -> list[str]:
        """Delete all but the ``keep`` newest versions of ``model_name``, never the default; return the
        deleted names (oldest first). The seed's ``clean_up``; call it from a yield fixture's teardown."""
        if not isinstance(keep, int) or isinstance(keep, bool) or keep < 0:
            raise RegistryError(f"prune({model_name!r}, keep={keep!r}): keep takes an integer >= 0")
        versions = self.versions(model_name)
        current = self.default(model_name)
        default = current.version if current is not None else None
        keepers = set(versions[max(len(versions) - keep, 0):]) if keep else set()  # keep > count keeps all
        doomed = [v for v in versions if v not in keepers and v != default]
        folder = self._model_dir(model_name) / "versions"
        for version in doomed:
            # rename first (atomic): a reader never sees half a version
            trash = folder / f".deleting-{version}"
            os.rename(folder / version, trash)
            _remove_tree(trash)
        return doomed

    def promote(
        self,
        model_name: str,
        model: Any,
        *,
        metrics: Mapping[str, Any] | None = None,
        config: Mapping[str, Any] | None = None,
        fingerprints: Mapping[str, Any] | None = None,
        extra: Mapping[str, Any] | None = None,
        version: str | None = None,
        log_model: Mapping[str, Any] | None = None,
    ) -> ModelVersion:
        """Log ``model`` as a new version and make it the default, atomically.

        ``version`` names the version (e.g. ``v20260101_060000``); by default the next ``vNNNN``.
        A name that exists already is a RegistryError (versions are never overwritten).
        ``log_model``: the gate's Snowflake ``log_model`` options; a file keeps what is meaningful in
        it (the sample input's signature, the rest as given) under ``extra.log_model``.
        """
        if log_model:
            stored = {k: v for k, v in log_model.items() if k != "sample_input_data"}
            if "sample_input_data" in log_model:
                stored["sample_input_data"] = _sample_summary(log_model["sample_input_data"])
            extra = {**(extra or {}), "log_model": stored}
        import cloudpickle

        model_dir = self._model_dir(model_name)
        if version is not None and (not _VERSION_NAME.match(version) or version.startswith(".")):
            raise RegistryError(
                f"version name {version!r} of model {model_name!r} is not valid; use letters, digits, _ and -"
            )
        if version is not None and (model_dir / "versions" / version).exists():
            raise RegistryError(
                f"model {model_name!r} already has a version {version!r}; versions are never overwritten: "
                "make version_name unique per run (e.g. 'v{run_scheduled:%Y%m%d_%H%M%S}' or '{run_id}')"
            )
        self._ensure_writable(model_dir / "versions")
        pointer = model_dir / DEFAULT_FILE
        if pointer.exists():
            self.default(model_name)  # refuses to go on over a corrupt pointer
        try:
            blob = cloudpickle.dumps(model)
        except Exception as exc:
            raise RegistryError(
                f"model {model_name!r} cannot be pickled for the registry ({type(exc).__name__}: "
                f"{exc}); return a picklable model object from the model stage."
            ) from None
        meta = {
            "model_name": model_name,
            "metrics": jsonable(metrics or {}),
            "config": jsonable(config or {}),
            "fingerprints": jsonable(fingerprints or {}),
            "extra": jsonable(extra or {}),
            "created_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="microseconds"),
            "model_type": f"{type(model).__module__}.{type(model).__qualname__}",
            "checksums": {MODEL_FILE: hashlib.sha256(blob).hexdigest()},
        }
        self.sweep_stale(model_name)
        try:
            version = self._write_version(model_dir, blob, meta, version)
        except OSError as exc:  # a full disk (ENOSPC), a quota, a read-only mount: name the folder
            reason = "the disk is full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
            raise RegistryError(
                f"model {model_name!r}: could not write a new version under {model_dir} ({reason}); the previous "
                "default is unchanged. Free space there, or point ini snowpipe_registry at another folder"
            ) from None
        return self.get(model_name, version)

    def _write_version(self, model_dir: Path, blob: bytes, meta: dict[str, Any], version: str | None) -> str:
        """Stage the version's files, rename the folder into place, then point the default at it."""
        model_name = meta["model_name"]
        pointer = model_dir / DEFAULT_FILE
        staging = Path(tempfile.mkdtemp(dir=model_dir / "versions", prefix=".staging-"))
        try:
            (staging / MODEL_FILE).write_bytes(blob)
            if version is None:
                version = self._claim_version(model_dir / "versions", staging, meta)
            else:
                meta["version"] = version
                _write_atomic(staging / META_FILE, json.dumps(meta, indent=2, sort_keys=True).encode())
                try:
                    os.rename(staging, model_dir / "versions" / version)
                except OSError:
                    raise RegistryError(f"model {model_name!r}: version {version!r} was claimed concurrently") from None
        except BaseException:
            _remove_tree(staging)
            raise
        previous = self._read_json(pointer) if pointer.exists() else {}
        history = [*_history(previous), previous["version"]] if previous.get("version") else []
        _write_atomic(
            pointer,
            json.dumps(
                {"version": version, "alias": CHAMPION, "promoted_at": meta["created_at"], "history": history}, indent=2
            ).encode(),
        )
        return version

    def rollback(self, model_name: str, reason: str, *, who: str | None = None) -> ModelVersion:
        """Move the CHAMPION (the default) back to the previous champion; returns it.

        The demoted version's ``meta.json`` records who rolled it back, when and why
        (``extra.rolled_back``); nothing is deleted, and a later promote starts from the
        restored champion. A previous champion that was pruned since is skipped; with none
        left, a RegistryError says so and nothing changes.
        """
        if not isinstance(reason, str) or not reason.strip():
            raise RegistryError(f"rollback of {model_name!r}: say why (reason='the new model misroutes loans'); it is recorded")
        pointer = self._model_dir(model_name) / DEFAULT_FILE
        current = self.default(model_name)
        if current is None:
            raise RegistryError(f"rollback of {model_name!r}: it has no champion yet (nothing was promoted)")
        history = _history(self._read_json(pointer))
        while history and not (self._model_dir(model_name) / "versions" / history[-1] / META_FILE).exists():
            history.pop()  # pruned since
        if not history:
            raise RegistryError(
                f"rollback of {model_name!r}: {current.version} is the first champion there is (no previous "
                "champion to go back to); promote a better version instead"
            )
        target = self.get(model_name, history[-1])
        target.verify()
        now = _dt.datetime.now(_dt.UTC).isoformat(timespec="microseconds")
        record = {"by": who or _user(), "at": now, "reason": reason.strip(), "to": target.version}
        meta_path = current.path / META_FILE
        meta = self._read_json(meta_path)
        meta["extra"] = {**meta.get("extra", {}), "rolled_back": record}
        _write_atomic(meta_path, json.dumps(meta, indent=2, sort_keys=True).encode())
        _write_atomic(
            pointer,
            json.dumps(
                {"version": target.version, "alias": CHAMPION, "promoted_at": now, "history": history[:-1],
                 "rolled_back_from": current.version}, indent=2
            ).encode(),
        )
        return target

    def _claim_version(self, versions: Path, staging: Path, meta: dict[str, Any]) -> str:
        """Rename the staged folder to the next free vNNNN; retry if another promote won."""
        for _ in range(1000):
            existing = [int(m.group(1)) for p in versions.iterdir() if (m := _VERSION.match(p.name))]
            version = f"v{(max(existing) + 1 if existing else 1):04d}"
            meta["version"] = version
            _write_atomic(staging / META_FILE, json.dumps(meta, indent=2, sort_keys=True).encode())
            try:
                os.rename(staging, versions / version)
            except OSError:
                if (versions / version).exists():
                    continue  # a concurrent promote took this number
                raise
            return version
        raise RegistryError(f"could not claim a version number in {versions}")


CHAMPION = "CHAMPION"  # the alias default.json holds: the version gates compare against and serving uses


def _history(pointer: Mapping[str, Any]) -> list[str]:
    """The earlier champions a pointer remembers, oldest first."""
    found = pointer.get("history")
    return [v for v in found if isinstance(v, str) and _VERSION_NAME.match(v)] if isinstance(found, list) else []


def _user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no user name in a container: say so rather than fail the rollback
        return "unknown"


STALE_AFTER_S = 3600  # no promote takes an hour: an older staging folder is a killed promote's


def _sweep_stale(folder: Path, prefix: str) -> None:
    """Remove ``prefix*`` staging folders and temp files older than an hour."""
    import time

    now = time.time()
    try:
        items = [p for p in folder.iterdir() if p.name.startswith(prefix)]
    except OSError:
        return
    for item in items:
        try:
            if now - item.lstat().st_mtime <= STALE_AFTER_S:
                continue
            if item.is_dir() and not item.is_symlink():
                _remove_tree(item)
            else:
                item.unlink()
        except OSError:
            continue


def _checksums(meta: Mapping[str, Any], where: Path) -> dict[str, str]:
    sums = meta.get("checksums", {})
    ok = isinstance(sums, Mapping) and all(
        isinstance(k, str) and "/" not in k and isinstance(v, str) for k, v in sums.items()
    )
    if not ok:
        raise RegistryError(
            f"registry metadata file {where} is corrupt ('checksums' is not a map of file names to sha256); "
            "restore it from a backup or remove the version folder. Nothing was overwritten."
        )
    return dict(sums)


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def _sample_summary(value: Any) -> dict[str, Any]:
    """What the folder registry keeps of a sample input: its columns and types (a signature), not rows."""
    from pytest_snowpipe.pipeline.frames import describe

    columns = getattr(value, "columns", None)
    dtypes = getattr(value, "dtypes", None)
    summary: dict[str, Any] = {"kind": " ".join(describe(value))}
    if columns is not None:
        summary["columns"] = [str(c) for c in columns]
    if dtypes is not None:
        try:
            summary["dtypes"] = {str(k): str(v) for k, v in dict(dtypes).items()} if hasattr(dtypes, "items") else [
                [str(k), str(v)] for k, v in dtypes
            ]
        except (TypeError, ValueError):
            pass
    return summary


def jsonable(value: Any) -> Any:
    """Metrics, config and fingerprints as plain JSON values (numpy scalars -> Python numbers).

    The registry's meta.json and the CI report both write them, so both use this one function.
    """
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    item = getattr(value, "item", None)
    if callable(item):
        try:
            return jsonable(item())
        except (TypeError, ValueError):
            pass
    return str(value)
