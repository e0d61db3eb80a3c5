"""Run every stage benchmark and print one table of ratios, with the device named on every line.

    python benchmarks/run_all.py [--quick] [--only extract,merge,...] [--json out.json]

Each ``bench_<name>.py`` exposes ``run(quick) -> list[dict]`` (name, value, target, unit, detail, device); ratios
are measured within one run of that benchmark (stage time over the bare work it must do, FLOP rate over the
machine's matmul rate), so they hold on a busy machine too.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from facelab.utils.runtime import set_openmp_defaults  # noqa: E402

set_openmp_defaults()  # before torch is imported, as main.py does

import argparse  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402

BENCHMARKS = ("extract", "loader", "train_flops", "merge", "masks")


def _meets(value: float, target: str) -> str:
    """'yes' / 'no' for targets like '< 1.3' or '>= 0.9'; '' for information rows."""
    parts = str(target).split()
    if len(parts) != 2 or parts[0] not in ("<", "<=", ">", ">="):
        return ""
    bound = float(parts[1])
    ok = {"<": value < bound, "<=": value <= bound, ">": value > bound, ">=": value >= bound}[parts[0]]
    return "yes" if ok else "no"


def collect(names: list[str], quick: bool) -> list[dict]:
    rows: list[dict] = []
    for name in names:
        module = importlib.import_module(f"bench_{name}")
        t0 = time.perf_counter()
        try:
            found = module.run(quick)
        except Exception as exc:  # one failing benchmark must not hide the others' numbers
            traceback.print_exc()
            found = [{"name": f"{name} (failed)", "value": float("nan"), "target": "", "unit": "",
                      "detail": f"{type(exc).__name__}: {exc}", "device": ""}]
        for row in found:
            row.setdefault("bench", name)
        rows += found
        print(f"# bench_{name}: {len(found)} row(s) in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    return rows


def table(rows: list[dict]) -> str:
    head = ("benchmark", "measure", "value", "target", "met", "device")
    lines = [(r.get("bench", ""), r["name"], f"{r['value']:.3f} {r.get('unit', '')}".strip(), str(r.get("target") or ""),
              _meets(r["value"], r.get("target") or ""), str(r.get("device", ""))) for r in rows]
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*line) for line in lines]
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="the short version of every benchmark")
    ap.add_argument("--only", default=",".join(BENCHMARKS), help=f"comma list from {','.join(BENCHMARKS)}")
    ap.add_argument("--json", default=None, help="also write the rows as JSON here")
    args = ap.parse_args()
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        ap.error(f"unknown benchmark(s) {', '.join(unknown)}")
    rows = collect(names, args.quick)
    print(table(rows))
    for r in rows:
        print(f"  {r['name']}: {r.get('detail', '')}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
