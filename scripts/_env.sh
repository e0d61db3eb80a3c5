# Shared set-up for the step scripts: stop on the first error, find Python and the workspace.
# WORKSPACE (default: ./workspace next to main.py) and PYTHON (default: .venv/bin/python, else python3) can be set.
set -euo pipefail
FACELAB_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -z "${PYTHON:-}" ]; then
  if [ -x "$FACELAB_ROOT/.venv/bin/python" ]; then PYTHON="$FACELAB_ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
WORKSPACE="${WORKSPACE:-$FACELAB_ROOT/workspace}"
facelab() { "$PYTHON" "$FACELAB_ROOT/main.py" "$@"; }
