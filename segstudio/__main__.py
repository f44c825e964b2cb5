"""`python -m segstudio` is the same as the `segstudio` command."""

from __future__ import annotations

import runpy
import sys

from segstudio.cli.main import main


def _run_frozen_module() -> int | None:
    """In a PyInstaller bundle there is no interpreter: the app starts its children (trainer,
    device probe, warm start) as `sys.executable -m MODULE ...`, and sys.executable is this
    program. Run MODULE as `python -m` would; None when argv asks for no module."""
    if not getattr(sys, "frozen", False) or len(sys.argv) < 3 or sys.argv[1] != "-m":
        return None
    module = sys.argv[2]
    sys.argv = [sys.argv[0], *sys.argv[3:]]
    if module == "segstudio":
        return main()
    runpy.run_module(module, run_name="__main__", alter_sys=True)
    return 0


if __name__ == "__main__":
    code = _run_frozen_module()
    sys.exit(main() if code is None else code)
