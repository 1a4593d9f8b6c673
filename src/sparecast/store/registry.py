"""The MLflow registry of the production loop: every training run with its parameters, metrics
per class, tier and category, timings and artefacts, registered as a version of one model;
aliases ``champion`` and ``challenger`` mirror the forecast store's served-model pointer
(``store/aliases.py``, which the service reads).

Default backend: the SQLite file ``DIR/mlflow.db`` with artefacts in ``DIR/mlartifacts``, no
server; PostgreSQL in production (``[registry] tracking_uri``). MLflow is the ``[ops]`` extra:
``pip install 'sparecast[ops]'``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from sparecast.errors import SparecastError

__all__ = [
    "OpsExtraMissing",
    "RegistryError",
    "ModelVersionInfo",
    "ModelRegistry",
    "default_tracking_uri",
    "summary_metrics",
    "require_ops",
]

log = logging.getLogger("sparecast.registry")

SUMMARY_METRICS = ("rmsse", "mase", "mae", "rel_bias")
STORE_VERSION_TAG = "sparecast.model_version"  # the forecast store run's model_version
TRAIN_KEY_TAG = "sparecast.train_key"


class OpsExtraMissing(SparecastError):
    """Prefect or MLflow is not installed."""


class RegistryError(SparecastError):
    """The MLflow registry failed or is unreachable."""


def require_ops(module: str) -> Any:
    """Import ``module`` (``mlflow`` or ``prefect``) or raise OpsExtraMissing naming the fix."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise OpsExtraMissing(
            f"the production loop needs {module}, which is not installed; "
            "install it with: pip install 'sparecast[ops]'"
        ) from None


def default_tracking_uri(data_dir: str | Path) -> str:
    """``sqlite:///<absolute DIR>/mlflow.db``: the registry beside a run's output directory."""
    return f"sqlite:///{Path(data_dir).expanduser().resolve() / 'mlflow.db'}"


def _metric_key(*parts: str) -> str:
    """An MLflow metric name (letters, digits, _ - . / and spaces only)."""
    return "/".join(re.sub(r"[^A-Za-z0-9_\-. /]", "_", p) for p in parts)


def summary_metrics(
    summary: pl.DataFrame | None, metrics: tuple[str, ...] = SUMMARY_METRICS
) -> dict[str, float]:
    """The backtest summary's chosen rows as MLflow metrics ``{metric}/{grouping}/{group}``
    (e.g. ``rmsse/tier/intermittent``); NaN values are left out."""
    out: dict[str, float] = {}
    if summary is None or summary.is_empty() or "chosen" not in summary.columns:
        return out
    for row in summary.filter(pl.col("chosen")).to_dicts():
        for metric in metrics:
            value = row.get(metric)
            if value is not None and math.isfinite(float(value)):
                out[_metric_key(metric, str(row["grouping"]), str(row["group"]))] = float(value)
    return out


@dataclass(frozen=True)
class ModelVersionInfo:
    """A registered version: MLflow's version number, its run, the store run's model version."""

    version: str
    run_id: str
    store_version: str
    aliases: list[str] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    created_ms: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "version": self.version,
            "run_id": self.run_id,
            "store_version": self.store_version,
            "aliases": list(self.aliases),
            "tags": dict(self.tags),
            "created_ms": self.created_ms,
        }


class ModelRegistry:
    """One registered model in an MLflow tracking/registry backend (``tracking_uri``)."""

    def __init__(
        self,
        tracking_uri: str,
        *,
        artifact_location: str | None = None,
        model_name: str = "sparecast",
        experiment: str = "sparecast",
    ) -> None:
        mlflow = require_ops("mlflow")
        self.tracking_uri = tracking_uri
        self.artifact_location = artifact_location
        self.model_name = model_name
        self.experiment = experiment
        try:
            self.client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        except Exception as exc:  # noqa: BLE001 - MLflow raises many kinds
            raise RegistryError(f"cannot open the MLflow registry: {exc}") from None
        self._experiment_id: str | None = None

    @classmethod
    def for_data_dir(cls, data_dir: Path, settings: Any) -> ModelRegistry:
        """The registry ``[registry]`` configures, by default ``DIR/mlflow.db`` and
        ``DIR/mlartifacts``."""
        reg = settings.registry
        artifacts = reg.artifact_location or (data_dir.resolve() / "mlartifacts").as_uri()
        return cls(
            reg.tracking_uri or default_tracking_uri(data_dir),
            artifact_location=artifacts,
            model_name=reg.model_name,
            experiment=reg.experiment,
        )

    # ------------------------------------------------------------------ setup
    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SparecastError:
            raise
        except Exception as exc:  # noqa: BLE001 - MLflow's errors, translated
            raise RegistryError(f"MLflow registry failed while {what}: {exc}") from None

    def experiment_id(self) -> str:
        """The experiment of the training runs (created on first use)."""
        if self._experiment_id is None:
            found = self._call(
                "reading the experiment", self.client.get_experiment_by_name, self.experiment
            )
            if found is not None:
                self._experiment_id = str(found.experiment_id)
            else:
                self._experiment_id = str(
                    self._call(
                        "creating the experiment",
                        self.client.create_experiment,
                        self.experiment,
                        artifact_location=self.artifact_location,
                    )
                )
        return self._experiment_id

    def _ensure_model(self) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(self.model_name)
        except MlflowException:
            self._call(
                "creating the registered model",
                self.client.create_registered_model,
                self.model_name,
                description="sparecast forecasting configurations (router, methods, settings)",
            )

    # ------------------------------------------------------------------ writes
    def log_version(
        self,
        *,
        store_version: str,
        params: Mapping[str, Any],
        metrics: Mapping[str, float],
        artifacts: list[Path],
        tags: Mapping[str, str] | None = None,
        run_name: str | None = None,
    ) -> ModelVersionInfo:
        """Log one training run (params, metrics, artefacts) and register it as a new version
        of the model tagged with the forecast store's ``store_version``. The run is finished
        before the version is created: a crash leaves at most an unregistered run behind."""
        exp = self.experiment_id()
        run = self._call(
            "creating a run",
            self.client.create_run,
            exp,
            run_name=run_name or store_version,
            tags={STORE_VERSION_TAG: store_version, **(tags or {})},
        )
        run_id = run.info.run_id
        try:
            self._log(run_id, params, metrics, artifacts)
        except BaseException:
            self._call("failing the run", self.client.set_terminated, run_id, "FAILED")
            raise
        self._call("finishing the run", self.client.set_terminated, run_id, "FINISHED")
        self._ensure_model()
        version = self._call(
            "registering the version",
            self.client.create_model_version,
            self.model_name,
            source=f"{run.info.artifact_uri}/model",
            run_id=run_id,
            tags={STORE_VERSION_TAG: store_version, **(tags or {})},
        )
        return self._info(version)

    def _log(
        self,
        run_id: str,
        params: Mapping[str, Any],
        metrics: Mapping[str, float],
        artifacts: list[Path],
    ) -> None:
        from mlflow.entities import Metric, Param

        param_list = [Param(str(k)[:250], str(v)[:6000]) for k, v in params.items()]
        metric_list = [
            Metric(_metric_key(k), float(v), 0, 0)
            for k, v in metrics.items()
            if v is not None and math.isfinite(float(v))
        ]
        for i in range(0, max(len(param_list), len(metric_list)), 100):
            self._call(
                "logging params and metrics",
                self.client.log_batch,
                run_id,
                metrics=metric_list[i : i + 100],
                params=param_list[i : i + 100],
            )
        for path in artifacts:
            if path.is_dir():
                self._call(
                    "logging artefacts", self.client.log_artifacts, run_id, str(path), "model"
                )
            elif path.is_file():
                self._call(
                    "logging artefacts", self.client.log_artifact, run_id, str(path), "model"
                )

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], prefix: str = "") -> None:
        """Add metrics to an existing run (e.g. the evaluation of a challenger)."""
        from mlflow.entities import Metric

        metric_list = [
            Metric(_metric_key(prefix + k) if prefix else _metric_key(k), float(v), 0, 0)
            for k, v in metrics.items()
            if v is not None and math.isfinite(float(v))
        ]
        for i in range(0, len(metric_list), 100):
            self._call(
                "logging metrics", self.client.log_batch, run_id, metrics=metric_list[i : i + 100]
            )

    def set_version_tag(self, version: str, key: str, value: str) -> None:
        """Tag a version (e.g. the decision of the champion/challenger test)."""
        self._call(
            "tagging a version",
            self.client.set_model_version_tag,
            self.model_name,
            version,
            key,
            value[:5000],
        )

    def set_alias(self, alias: str, version: str) -> None:
        """Point ``alias`` at ``version`` (MLflow registered-model alias)."""
        self._call(
            f"setting the {alias} alias",
            self.client.set_registered_model_alias,
            self.model_name,
            alias,
            version,
        )

    # ------------------------------------------------------------------ reads
    def _info(self, mv: Any) -> ModelVersionInfo:
        tags = dict(mv.tags or {})
        return ModelVersionInfo(
            version=str(mv.version),
            run_id=str(mv.run_id),
            store_version=tags.get(STORE_VERSION_TAG, ""),
            aliases=list(getattr(mv, "aliases", []) or []),
            tags=tags,
            created_ms=int(mv.creation_timestamp or 0),
        )

    def versions(self) -> list[ModelVersionInfo]:
        """Every registered version, oldest first."""
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(self.model_name)
        except MlflowException:
            return []
        found = self._call(
            "listing versions",
            self.client.search_model_versions,
            f"name = '{self.model_name}'",
        )
        return sorted((self._info(v) for v in found), key=lambda v: int(v.version))

    def alias_version(self, alias: str) -> ModelVersionInfo | None:
        """The version ``alias`` names, or None."""
        from mlflow.exceptions import MlflowException

        try:
            mv = self.client.get_model_version_by_alias(self.model_name, alias)
        except MlflowException:
            return None
        return self._info(mv)

    def by_store_version(self, store_version: str) -> ModelVersionInfo | None:
        """The registered version of the forecast store's run ``store_version``."""
        for v in reversed(self.versions()):
            if v.store_version == store_version:
                return v
        return None

    def by_train_key(self, key: str) -> ModelVersionInfo | None:
        """The version a training with this key (config hash and data end) registered."""
        for v in reversed(self.versions()):
            if v.tags.get(TRAIN_KEY_TAG) == key:
                return v
        return None

    def run_metrics(self, run_id: str) -> dict[str, float]:
        """The latest value of each metric of a run."""
        run = self._call("reading a run", self.client.get_run, run_id)
        return dict(run.data.metrics)

    def download(self, run_id: str, path: str, dst: Path) -> Path:
        """Download a run's artefact ``path`` into ``dst``."""
        dst.mkdir(parents=True, exist_ok=True)
        out = self._call(
            "downloading artefacts",
            self.client.download_artifacts,
            run_id,
            path,
            str(dst),
        )
        return Path(out)


def write_json(path: Path, value: Any) -> Path:
    """Write ``value`` as JSON into ``path`` (an artefact file) and return it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(value, indent=2, default=str))
    os.replace(tmp, path)
    return path
