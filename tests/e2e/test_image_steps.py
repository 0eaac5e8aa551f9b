"""What can be checked of the container image without a Docker engine: the Dockerfile's
install step succeeds in a clean virtual environment, installs no development tools, and
its entrypoint (`configpin serve`) starts and becomes ready against the real API server."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from devkit.localwebhook import REPO_ROOT, Webhook

DOCKERFILE = REPO_ROOT / "Dockerfile"
PREFIX = "/opt/configpin"


def dockerfile_steps() -> tuple[list[str], str, list[str]]:
    """The build context files, the pip install command and the entrypoint + command."""
    text = DOCKERFILE.read_text()
    copied = [
        name
        for line in re.findall(r"^COPY (?!--from)(.+)$", text, re.M)
        for name in line.split()[:-1]
    ]
    install = re.search(r"^RUN (/opt/configpin/bin/pip install [^\\\n]+)", text, re.M)
    entrypoint = re.search(r'^ENTRYPOINT \["([^"]+)"\]', text, re.M)
    command = re.search(r'^CMD \["([^"]+)"\]', text, re.M)
    assert install and entrypoint and command, "the Dockerfile changed shape: update this test"
    return copied, install.group(1).strip(), [entrypoint.group(1), command.group(1)]


def test_install_step_and_entrypoint(webhook_kubeconfig: str, tmp_path: Path) -> None:
    copied, install, (entrypoint, command) = dockerfile_steps()
    context = tmp_path / "context"
    context.mkdir()
    for name in copied:
        source = REPO_ROOT / name.rstrip("/")
        if source.is_dir():
            shutil.copytree(
                source, context / source.name, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            shutil.copy(source, context / source.name)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    step = install.replace(PREFIX, str(venv)).split()
    result = subprocess.run(step, cwd=context, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]

    installed = subprocess.run(
        [str(venv / "bin" / "pip"), "list", "--format=freeze"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.lower()
    for tool in ("pytest", "ruff", "mypy", "hypothesis"):
        assert f"\n{tool}==" not in f"\n{installed}", f"{tool} must not be in the image"

    assert command == "serve"
    server = Webhook(webhook_kubeconfig, tmp_path, entrypoint=(str(venv / "bin" / entrypoint),))
    try:
        server.start()  # raises unless /readyz answers 200 over TLS
    finally:
        server.stop()
    if "Traceback" in server.log.read_text():
        pytest.fail(server.log.read_text()[-2000:])
