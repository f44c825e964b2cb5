#!/usr/bin/env python3
"""Set up segstudio in an isolated environment (.venv) and launch it, or run its tests.

    python3 studio.py [PROJECT]       set up (first time, or when pyproject.toml changed) and launch the app
    python3 studio.py test [ARGS]     set up with the test tools and run the whole test suite

Only the standard library is used here, so this runs on a bare Python >= 3.10 on Linux,
macOS and Windows. A second run skips the install when nothing changed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("SEGSTUDIO_VENV", ROOT / ".venv"))
STAMP = VENV / ".segstudio-install"


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def pip_env() -> dict[str, str]:
    env = dict(os.environ)
    # Local wheel folders set up on some build machines carry a CPU-only torch with no
    # matching torchvision; torch and torchvision must come as a pair from the registry.
    env["PIP_FIND_LINKS"] = ""
    env.setdefault("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    return env


def ensure_env(extras: str) -> Path:
    if sys.version_info < (3, 10):  # noqa: UP036 - this file runs on whatever Python the user has
        sys.exit(f"segstudio needs Python 3.10 or newer; this is {sys.version.split()[0]}")
    python = venv_python()
    if not python.exists():
        print(f"[studio] creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True, clear=False).create(VENV)
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    wanted = f"{digest}:{extras}"
    have = STAMP.read_text().split() if STAMP.exists() else []
    # The test install is a superset of the app's, so it serves the app too.
    if wanted in have or (not extras and f"{digest}:test" in have):
        return python
    target = f"{ROOT}[{extras}]" if extras else str(ROOT)
    print(f"[studio] installing segstudio{'[' + extras + ']' if extras else ''} (first time: a few minutes)", flush=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"],
                   check=True, env=pip_env())
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-e", target],
                   check=True, env=pip_env())
    STAMP.write_text("\n".join([*(h for h in have if h.startswith(digest)), wanted]) + "\n")
    return python


def main(argv: list[str]) -> int:
    if argv[:1] == ["test"]:
        python = ensure_env("test")
        return subprocess.call([str(python), "-m", "pytest", *argv[1:]], cwd=ROOT)
    python = ensure_env("")
    return subprocess.call([str(python), "-m", "segstudio", *argv])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
