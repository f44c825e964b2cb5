"""A pre-warmed training child: imports torch and the engine, then waits for its command.

Importing torch, segmentation-models-pytorch and albumentations takes several seconds (far
more on a busy machine). The app starts this child while the user looks at the Training
panel; pressing Train then sends one JSON line on stdin, {"argv": [...], "cwd": "..."},
and the child runs exactly `segstudio <argv>` (the same CLI entry point, so the same event
stream, signals and exit codes). It writes nothing to stdout before that. Empty stdin
(the app closed, or the child is no longer wanted) ends it quietly.
"""

from __future__ import annotations

import json
import os
import sys


def _preload() -> None:
    try:
        import albumentations  # noqa: F401
        import segmentation_models_pytorch  # noqa: F401
        import torch  # noqa: F401

        import segstudio.cli.engine_cmds  # noqa: F401
        import segstudio.engine.trainer  # noqa: F401
    except Exception:  # a broken install is reported by the real run, in its own words
        pass


def main() -> int:
    if not os.environ.get("SEGSTUDIO_WARM_NO_PRELOAD"):  # tests of the hand-over skip the imports
        _preload()
    line = sys.stdin.readline()
    if not line.strip():
        return 0
    request = json.loads(line)
    if request.get("cwd"):
        os.chdir(request["cwd"])
    from segstudio.cli.main import main as cli_main

    return cli_main([str(arg) for arg in request["argv"]])


if __name__ == "__main__":
    sys.exit(main())
