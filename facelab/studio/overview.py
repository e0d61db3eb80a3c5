"""The workspace overview: the data of ``workspace info`` and the next command to run."""

from __future__ import annotations

from typing import Any

from facelab.workspace.layout import Workspace


def next_command(info: dict[str, Any]) -> tuple[str, str]:
    """(command, why) of the first stage whose output is missing, in the order of the pipeline."""
    steps = [
        (info["data_src video"] is None and not info["data_src frames"],
         "python main.py workspace samples", "no source video: put data_src.mp4 in the workspace, or fetch samples"),
        (info["data_dst video"] is None and not info["data_dst frames"],
         "python main.py workspace samples", "no destination video: put data_dst.mp4 in the workspace"),
        (not info["data_src frames"], "python main.py video extract data_src", "source frames not extracted"),
        (not info["data_dst frames"], "python main.py video extract data_dst", "destination frames not extracted"),
        (not info["data_src aligned faces"], "python main.py extract --side src", "no aligned source faces"),
        (not info["data_dst aligned faces"], "python main.py extract --side dst", "no aligned destination faces"),
        (not info["models"], "python main.py train --model saehd", "no model trained yet"),
        (not info["merged frames"], "python main.py merge --config merge_settings.json",
         "nothing merged yet: tune the settings in the Merge tab, save, then merge"),
        (info["result"] is None, "python main.py video encode", "merged frames not encoded into result.mp4"),
    ]
    for missing, command, why in steps:
        if missing:
            return command, why
    return "python main.py evaluate", "every stage has run; measure the swap"


def overview(ws: Workspace) -> dict[str, Any]:
    from facelab.cli.workspace_cmd import workspace_info

    info = workspace_info(ws)
    command, why = next_command(info)
    return {"info": info, "next": {"command": command, "why": why}}
