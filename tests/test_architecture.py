"""Boundaries that keep the modular monolith splittable (DESIGN §1)."""

from __future__ import annotations

import ast
from pathlib import Path

import nexus
from nexus.kernel.service import PERMISSION, Service, available_services, load_services

SRC = Path(nexus.__file__).parent


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_services_do_not_import_each_other() -> None:
    services_dir = SRC / "services"
    names = [p.name for p in services_dir.iterdir() if p.is_dir() and not p.name.startswith("_")]
    offenders = []
    for name in names:
        for path in (services_dir / name).rglob("*.py"):
            for module in _imports(path):
                parts = module.split(".")
                if parts[:2] == ["nexus", "services"] and len(parts) > 2 and parts[2] != name:
                    offenders.append(f"{path.relative_to(SRC)} imports {module}")
    assert offenders == []


def test_kernel_does_not_import_services() -> None:
    offenders = [
        f"{path.relative_to(SRC)} imports {module}"
        for path in (SRC / "kernel").rglob("*.py")
        for module in _imports(path)
        if module.startswith("nexus.services.")
    ]
    assert offenders == []


def test_every_builtin_service_descriptor_is_valid() -> None:
    services = load_services(list(available_services()))
    for service in services:
        assert isinstance(service, Service)
        assert all(PERMISSION.match(p) for p in service.permissions)
        if service.metadata is not None:
            for table in service.metadata.tables:
                assert table.startswith(f"{service.name}_"), f"{table} must be prefixed"


def test_openapi_of_all_services_builds() -> None:
    from nexus.kernel.config import Settings
    from nexus.kernel.http import create_app

    app = create_app(Settings(), load_services(list(available_services())))
    spec = app.openapi()
    assert "/api/v1/messages/send" in spec["paths"]
    assert "/api/v1/auth/login" in spec["paths"]
