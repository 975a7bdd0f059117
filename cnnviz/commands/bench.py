"""``cnnviz bench``: benchmarks that report ratios measured side by side in one run."""

from __future__ import annotations

import inspect
import json
import platform
import sys
import time

from ..core.errors import CnnvizError


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="measure speed (ratios measured side by side in one run)")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--gui", action="store_true", help="kernel edit → pixels on screen in the real window")
    what.add_argument("--live", action="store_true", help="a 1280×720 30 fps source through the real window")
    what.add_argument("--model", action="store_true", help="resnet18 forward vs every layer captured and rendered")
    what.add_argument("--featviz", action="store_true",
                      help="top-images sweep vs plain forward; feature-visualization step vs forward+backward")
    what.add_argument("--soak", action="store_true", help="long run: memory growth, threads, hooks")
    what.add_argument("--train", action="store_true", help="training throughput with the Train window watching vs not")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--repeats", type=int, default=None, help="timed repetitions per case")
    p.set_defaults(func=run)


def machine_info() -> dict:
    import os

    return {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
            "date": time.strftime("%Y-%m-%d")}


def run(args) -> int:
    if args.device != "cpu":
        from ..core.devices import check_torch_device

        args.device = check_torch_device(args.device)
    if args.gui:
        from ..bench.gui import run_gui_bench as fn
    elif args.live:
        from ..bench.live import run_live_bench as fn
    elif args.model:
        from ..bench.model import run_model_bench as fn
    elif getattr(args, "featviz", False):
        from ..bench.featviz import run_featviz_bench as fn
    elif args.soak:
        from ..bench.soak import run_soak_bench as fn
    elif args.train:
        from ..bench.train import run_train_bench as fn
    else:
        from ..bench.conv import run_conv_bench as fn
    kwargs = {"device": args.device}
    if args.repeats is not None:
        if args.repeats < 1:
            raise CnnvizError("--repeats must be at least 1", "use --repeats 5")
        kwargs["repeats"] = args.repeats
    if "repeats" in kwargs and "repeats" not in inspect.signature(fn).parameters:
        raise CnnvizError("--repeats does not apply to this benchmark", "leave --repeats out")
    from ..bench.steal import StealMeter

    with StealMeter() as steal:
        result = fn(**kwargs)
    if isinstance(result, dict):
        result.setdefault("machine", machine_info())
        if isinstance(result["machine"], dict):
            # a virtual machine's host taking CPU time: multi-threaded figures suffer first
            result["machine"]["cpu_steal_pct"] = steal.percent
    if args.json:
        print(json.dumps(result, indent=1, default=float))
    else:
        print_table(result)
    return 0


def print_table(result: dict) -> None:
    cases = result.get("cases")
    if not cases:
        for k, v in result.items():
            if k != "machine":
                print(f"{k:24s} {v}")
        return
    keys = [k for k in cases[0].keys()]
    widths = {k: max(len(k), *(len(_fmt(c.get(k))) for c in cases)) for k in keys}
    print("  ".join(k.ljust(widths[k]) for k in keys))
    for c in cases:
        print("  ".join(_fmt(c.get(k)).ljust(widths[k]) for k in keys))
    for k, v in result.items():
        if k not in ("cases", "machine"):
            print(f"{k}: {v}")
    machine = result.get("machine")
    steal = machine.get("cpu_steal_pct") if isinstance(machine, dict) else None
    if steal is not None:
        print(f"cpu steal during the run: {steal:.1f} %" + ("  (a busy host: timings are noisy)" if steal > 5 else ""))
    sys.stdout.flush()


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)
