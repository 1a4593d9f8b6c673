"""The deployment files: ``compose.yaml`` (services, images, env names that are settings,
volumes, health checks, start order) and the ``Dockerfile`` (slim base, non-root user, health
check, default command). No image is built here: the test machine has no Docker engine."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from sparecast.config import Settings

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "compose.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def _setting_exists(name: str) -> bool:
    """Whether SPARECAST_A__B names the field b of section a of Settings."""
    model: type[BaseModel] = Settings
    parts = name.removeprefix("SPARECAST_").lower().split("__")
    for k, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            return False
        if k < len(parts) - 1:
            sub = field.annotation
            if not (isinstance(sub, type) and issubclass(sub, BaseModel)):
                return False
            model = sub
    return True


def _default(value: str) -> str:
    """A compose value with ``${VAR:-default}`` replaced by its default."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


def test_compose_services_images_and_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"api", "pipeline", "postgres", "redis"}
    for name in ("api", "pipeline"):  # one image built from this repository
        assert services[name]["build"] == "." and services[name]["image"] == "sparecast:latest"
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["redis"]["image"].startswith("redis:")
    assert services["api"]["command"][:2] == ["sparecast", "serve"]
    assert services["pipeline"]["command"][:3] == ["sparecast", "pipeline", "serve"]
    assert "8000:8000" in services["api"]["ports"]
    for name in ("api", "pipeline"):
        needs = services[name]["depends_on"]
        assert needs == {
            "postgres": {"condition": "service_healthy"},
            "redis": {"condition": "service_healthy"},
        }
    for name, service in services.items():
        assert service["healthcheck"]["test"], f"{name} has no health check"
    assert "/health" in " ".join(services["api"]["healthcheck"]["test"])


def test_compose_env_names_are_settings_and_parse(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("api", "pipeline"):
        env = compose["services"][name]["environment"]
        unknown = [k for k in env if k.startswith("SPARECAST_") and not _setting_exists(k)]
        assert not unknown, f"{name}: not settings in sparecast.config: {unknown}"
        for key in [k for k in env if not k.startswith("SPARECAST_")]:
            pytest.fail(f"{name}: unexpected environment variable {key}")
        for key, value in env.items():
            monkeypatch.setenv(key, _default(str(value)))
        settings = Settings()  # the values as the container sees them (defaults filled in)
        assert settings.store.url is not None and settings.store.url.startswith("postgresql")
        assert "@postgres:5432/" in settings.store.url
        assert settings.store.cache_url == "redis://redis:6379/0"
        assert settings.service.api_key_hashes == []
        for key in env:
            monkeypatch.delenv(key)
    assert _setting_exists("SPARECAST_SERVICE__WORKERS")
    assert not _setting_exists("SPARECAST_SERVICE__NOPE") and not _setting_exists("SPARECAST_X")


def test_compose_volumes_are_declared(compose: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    used = set()
    for service in compose["services"].values():
        for mount in service.get("volumes", []):
            source = mount.split(":", 1)[0]
            if not source.startswith((".", "/")):
                used.add(source)
    assert used == declared == {"sparecast-data", "postgres-data"}
    assert "sparecast-data:/data" in compose["services"]["api"]["volumes"]
    assert "sparecast-data:/data" in compose["services"]["pipeline"]["volumes"]
    assert "postgres-data:/var/lib/postgresql/data" in compose["services"]["postgres"]["volumes"]


def test_dockerfile_runs_as_a_non_root_user() -> None:
    lines = [
        line.strip()
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert lines[0] == "FROM python:3.11-slim"
    users = [line.split(None, 1)[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in {"root", "0", "0:0"}
    last_user = max(i for i, line in enumerate(lines) if line.startswith("USER "))
    runs = [i for i, line in enumerate(lines) if line.startswith("RUN ")]
    assert runs and max(runs) < last_user, "nothing may run as root after the USER line"
    text = "\n".join(lines)
    assert 'pip install ".[ops]"' in text and "python -m venv" in text
    assert re.search(r"^HEALTHCHECK .*\n?.*127\.0\.0\.1:8000/health", text, re.M)
    assert lines[-1] == 'CMD ["sparecast", "serve", "--data", "/data"]'
    assert (ROOT / ".dockerignore").is_file()
