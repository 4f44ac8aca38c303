"""The whole addon inside Odoo, against the simulator.

This process never imports ``odoo``: it starts the simulator, then runs
``bench/odoo_worker.py`` under Odoo's Python (``--odoo-python``) on a clone of
``--odoo-db`` (a database where ``openeducat_moodle`` is installed), reads
the worker's JSON and drops the clone.
"""

import json
import os
import pathlib
import subprocess
import tempfile
import time

from .measure import Phase
from .run_core import ROOT, Simulator, _described


def _odoo_available(python, log):
    if not os.path.exists(python):
        log(f"Odoo mode skipped: no Odoo Python at {python} (--odoo-python)")
        return False
    check = subprocess.run(
        [python, "-c", "import odoo, odoo.release; print(odoo.release.version)"],
        capture_output=True,
        text=True,
        check=False,
    )
    if check.returncode:
        log(f"Odoo mode skipped: `import odoo` fails under {python}")
        return False
    log(f"Odoo {check.stdout.strip()} at {python}")
    return True


def _worker(args, step, *extra, log=None):
    command = [
        args.odoo_python,
        "-m",
        "bench.odoo_worker",
        step,
        "--config",
        args.odoo_config,
        *extra,
    ]
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True)
    if log:
        log(f"  odoo {step}: {time.perf_counter() - started:.0f} s")


def run(preset, args, naive=False, log=print):
    """Run the phases in Odoo; ``None`` when Odoo is not available."""
    if not _odoo_available(args.odoo_python, log):
        return None
    batch_size = 1 if naive else args.batch_size
    db = f"{args.odoo_db}_run{os.getpid()}{'n' if naive else ''}"
    info = {"mode": "odoo", "naive": naive, "batch_size": batch_size, "db": db}
    with (
        Simulator(args.latency, speed=args.moodle_speed) as sim,
        tempfile.TemporaryDirectory() as tmp,
    ):
        info["moodle"] = _described(sim, args.latency, args.moodle_speed)
        out = pathlib.Path(tmp) / "phases.json"
        _worker(args, "clone", "--db", db, "--template", args.odoo_db, log=log)
        try:
            common = (
                "--db",
                db,
                "--preset",
                preset.name,
                "--url",
                sim.url,
                "--batch-size",
                str(batch_size),
            )
            _worker(args, "generate", *common, "--token", sim.token, log=log)
            _worker(
                args,
                "phases",
                *common,
                "--out",
                str(out),
                "--grade-share",
                str(args.grade_share),
                "--workers",
                str(getattr(args, "workers", 1) or 1),
                *(["--naive"] if naive else []),
                log=log,
            )
            data = json.loads(out.read_text())
            info["simulator"] = sim.control("stats")
        finally:
            if args.keep_db:
                log(f"  kept database {db}")
            else:
                _worker(args, "drop", "--db", db)
    info.update(data["info"])
    return [Phase.from_dict(p) for p in data["phases"]], info
