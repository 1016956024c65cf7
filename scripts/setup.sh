#!/usr/bin/env bash
# Creates .venv and installs retake with its test tools. Safe to run again: it only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
# pyproject.toml asks for 3.11+: say so in one line instead of pip's resolver error.
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || { echo "retake needs Python >= 3.11; $PY is $("$PY" -V 2>&1) (set PYTHON=python3.11 or newer)" >&2; exit 1; }
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[dev]"
# scenedetect requires the GUI build of OpenCV; both builds write the same cv2 package, so remove the GUI
# one and reinstall the headless one over it. Scene detection only needs cv2's core and imgproc.
if .venv/bin/python -m pip show -q opencv-python >/dev/null 2>&1; then
    .venv/bin/python -m pip uninstall -q -y opencv-python
    .venv/bin/python -m pip install -q --force-reinstall --no-deps \
        "$(.venv/bin/python -m pip show opencv-python-headless | awk '/^Version:/{print "opencv-python-headless=="$2}')"
fi
.venv/bin/python -c "import cv2, torch, av, scenedetect; print('retake env ready: torch', torch.__version__, 'cv2', cv2.__version__)"
