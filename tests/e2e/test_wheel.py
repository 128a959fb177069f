"""The built wheel on its own: installed in a fresh virtual environment and run from a folder outside the
repository, it must still find its email templates and the preview page (they ship as package data)."""

import os
import shutil
import subprocess
import sys
from email import message_from_bytes, policy
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
EXAMPLE = ROOT / "config" / "cohort.example.yaml"
# What the Dockerfile's build stage copies too: all a wheel is built from.
SOURCES = ("pyproject.toml", "README.md", "service", "templates")


def run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess:
    # No PYTHONPATH or VIRTUAL_ENV from the outside: the new environment must stand on its own.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    result = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{args}\n{result.stdout}\n{result.stderr}"
    return result


def shipped(folder: Path, prefix: str, pattern: str = "*") -> set[str]:
    """Files under folder, as paths inside the installed package (bytecode left out)."""
    return {f"{prefix}/{p.relative_to(folder).as_posix()}" for p in folder.rglob(pattern) if p.is_file() and "__pycache__" not in p.parts}


@pytest.mark.slow
def test_wheel_installed_alone_renders_the_preview(tmp_path):
    # Build from a copy: an in-tree build would leave build/ in the repository, and a stale build/lib
    # there can carry deleted files into later wheels. pip's default isolated build is used because
    # this venv's own setuptools is older than [build-system] asks and it has no `wheel` package; the
    # build backend comes from the configured package index.
    source = tmp_path / "source"
    source.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ROOT / name, source / name)
    dist = tmp_path / "dist"
    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", dist, source, cwd=tmp_path)
    (wheel,) = dist.glob("mentorship_service-*.whl")

    # A fresh venv without pip (quick to make); this venv's pip installs the wheel into it. Only after
    # that does a .pth file lend it the site-packages folders this test runs with (for the dependencies,
    # without the network), so pip sees no other install of the project. `service` itself still comes
    # from the wheel: the new venv's own site-packages is searched first, and the editable install's
    # hook is a .pth file, which Python only reads in its own site folders.
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    run(sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps", "--no-index", wheel, cwd=tmp_path)
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp_path).stdout.strip())
    borrowed = [path for path in sys.path if Path(path).name in ("site-packages", "dist-packages") and Path(path).is_dir()]
    (site / "_borrowed_dependencies.pth").write_text("".join(f"{path}\n" for path in borrowed))

    # Every module and every template of the source tree made it into the installed package.
    expected = shipped(ROOT / "service", "service", "*.py") | shipped(ROOT / "templates", "service/_templates")
    assert sorted(expected - shipped(site / "service", "service")) == []

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    probe = "import service, service.mail.templates as t, service.preview as p; print(service.__file__, t.DEFAULT_DIR, p.INDEX_DIR)"
    for path in run(python, "-c", probe, cwd=elsewhere).stdout.split():
        assert Path(path).resolve().is_relative_to(site.resolve()), path

    out = tmp_path / "preview"
    command = venv / "bin" / "mentorship"
    run(command, "preview", "--config", EXAMPLE, "--now", "2027-02-01T00:00:00+00:00", "--out", out, cwd=elsewhere)
    index = out / "index.html"
    assert index.is_file() and "every email of the program" in index.read_text(encoding="utf-8")
    emails = sorted(out.rglob("*.eml"))
    assert emails
    (welcome, *_) = [p for p in emails if p.name.endswith("-welcome-mentee.eml")]
    message = message_from_bytes(welcome.read_bytes(), policy=policy.default)
    text = message.get_body(("plain",)).get_content()
    assert "SMART goals" in " ".join(text.split())
