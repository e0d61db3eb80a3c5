"""facelab command line: ``python main.py --help``."""

import os

# Idle OpenMP threads sleep instead of spinning: on a small shared CPU, spinning threads make two threads slower
# than one. Set before torch is imported; an explicit setting in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from facelab.cli import main  # noqa: E402

if __name__ == "__main__":
    main()
