"""The papers' published CUB-200-2011 numbers, and a table of measured results beside them.

Sources: BAS (Wu et al., CVPR 2022) Table 1, the image ``Img/accuracy.png`` of ``wpy1999/BAS``'s README; SAT (Wu et
al., ICCV 2023) Table 1, the image ``img/result.png`` of ``wpy1999/SAT``'s README, whose model-zoo line gives the
same DeiT-Small numbers. The SAT paper reports no DeiT-Tiny row on CUB, so that row has no published numbers.
"""

from __future__ import annotations

from typing import Mapping

#: (method, backbone) -> (where the numbers come from, {metric key: percent})
PUBLISHED: dict[tuple[str, str], tuple[str, dict[str, float]]] = {
    ("bas", "vgg16"): ("BAS paper Table 1", {"top1_loc": 71.33, "top5_loc": 85.33, "gt_known_loc": 91.07}),
    ("bas", "resnet50"): ("BAS paper Table 1", {"top1_loc": 77.25, "top5_loc": 90.08, "gt_known_loc": 95.13}),
    ("bas", "inceptionv3"): ("BAS paper Table 1", {"top1_loc": 73.29, "top5_loc": 86.31, "gt_known_loc": 92.24}),
    ("bas", "mobilenetv1"): ("BAS paper Table 1", {"top1_loc": 69.77, "top5_loc": 86.00, "gt_known_loc": 92.35}),
    ("sat", "deit_small"): ("SAT paper Table 1", {"top1_loc": 80.96, "top5_loc": 94.13, "gt_known_loc": 98.45}),
    ("sat", "deit_tiny"): ("not reported on CUB", {}),
}
COLUMNS = (("Top-1 Loc", "top1_loc"), ("Top-5 Loc", "top5_loc"), ("GT-known", "gt_known_loc"),
           ("MaxBoxAccV2", "max_box_acc_v2"))


def _cell(values: Mapping[str, float], key: str) -> str:
    return f"{values[key]:.2f}" if key in values else "-"


def compare_table(results: list[Mapping]) -> str:
    """One block per run: the measured metrics (``method``, ``backbone``, ``metrics``, ``protocol`` of each
    result) beside the published numbers for the same backbone and where they come from."""
    head = f"{'run':<18} {'':<9} " + " ".join(f"{name:>11}" for name, _ in COLUMNS)
    lines = [head, "-" * len(head)]
    for res in results:
        name = f"{res['method'].upper()} {res['backbone']}"
        source, paper = PUBLISHED.get((res["method"], res["backbone"]), ("no published number", {}))
        lines.append(f"{name:<18} {'measured':<9} " + " ".join(f"{_cell(res['metrics'], k):>11}"
                                                                for _, k in COLUMNS))
        lines.append(f"{'':<18} {'paper':<9} " + " ".join(f"{_cell(paper, k):>11}" for _, k in COLUMNS)
                     + f"   ({source})")
        lines.append(f"{'':<18} protocol: {res.get('protocol', '?')}")
    return "\n".join(lines)
