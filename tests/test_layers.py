"""The layers stay apart: a pure core, one package per edge (as an import linter would)."""

import ast
from pathlib import Path

APP = Path(__file__).resolve().parents[1] / "app"


def imports(package: str) -> dict[str, set[str]]:
    """Module path -> top-level names it imports (`app.kube`, `fastapi`, ...)."""
    found: dict[str, set[str]] = {}
    for path in (APP / package).rglob("*.py") if package else APP.glob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
        found[str(path.relative_to(APP))] = names
    return found


def offenders(package: str, forbidden: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{module} imports {name}"
        for module, names in imports(package).items()
        for name in names
        if name.split(".")[0] in forbidden
        or name.startswith(tuple(f + "." for f in forbidden))
        or name in forbidden
    )


def test_the_domain_is_pure() -> None:
    edges = (
        "kubernetes",
        "fastapi",
        "uvicorn",
        "starlette",
        "urllib3",
        "app.kube",
        "app.web",
        "app.admission",
        "app.cli",
        "app.render",
        "os",
        "socket",
        "subprocess",
        "logging",
    )
    assert offenders("domain", edges) == []


def test_admission_knows_no_client_and_no_web() -> None:
    assert offenders("admission", ("kubernetes", "fastapi", "uvicorn", "app.kube", "app.web")) == []


def test_only_app_kube_imports_the_kubernetes_client() -> None:
    for package in ("domain", "admission", "web"):
        assert offenders(package, ("kubernetes", "urllib3")) == [], package
    assert offenders("", ("kubernetes",)) == []  # top-level modules: cli, render, ...


def test_only_app_web_imports_the_web_framework() -> None:
    for package in ("domain", "admission", "kube"):
        assert offenders(package, ("fastapi", "uvicorn", "starlette")) == [], package


def test_the_controller_shares_only_domain_and_kube_with_the_webhook() -> None:
    forbidden = ("kubernetes", "urllib3", "fastapi", "uvicorn", "app.admission", "app.web")
    assert offenders("controller", forbidden) == []
