"""Wall time of importing CamVid (train + val, masks, classes.json) with the CLI.

    python benchmarks/import_camvid.py [--camvid DIR] [--copy]

Prints key=value lines: import_s (wall time of the `segstudio import` call, in-process),
cpu_s (its CPU time over all threads), images, masks, images_per_s, and info_s
(`segstudio info --json` over the result).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CAMVID = ROOT.parent / "shared" / "data" / "camvid"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--camvid", type=Path, default=DEFAULT_CAMVID)
    parser.add_argument("--copy", action="store_true", help="also copy the images into the project")
    args = parser.parse_args()
    if not (args.camvid / "classes.json").is_file():
        print(f"error: CamVid not found at {args.camvid}", file=sys.stderr)
        return 2
    sys.path.insert(0, str(ROOT))
    from segstudio.cli.main import build_parser
    from segstudio.cli.main import main as cli

    build_parser()  # import every command module once, so import_s measures the import itself
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "camvid"
        argv = ["import", str(project), "--format", "folders", str(args.camvid)] + (["--copy"] if args.copy else [])
        start, cpu_start = time.perf_counter(), time.process_time()
        with contextlib.redirect_stdout(io.StringIO()):
            code = cli(argv)
        import_s = time.perf_counter() - start
        cpu_s = time.process_time() - cpu_start
        if code != 0:
            print(f"error: import failed with exit code {code}", file=sys.stderr)
            return code
        out = io.StringIO()
        start = time.perf_counter()
        with contextlib.redirect_stdout(out):
            cli(["info", str(project), "--json"])
        info_s = time.perf_counter() - start
        summary = json.loads(out.getvalue())
    print(f"import_s={import_s:.2f}")
    print(f"cpu_s={cpu_s:.2f}")  # all threads; a shared, busy machine inflates import_s, not this
    print(f"images={summary['images']}")
    print(f"masks={summary['masks']}")
    print(f"images_per_s={summary['images'] / import_s:.1f}")
    print(f"info_s={info_s:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
