#!/usr/bin/env bash
# Build the one-folder app from packaging/segstudio.spec and check that the built program starts:
# `--version`, the sample project opened offscreen (`gui --smoke`), and a child started the way
# the app starts its trainer and device probe (`-m MODULE`). Prints key=value lines.
#
#   packaging/check_pyinstaller.sh [WORKDIR]     (default: a fresh temporary folder)
#
# Needs PyInstaller in the environment: pip install -e '.[package]'. Slow (10+ minutes, most
# of it collecting torch); run it before a release, not in every CI run.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$root/.venv/bin/python}
work=${1:-$(mktemp -d -t segstudio-pyinstaller.XXXXXX)}
mkdir -p "$work"
log="$work/pyinstaller.log"

start=$(date +%s)
if ! "$python" -m PyInstaller --noconfirm --clean --log-level WARN \
        --distpath "$work/dist" --workpath "$work/build" "$root/packaging/segstudio.spec" >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "error: the PyInstaller build failed; the full log is $log" >&2
    exit 1
fi
echo "build_seconds=$(( $(date +%s) - start ))"

bundle="$work/dist/segstudio"
app="$bundle/segstudio"
echo "bundle=$bundle"
echo "bundle_size_mb=$(du -sm "$bundle" | cut -f1)"
echo "bundle_files=$(find "$bundle" -type f | wc -l)"

# The bundled app writes its sample copy and settings here, never into the user's folders.
home="$work/home"
rm -rf "$home"
mkdir -p "$home"
run() {
    env -i PATH="$PATH" HOME="$home" XDG_DATA_HOME="$home/data" XDG_CONFIG_HOME="$home/config" \
        QT_QPA_PLATFORM=offscreen timeout 300 "$app" "$@"
}

status=0
version=$(run --version) || { echo "error: '$app --version' failed" >&2; status=1; }
echo "version=$version"

start=$(date +%s)
if smoke=$(run gui --smoke 2>"$work/smoke.err"); then
    echo "smoke=$smoke"
else
    echo "error: the built app did not open the sample project offscreen:" >&2
    tail -n 30 "$work/smoke.err" >&2
    status=1
fi
echo "smoke_seconds=$(( $(date +%s) - start ))"

# The app's children run as `sys.executable -m MODULE`; in the bundle that is this program.
if probe=$(run -m segstudio.ui.training.probe 2>"$work/probe.err"); then
    echo "probe=$(printf '%s' "$probe" | tail -n 1 | cut -c1-200)"
    if printf '%s' "$probe" | grep -q '"torch_error"'; then
        echo "error: torch does not import inside the bundle (see probe= above)" >&2
        status=1
    fi
else
    echo "error: the bundled device probe (-m segstudio.ui.training.probe) failed:" >&2
    tail -n 30 "$work/probe.err" >&2
    status=1
fi
echo "ok=$([ $status -eq 0 ] && echo yes || echo no)"
exit $status
