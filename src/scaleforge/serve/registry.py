"""The on-disk model registry: versions, checksums, default version, A/B and shadow routing.

Layout under a root directory (``Settings.serve.model_dir`` by default)::

    models/
      darcy-fno/
        routing.json            {"default": "2", "weights": {"1": 0.9, "2": 0.1},
                                 "sticky_header": "x-user-id", "shadow": "3"}
        1/
          model.json            name, version, loader, entry, options, files, sha256, created
          model.sfop            the artifact(s)
        2/ ...

``model.json`` records a SHA-256 over every other file of the version
directory; :meth:`ModelRegistry.load_api` verifies it before reading a byte of
the artifact. A version directory is written to a temporary name and renamed,
so readers never see half a version.

Loaders (``model.json`` ``"loader"``):

``"python"``
    ``entry`` is ``"module:attr"`` (importable) or ``"file.py:attr"`` (a file of
    the version directory). The attribute may be a ModelAPI subclass or
    instance, a ``torch.nn.Module``, a probabilistic operator or a callable;
    with ``"factory": true`` it is called with the version directory first.
``"torch_export"``
    ``entry`` is a ``torch.export`` program (``torch.export.save``; written by
    :meth:`ModelRegistry.publish_torch`), served by ``TorchAPI``.
``"operator"``
    ``entry`` is a file written by ``ProbabilisticOperator.save``, served by
    ``OperatorAPI`` (mean and std).

``options`` in ``model.json`` go to the adapter (``input_shape``, ``quantiles``...).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import logging
import os
import re
import shutil
import tempfile
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scaleforge.errors import IntegrityError, InvalidParameterError, ServeError
from scaleforge.serve.adapters import as_model_api
from scaleforge.serve.base import ModelAPI

__all__ = [
    "LOADERS",
    "META_FILE",
    "ROUTING_FILE",
    "ModelRegistry",
    "Routing",
    "VersionInfo",
    "check_name",
    "import_object",
]

logger = logging.getLogger(__name__)

META_FILE = "model.json"
ROUTING_FILE = "routing.json"
LOADERS = ("operator", "python", "torch_export")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_HEADER_RE = re.compile(r"^[A-Za-z0-9-]{1,64}$")


def check_name(value: object, what: str = "name") -> str:
    """Return ``value`` if it is a valid model name or version, else raise.

    Parameters
    ----------
    value : object
    what : str, default="name"
        ``"name"`` or ``"version"``, for the message.

    Returns
    -------
    str

    Raises
    ------
    InvalidParameterError
        Unless ``value`` matches ``[A-Za-z0-9][A-Za-z0-9._-]{0,127}``.
    """
    if not isinstance(value, str) or not _NAME_RE.match(value) or value in (".", ".."):
        raise InvalidParameterError(
            f"A model {what} must be 1-128 characters of letters, digits, '.', '_' or '-', starting with a "
            f"letter or digit. Got {value!r} instead."
        )
    return value


def _version_key(v: str) -> tuple[Any, ...]:
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"(\d+)", v) if p)


@dataclass(frozen=True, slots=True)
class Routing:
    """How requests without an explicit version choose one.

    Parameters
    ----------
    default : str or None, default=None
        Version used when ``weights`` is empty (``None``: the newest loaded).
    weights : mapping of str to float, default={}
        A/B split: version -> relative weight (>= 0, not all zero).
    sticky_header : str or None, default=None
        A request header (e.g. ``"x-user-id"``) whose value pins a caller to one
        version of the split; callers without it are routed at random.
    shadow : str or None, default=None
        A candidate version that also receives a copy of every request; its
        answers are discarded, its metrics kept.

    Examples
    --------
    >>> r = Routing(weights={"1": 1.0, "2": 3.0})
    >>> r.choose(rand=0.1), r.choose(rand=0.5)
    ('1', '2')
    """

    default: str | None = None
    weights: Mapping[str, float] = field(default_factory=dict)
    sticky_header: str | None = None
    shadow: str | None = None

    def __post_init__(self) -> None:
        if self.default is not None:
            check_name(self.default, "version")
        if self.shadow is not None:
            check_name(self.shadow, "version")
        if not isinstance(self.weights, Mapping):
            raise InvalidParameterError(
                f"The 'weights' parameter of Routing must map versions to weights. Got {self.weights!r} instead."
            )
        for version, weight in self.weights.items():
            check_name(version, "version")
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight >= 0:
                raise InvalidParameterError(
                    f"The 'weights' parameter of Routing must hold numbers >= 0. Got {weight!r} for version "
                    f"{version!r} instead."
                )
        if self.weights and sum(self.weights.values()) <= 0:
            raise InvalidParameterError(
                f"The 'weights' parameter of Routing must have a positive total. Got {dict(self.weights)!r}."
            )
        if self.sticky_header is not None and not (
            isinstance(self.sticky_header, str) and _HEADER_RE.match(self.sticky_header)
        ):
            raise InvalidParameterError(
                f"The 'sticky_header' parameter of Routing must be a header name like 'x-user-id'. "
                f"Got {self.sticky_header!r} instead."
            )

    def choose(self, key: str | None = None, *, rand: float = 0.0) -> str | None:
        """Pick a version of the split.

        Parameters
        ----------
        key : str, optional
            The sticky header's value; the same key always gets the same version.
        rand : float, default=0.0
            A uniform number in [0, 1) used when ``key`` is ``None``.

        Returns
        -------
        str or None
            ``None`` when there is no split (use :attr:`default`).
        """
        if not self.weights:
            return self.default
        u = rand if key is None else (zlib.crc32(key.encode()) & 0xFFFFFFFF) / 2**32
        total = float(sum(self.weights.values()))
        acc = 0.0
        last = None
        for version, weight in self.weights.items():
            if weight <= 0:
                continue
            last = version
            acc += weight / total
            if u < acc:
                return version
        return last

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form written to ``routing.json``.

        Returns
        -------
        dict
        """
        return {
            "default": self.default,
            "weights": dict(self.weights),
            "sticky_header": self.sticky_header,
            "shadow": self.shadow,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Routing:
        """Build a Routing from its JSON form, rejecting unknown keys.

        Parameters
        ----------
        data : mapping

        Returns
        -------
        Routing
        """
        if not isinstance(data, Mapping):
            raise InvalidParameterError(f"Routing must be a JSON object. Got {type(data).__name__} instead.")
        unknown = set(data) - {"default", "weights", "sticky_header", "shadow"}
        if unknown:
            raise InvalidParameterError(
                f"Unknown routing field(s) {sorted(unknown)}; use default, weights, sticky_header, shadow."
            )
        weights = data.get("weights") or {}
        if not isinstance(weights, Mapping):
            raise InvalidParameterError(
                f"Routing 'weights' must be an object mapping versions to numbers. Got {weights!r} instead."
            )
        for key in ("default", "sticky_header", "shadow"):
            if data.get(key) is not None and not isinstance(data[key], str):
                raise InvalidParameterError(
                    f"Routing {key!r} must be a string or null. Got {data[key]!r} instead."
                )
        return cls(
            default=data.get("default"),
            weights=dict(weights),
            sticky_header=data.get("sticky_header"),
            shadow=data.get("shadow"),
        )


@dataclass(frozen=True, slots=True)
class VersionInfo:
    """One stored version of a model (the contents of its ``model.json``).

    Attributes
    ----------
    name, version : str
    path : pathlib.Path
        The version directory.
    loader : str
        One of :data:`LOADERS`.
    entry : str
        The artifact or ``module:attr`` the loader opens.
    sha256 : str
        Checksum of the version's files.
    created : float
        Unix time of publication.
    options : dict
        Adapter options.
    metadata : dict
        Free-form user metadata.
    """

    name: str
    version: str
    path: Path
    loader: str
    entry: str
    sha256: str
    created: float
    options: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)


def _digest(directory: Path) -> tuple[str, list[str]]:
    h = hashlib.sha256()
    files = sorted(
        p.relative_to(directory).as_posix()
        for p in directory.rglob("*")
        if p.is_file() and p.name != META_FILE and "__pycache__" not in p.parts
    )
    for rel in files:
        data = (directory / rel).read_bytes()
        h.update(rel.encode() + b"\0" + str(len(data)).encode() + b"\0")
        h.update(data)
    return h.hexdigest(), files


def _class_path(obj: Any) -> str:
    """``"module:QualName"`` of ``obj``'s class, for :func:`import_object`."""
    cls = type(obj)
    return f"{cls.__module__}:{cls.__qualname__}"


def import_object(spec: str, *, base_dir: Path | None = None) -> Any:
    """Import ``"module:attr"`` (or ``"file.py:attr"`` relative to ``base_dir``).

    Parameters
    ----------
    spec : str
    base_dir : pathlib.Path, optional
        Directory of ``file.py`` entries.

    Returns
    -------
    object

    Raises
    ------
    InvalidParameterError
        If the spec is malformed or cannot be imported.
    """
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise InvalidParameterError(
            f"An import path must look like 'package.module:object' or 'file.py:object'. Got {spec!r} instead."
        )
    try:
        if module_name.endswith(".py"):
            path = (base_dir or Path.cwd()) / module_name
            unique = f"_scaleforge_serve_{hashlib.sha1(str(path).encode()).hexdigest()[:12]}"
            mod_spec = importlib.util.spec_from_file_location(unique, path)
            if mod_spec is None or mod_spec.loader is None or not path.is_file():
                raise InvalidParameterError(f"No Python file at {str(path)!r} for import path {spec!r}.")
            module = importlib.util.module_from_spec(mod_spec)
            mod_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except InvalidParameterError:
        raise
    except ImportError as exc:
        raise InvalidParameterError(
            f"Cannot import {module_name!r} from {spec!r}: {exc}. Check the path."
        ) from exc
    obj = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise InvalidParameterError(
                f"{module_name!r} has no attribute {attr!r} (from {spec!r})."
            ) from exc
    return obj


class ModelRegistry:
    """Versions of models stored on disk, with their routing.

    Parameters
    ----------
    root : path-like, optional
        The registry directory; defaults to ``Settings.serve.model_dir``.

    Examples
    --------
    >>> import tempfile
    >>> reg = ModelRegistry(tempfile.mkdtemp())
    >>> reg.models()
    []
    """

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        if root is None:
            from scaleforge.settings import get_settings

            root = get_settings().serve.model_dir
        self.root = Path(root)

    # ------------------------------------------------------------------ writing
    def publish(
        self,
        name: str,
        version: str,
        files: Mapping[str, bytes | str | os.PathLike[str]],
        *,
        loader: str,
        entry: str,
        options: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        set_default: bool = False,
    ) -> VersionInfo:
        """Store a new version atomically and return its info.

        Parameters
        ----------
        name, version : str
        files : mapping of str to bytes or path
            Relative file name -> contents (bytes) or a file to copy.
        loader : {"operator", "python", "torchscript"}
        entry : str
            The artifact file or ``module:attr`` (see the module docstring).
        options : mapping, optional
            Adapter options stored in ``model.json``.
        metadata : mapping, optional
            Free-form JSON metadata.
        set_default : bool, default=False
            Make this the default version.

        Returns
        -------
        VersionInfo

        Raises
        ------
        InvalidParameterError
            For a bad name, loader or file name, or an existing version.
        """
        check_name(name)
        check_name(version, "version")
        if loader not in LOADERS:
            raise InvalidParameterError(
                f"The 'loader' parameter of ModelRegistry.publish must be one of {', '.join(LOADERS)}. "
                f"Got {loader!r} instead."
            )
        model_dir = self.root / name
        final = model_dir / version
        if final.exists():
            raise InvalidParameterError(
                f"Version {version!r} of model {name!r} already exists at {str(final)!r}; versions are "
                "immutable. Publish a new version."
            )
        model_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=model_dir))
        try:
            for rel, content in files.items():
                target = (tmp / rel).resolve()
                if rel == META_FILE or tmp.resolve() not in target.parents:
                    raise InvalidParameterError(
                        f"File name {rel!r} is not allowed in a model version; use relative names other than "
                        f"{META_FILE!r}."
                    )
                target.parent.mkdir(parents=True, exist_ok=True)
                if isinstance(content, bytes):
                    target.write_bytes(content)
                else:
                    shutil.copyfile(content, target)
            digest, listed = _digest(tmp)
            meta = {
                "name": name,
                "version": version,
                "loader": loader,
                "entry": entry,
                "options": dict(options or {}),
                "metadata": dict(metadata or {}),
                "files": listed,
                "sha256": digest,
                "created": time.time(),
            }
            (tmp / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True))
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if set_default:
            self.set_default(name, version)
        return self.info(name, version)

    def publish_torch(
        self,
        name: str,
        version: str,
        module: Any,
        example: Any,
        *,
        options: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        set_default: bool = False,
    ) -> VersionInfo:
        """Export a ``torch.nn.Module`` with ``torch.export`` (dynamic batch axis) and publish it.

        Parameters
        ----------
        name, version : str
        module : torch.nn.Module
        example : array-like of shape (n, *item_shape)
            Example input batch; its first axis becomes dynamic.
        options, metadata, set_default
            As for :meth:`publish`; ``input_shape`` defaults to the example's item shape.

        Returns
        -------
        VersionInfo
        """
        import numpy as np
        import torch

        x = torch.as_tensor(np.asarray(example, dtype=np.float32))
        if x.ndim < 1:
            raise InvalidParameterError(
                "The 'example' parameter of ModelRegistry.publish_torch must be a batch of shape (n, *item_shape)."
            )
        if x.shape[0] < 2:  # a size-1 axis would be specialised, not dynamic
            x = torch.cat([x, x])
        module.eval()
        batch = torch.export.Dim("batch", min=1, max=2**20)
        program = torch.export.export(module, (x,), dynamic_shapes=({0: batch},))
        opts = {"input_shape": list(x.shape[1:]), **dict(options or {})}
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.pt2"
            torch.export.save(program, str(path))
            return self.publish(
                name, version, {"model.pt2": path}, loader="torch_export", entry="model.pt2",
                options=opts, metadata=metadata, set_default=set_default,
            )  # fmt: skip

    def publish_operator(
        self,
        name: str,
        version: str,
        operator: Any,
        *,
        options: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        set_default: bool = False,
    ) -> VersionInfo:
        """Save a fitted probabilistic operator (``operator.save``) and publish it.

        Parameters
        ----------
        name, version : str
        operator : ProbabilisticOperator
        options, metadata, set_default
            As for :meth:`publish` (``options`` may set ``quantiles`` and ``n_samples``).

        Returns
        -------
        VersionInfo
        """
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.sfop"
            operator.save(path)
            return self.publish(
                name, version, {"model.sfop": path}, loader="operator", entry="model.sfop",
                options=options, set_default=set_default,
                metadata={"operator_class": _class_path(operator), **dict(metadata or {})},
            )  # fmt: skip

    def remove(self, name: str, version: str) -> None:
        """Delete a stored version (and drop it from the routing).

        Parameters
        ----------
        name, version : str
        """
        info = self.info(name, version)
        routing = self.routing(name)
        weights = {v: w for v, w in routing.weights.items() if v != version}
        self.set_routing(
            name,
            Routing(
                default=None if routing.default == version else routing.default,
                weights=weights if sum(weights.values()) > 0 else {},
                sticky_header=routing.sticky_header,
                shadow=None if routing.shadow == version else routing.shadow,
            ),
        )
        shutil.rmtree(info.path)

    def set_routing(self, name: str, routing: Routing) -> None:
        """Write the routing of ``name`` atomically.

        Parameters
        ----------
        name : str
        routing : Routing
        """
        check_name(name)
        if not isinstance(routing, Routing):
            raise InvalidParameterError(
                f"The 'routing' parameter of ModelRegistry.set_routing must be a Routing. Got {type(routing).__name__}."
            )
        model_dir = self.root / name
        model_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".routing.", dir=model_dir)
        with os.fdopen(fd, "w") as fh:
            json.dump(routing.to_dict(), fh, indent=2, sort_keys=True)
        os.replace(tmp, model_dir / ROUTING_FILE)

    def set_default(self, name: str, version: str) -> None:
        """Make ``version`` the default of ``name``.

        Parameters
        ----------
        name, version : str
        """
        self.info(name, version)
        r = self.routing(name)
        self.set_routing(
            name, Routing(default=version, weights=r.weights, sticky_header=r.sticky_header, shadow=r.shadow)
        )

    # ------------------------------------------------------------------ reading
    def models(self) -> list[str]:
        """Names of the stored models, sorted.

        Returns
        -------
        list of str
        """
        if not self.root.is_dir():
            return []
        return sorted(
            p.name
            for p in self.root.iterdir()
            if p.is_dir() and _NAME_RE.match(p.name) and self.versions(p.name)
        )

    def versions(self, name: str) -> list[str]:
        """Stored versions of ``name``, oldest first (natural order: 2 < 10).

        Parameters
        ----------
        name : str

        Returns
        -------
        list of str
        """
        check_name(name)
        model_dir = self.root / name
        if not model_dir.is_dir():
            return []
        found = [p.name for p in model_dir.iterdir() if (p / META_FILE).is_file() and _NAME_RE.match(p.name)]
        return sorted(found, key=_version_key)

    def info(self, name: str, version: str) -> VersionInfo:
        """Read one version's ``model.json``.

        Parameters
        ----------
        name, version : str

        Returns
        -------
        VersionInfo

        Raises
        ------
        ServeError
            If the version does not exist (``InvalidParameterError``) or its metadata is unreadable.
        """
        check_name(name)
        check_name(version, "version")
        path = self.root / name / version
        meta_path = path / META_FILE
        if not meta_path.is_file():
            known = ", ".join(self.versions(name)) or "none"
            raise InvalidParameterError(
                f"Model {name!r} has no version {version!r} in {str(self.root)!r} (stored versions: {known})."
            )
        try:
            meta = json.loads(meta_path.read_text())
            return VersionInfo(
                name=name,
                version=version,
                path=path,
                loader=str(meta["loader"]),
                entry=str(meta["entry"]),
                sha256=str(meta["sha256"]),
                created=float(meta.get("created", 0.0)),
                options=dict(meta.get("options") or {}),
                metadata=dict(meta.get("metadata") or {}),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(
                f"{str(meta_path)!r} is unreadable ({exc}); republish this version."
            ) from exc

    def verify(self, name: str, version: str) -> VersionInfo:
        """Check a version's files against its recorded SHA-256.

        Parameters
        ----------
        name, version : str

        Returns
        -------
        VersionInfo

        Raises
        ------
        IntegrityError
            If any file changed, appeared or disappeared.
        """
        info = self.info(name, version)
        digest, _ = _digest(info.path)
        if digest != info.sha256:
            raise IntegrityError(
                f"Checksum mismatch for model {name!r} version {version!r} in {str(info.path)!r}: its files "
                "changed after publication, so it was not loaded. Republish it as a new version."
            )
        return info

    def routing(self, name: str) -> Routing:
        """The routing of ``name`` (defaults when none was written).

        Parameters
        ----------
        name : str

        Returns
        -------
        Routing
        """
        check_name(name)
        path = self.root / name / ROUTING_FILE
        if not path.is_file():
            return Routing()
        try:
            return Routing.from_dict(json.loads(path.read_text()))
        except ValueError as exc:
            raise IntegrityError(f"{str(path)!r} is not valid routing JSON ({exc}); rewrite it.") from exc

    def default_version(self, name: str) -> str:
        """The default version of ``name``: the routing's, else the newest stored.

        Parameters
        ----------
        name : str

        Returns
        -------
        str
        """
        default = self.routing(name).default
        if default is not None:
            return default
        versions = self.versions(name)
        if not versions:
            raise InvalidParameterError(f"No model named {name!r} in {str(self.root)!r}.")
        return versions[-1]

    def load_api(self, name: str, version: str) -> tuple[ModelAPI, VersionInfo]:
        """Verify a version and build its ModelAPI (setup is left to the server).

        Parameters
        ----------
        name, version : str

        Returns
        -------
        api : ModelAPI
        info : VersionInfo

        Raises
        ------
        IntegrityError
            If the checksum does not match.
        ServeError
            If the loader fails.
        """
        info = self.verify(name, version)
        options = dict(info.options)
        try:
            if info.loader == "python":
                obj = import_object(info.entry, base_dir=info.path)
                if info.metadata.get("factory"):
                    obj = obj(info.path)
                return as_model_api(obj, **options), info
            artifact = info.path / info.entry
            if info.loader == "torch_export":
                import torch

                from scaleforge.serve.adapters import TorchAPI

                module = torch.export.load(str(artifact)).module()
                return TorchAPI(module, **options), info
            from scaleforge.serve.adapters import OperatorAPI

            # The operator's own class loads it (serve never imports a workload): publish_operator
            # records "module:Class" in the version's metadata.
            spec = info.metadata.get("operator_class")
            if not isinstance(spec, str):
                raise InvalidParameterError(
                    f"Model {name!r} version {version!r} uses the 'operator' loader but its metadata has no "
                    "'operator_class' ('package.module:Class' with a load(path) classmethod). Publish it with "
                    "ModelRegistry.publish_operator, or pass metadata={'operator_class': ...} to publish."
                )
            return OperatorAPI(import_object(spec).load(artifact), **options), info
        except (InvalidParameterError, IntegrityError):
            raise
        except Exception as exc:
            raise ServeError(
                f"Loading model {name!r} version {version!r} with loader {info.loader!r} failed: {exc}"
            ) from exc
