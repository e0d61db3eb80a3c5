"""The root command: help lists every group, --version, one-line errors and --debug tracebacks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from facelab import __version__
from facelab.cli import cli

REPO = Path(__file__).resolve().parents[2]


def test_main_py_help_lists_groups():
    proc = subprocess.run([sys.executable, str(REPO / "main.py"), "--help"], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for group in ("workspace", "video"):
        assert f"\n  {group}" in proc.stdout
    assert "--version" in proc.stdout and "--debug" in proc.stdout


def test_version():
    res = CliRunner().invoke(cli, ["--version"], obj={})
    assert res.exit_code == 0 and res.output.strip() == f"facelab, version {__version__}"


def test_user_error_is_one_line_and_debug_shows_traceback(tmp_path):
    missing = tmp_path / "missing.mp4"
    res = CliRunner().invoke(cli, ["video", "info", str(missing)], obj={})
    assert res.exit_code == 1
    assert res.output.strip() == f"Error: video {missing} does not exist; check the path"
    proc = subprocess.run([sys.executable, str(REPO / "main.py"), "--debug", "video", "info", str(missing)],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr and "FacelabError" in proc.stderr and str(missing) in proc.stderr
