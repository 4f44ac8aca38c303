"""``python -m bench``: the scale benchmark (see bench/README.md)."""

import argparse
import dataclasses
import datetime
import json
import os
import sys
import time

from . import generate, report
from .measure import Phase, machine


def _args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="Scale benchmark of openeducat_moodle"
    )
    parser.add_argument("--preset", choices=sorted(generate.PRESETS), default="small")
    parser.add_argument(
        "--mode",
        choices=["core", "odoo", "both"],
        default="core",
        help="core: the sync core alone; odoo: the whole addon inside Odoo",
    )
    parser.add_argument(
        "--latency",
        type=float,
        default=0.0,
        help="simulator: seconds added to every web-service call",
    )
    parser.add_argument(
        "--moodle-speed",
        choices=["instant", "moodle45"],
        default="instant",
        help="simulator: instant (only its own work), or moodle45 (per-record "
        "costs of a Moodle 4.5 on two cores: 85 users, 350 enrolments, 400 "
        "memberships a second)",
    )
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="odoo mode: run a full push's part jobs (a parallel push) with "
        "this many queue_job workers at once; 1: one job, as before",
    )
    parser.add_argument(
        "--naive",
        action="store_true",
        help="also run the phases as a simple connector does (batch size 1, "
        "no hash skip, one grade call per student) and compare",
    )
    parser.add_argument(
        "--check",
        nargs="?",
        const="all",
        choices=["all", "counts"],
        help="exit 1 when a target of the issue is not met; 'counts': only the "
        "targets on calls and queries, not those on time or memory (which "
        "depend on the machine and its load)",
    )
    parser.add_argument(
        "--odoo-config",
        default=os.environ.get("BENCH_ODOO_CONFIG", "/opt/oec17/odoo.conf"),
    )
    parser.add_argument(
        "--odoo-db",
        default=os.environ.get("BENCH_ODOO_DB", "oec_bench"),
        help="a database with openeducat_moodle installed; it is cloned for "
        "the run and the clone dropped afterwards",
    )
    parser.add_argument(
        "--odoo-python",
        default=os.environ.get("BENCH_ODOO_PYTHON", "/opt/oec17/venv/bin/python"),
    )
    parser.add_argument(
        "--grade-share",
        type=float,
        default=1.0,
        help="share of enrolled students with a grade per item",
    )
    parser.add_argument("--keep-db", action="store_true")
    parser.add_argument(
        "--cleanup",
        type=int,
        metavar="RUN",
        help="preset real: only delete what run RUN created on MOODLE_URL",
    )
    parser.add_argument("--json", help="also write the raw results to this file")
    parser.add_argument(
        "--chaos",
        type=float,
        metavar="RATE",
        help="chaos run: the share of web-service calls that meet a fault "
        "(e.g. 0.05); compares Moodle with a fault-free run of the same script",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="chaos run: the random seed (default: a fixed one)",
    )
    parser.add_argument(
        "--max-runs",
        type=int,
        default=5000,
        help="chaos run: runs of one job before it is judged not to converge",
    )
    return parser.parse_args(argv)


def _log(text):
    print(text, file=sys.stderr, flush=True)


def _run_mode(mode, preset, args, naive=False):
    if mode == "core":
        from . import run_core

        return run_core.run(
            preset,
            batch_size=1 if naive else args.batch_size,
            latency=args.latency,
            naive=naive,
            log=_log,
            grade_share=args.grade_share,
            speed=args.moodle_speed,
        )
    from . import run_odoo

    return run_odoo.run(preset, args, naive=naive, log=_log)


def _section(mode, preset, phases, info, args):
    out = [
        f"### {mode} mode, preset `{preset.name}`"
        + (" (naive connector)" if info.get("naive") else ""),
        "",
        f"Institution: {preset.describe()}.  ",
        f"Moodle: {info.get('moodle')}; batch size {info.get('batch_size')}"
        + (
            f"; a full push's parts run {info['workers']} at once (--workers)."
            if (info.get("workers") or 1) > 1
            else "."
        ),
    ]
    busy = (info.get("simulator") or {}).get("moodle_busy")
    if busy and len(busy) > 1:
        out.append(
            "Seconds with k paced requests in Moodle at once: "
            + ", ".join(f"k={k}: {v:,.0f}" for k, v in busy.items())
            + "."
        )
    if info.get("seeded"):
        out.append(
            "Seeded after the pushes (not timed): "
            + ", ".join(f"{k} {v:,}" for k, v in info["seeded"].items())
            + "."
        )
    out += ["", report.summary_table(phases), "", report.calls_table(phases), ""]
    out += [report.notes(phases), ""]
    return out


def main(argv=None):
    args = _args(argv)
    preset = generate.PRESETS[args.preset]
    if args.preset == "real":
        from . import run_real

        return run_real.main(args, _log)
    if args.chaos is not None:
        from . import chaos

        if args.seed is None:
            args.seed = chaos.DEFAULT_SEED
        return chaos.main(args, _log)
    modes = ["core", "odoo"] if args.mode == "both" else [args.mode]
    started = time.time()
    out = [
        f"## openeducat_moodle benchmark, {datetime.date.today()}",
        "",
        f"Machine: {machine()}.  ",
        f"Command: `python -m bench {' '.join(argv or sys.argv[1:])}`",
        "",
    ]
    raw, failed = {}, False
    for mode in modes:
        _log(f"== {mode} mode, preset {preset.name}")
        result = _run_mode(mode, preset, args)
        if result is None:
            out += [f"### {mode} mode: skipped (Odoo is not available)", ""]
            continue
        phases, info = result
        raw[mode] = {"info": info, "phases": [p.as_dict() for p in phases]}
        out += _section(mode, preset, phases, info, args)
        rows = report.checks(phases, info, reference=preset.name == "reference")
        out += ["Targets:", "", report.checks_table(rows), ""]
        failed |= not all(r.met for r in rows if args.check == "all" or not r.machine)
        if args.naive:
            _log(f"== {mode} mode, preset {preset.name}, naive connector")
            naive = _run_mode(mode, preset, args, naive=True)
            if naive:
                n_phases, n_info = naive
                raw[mode + "-naive"] = {
                    "info": n_info,
                    "phases": [p.as_dict() for p in n_phases],
                }
                out += _section(mode, preset, n_phases, n_info, args)
                out += [
                    "Connector against the naive connector (same run):",
                    "",
                    report.naive_table(phases, n_phases),
                    "",
                ]
    out.append(f"Total benchmark time: {time.time() - started:.0f} s.")
    print("\n".join(out))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(
                {"preset": dataclasses.asdict(preset), "runs": raw}, handle, indent=1
            )
    if args.check and failed:
        _log("benchmark: a target is not met (see Targets)")
        return 1
    return 0


__all__ = ["Phase", "main"]

if __name__ == "__main__":
    sys.exit(main())
