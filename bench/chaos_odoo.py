"""The chaos run in Odoo mode: the addon's job methods against a Moodle that
fails at random.

``python -m bench --preset small --mode odoo --chaos RATE [--seed N]
[--check counts]``. This process never imports ``odoo`` (:func:`main`): for
the chaos run and for a fault-free reference run it clones the template
database (``--odoo-db``), creates the institution there
(``bench/odoo_worker.py generate``) and runs ``odoo_worker.py chaos`` under
Odoo's Python, which calls :func:`step_chaos`; it then compares what the two
runs left, object for object, with :func:`bench.chaos.compare`.

Inside the worker (:class:`OdooRun`), the simulator (:class:`bench.chaos.
ChaosMoodle`, with the core mode's fault kinds and weights) serves over
loopback HTTP from a thread of the worker process, on a simulated clock
(outages last simulated minutes). The addon's ``MoodleClient`` is patched
only as the core mode's ``ChaosClient`` is: the ``timeout`` fault becomes a
``ReadTimeout``, and the ``kill`` fault raises :class:`bench.chaos.
WorkerKilled` (a ``BaseException``) once Moodle's answer has arrived.

The script: a full push (``moodle.instance._job_push``), the same push again,
a push after a day of edits written through the ORM (``generate.
change_one_percent``), then, after grade items, grades and completion are set
up in Moodle (``chaos.seed_learning``, identical in both runs), a grade and
completion pull (``_job_pull_grades``). Each job run has its own cursor:

* the job returns: its cursor is committed (a Moodle failure was already
  turned by ``_run`` into a committed backoff of the instance);
* the worker is killed (``kill``), or dies between the job's last reply and
  its commit (``kill at commit``, with the core mode's probability): its
  cursor is rolled back, the ORM caches are cleared, and the job runs again;
* the instance backs off (``backoff_until`` set): the clock of the simulator
  moves to the window's end, ``backoff_until`` is written to the past in a
  committed transaction of its own (Odoo's wall clock cannot be moved across
  the cursors), and ``_job_probe`` runs in its own cursor: Moodle answers,
  the backoff is lifted; it does not, ``_job_probe`` opens the next window.

With ``--workers N`` (N > 1) a full push with much to create goes on in N
parts per stage (``moodle_instance_parallel.py``): after each run of the push
job, the parts it left queued run one at a time, in queue_job's order (its
dependencies release each stage), each in its own cursor with the same
faults, kills and backoffs, until none is left (a part Moodle failed part
way is replaced by a new job, which runs in its turn).

A job is run until it is quiet: a run without backoff after which no mapping
row of the instance is in state ``error`` (their ``next_retry_date`` is
written to the past, as time passing would, and the job runs again) and, for
the pull, no course or completion failed. Afterwards a dry-run push (faults
off) must plan nothing.
"""

import dataclasses
import datetime
import json
import os
import pathlib
import random
import re
import tempfile
import time
import types

from . import chaos, generate

SCRIPT_NOTE = (
    "full push, the same push again, a push after a day of edits (1 %), "
    "then a grade and completion pull"
)


# ------------------------------------------------------------ parent side
def main(args, log):
    """``python -m bench --mode odoo --chaos RATE``; returns the exit status."""
    from . import run_odoo

    if not run_odoo._odoo_available(args.odoo_python, log):
        return 2
    preset = generate.PRESETS[args.preset]
    rate, seed = args.chaos, args.seed
    data = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, run_rate in (("chaos", rate), ("reference", 0.0)):
            log(
                f"== Odoo-mode chaos run ({label}), preset {preset.name}, "
                f"rate {run_rate}, seed {seed}"
            )
            db = f"{args.odoo_db}_chaos{os.getpid()}{label[0]}"
            out = pathlib.Path(tmp) / f"{label}.json"
            run_odoo._worker(
                args, "clone", "--db", db, "--template", args.odoo_db, log=log
            )
            try:
                common = (
                    "--db",
                    db,
                    "--preset",
                    preset.name,
                    "--batch-size",
                    str(args.batch_size),
                )
                run_odoo._worker(
                    args,
                    "generate",
                    *common,
                    "--url",
                    "http://127.0.0.1:9",
                    "--token",
                    chaos.SIM_TOKEN,
                    log=log,
                )
                run_odoo._worker(
                    args,
                    "chaos",
                    *common,
                    "--rate",
                    str(run_rate),
                    "--seed",
                    str(seed),
                    "--max-runs",
                    str(args.max_runs),
                    "--workers",
                    str(getattr(args, "workers", 1) or 1),
                    "--out",
                    str(out),
                    log=log,
                )
                data[label] = json.loads(out.read_text())
            finally:
                if args.keep_db:
                    log(f"  kept database {db}")
                else:
                    run_odoo._worker(args, "drop", "--db", db)
    runs = {label: _as_run(d) for label, d in data.items()}
    differences = chaos.compare(data["reference"]["state"], data["chaos"]["state"])
    out = chaos.report(
        preset, rate, seed, runs["chaos"], runs["reference"], differences
    )
    out[0] = (
        f"### Chaos run, Odoo mode, preset `{preset.name}`, rate {rate}, seed {seed}"
    )
    out.insert(2, f"Script: {SCRIPT_NOTE}.  ")
    converged = all(j.converged for r in runs.values() for j in r.jobs)
    same = all(d.ok for d in differences) and not runs["chaos"].final_plan
    verdict = "nothing lost, nothing twice" if same else "**differences found**"
    if not converged:
        verdict += "; **a job did not converge**"
    out += ["", f"Verdict: {verdict}.", ""]
    print("\n".join(out))
    if args.check and not (same and converged):
        log("chaos run: lost, duplicated or not converged (see above)")
        return 1
    return 0


def _as_run(data):
    """The worker's JSON, shaped as :func:`bench.chaos.report` reads a Run."""
    jobs = []
    for job in data["jobs"]:
        stats = chaos.JobStats(job["name"])
        for key, value in job.items():
            setattr(stats, key, value)
        stats.errors = chaos.collections.Counter(job["errors"])
        jobs.append(stats)
    return types.SimpleNamespace(
        jobs=jobs,
        fm=types.SimpleNamespace(fault_counts=data["faults"]),
        calls=data["calls"],
        probes=data["probes"],
        probes_failed=data["probes_failed"],
        wall=data["wall"],
        clock=types.SimpleNamespace(elapsed=data["simulated"]),
        final_plan=data["final_plan"],
    )


# ------------------------------------------------------------ worker side
def _patch_client(cls, fm, counter):
    """The addon's client, as ``chaos.ChaosClient`` makes the core's."""
    if getattr(cls, "_bench_chaos", False):
        return
    init, exchange = cls.__init__, cls._exchange

    def __init__(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.session.mount("http://", chaos._TimeoutAdapter(fm))

    def _exchange(self, name, body, fields):
        counter[0] += 1
        try:
            return exchange(self, name, body, fields)
        finally:
            if fm.take_kill():
                raise chaos.WorkerKilled(name)  # the process is gone

    cls.__init__, cls._exchange, cls._bench_chaos = __init__, _exchange, True


_FAILED = re.compile(r"(\d+) courses failed")
_COMPLETION_ERRORS = re.compile(r"\berror: (\d+)")


class OdooRun:
    def __init__(self, odoo, args):
        self.odoo = odoo
        self.db = args.db
        self.rate = args.rate
        self.seed = args.seed
        self.max_runs = args.max_runs
        self.workers = getattr(args, "workers", 1) or 1
        self.preset = generate.PRESETS[args.preset]
        self.rng = random.Random(self.seed * 7 + 1)
        self.clock = chaos.VirtualClock(
            datetime.datetime.now(datetime.timezone.utc).replace(
                tzinfo=None, microsecond=0
            )
        )
        self.jobs = []
        self.calls = [0]
        self.probes = self.probes_failed = 0
        self.fm = None
        self.instance_id = None

    def _cursor(self):
        from bench.odoo_worker import _env

        return _env(self.odoo, self.db)

    def _instance(self, env):
        return env["moodle.instance"].browse(self.instance_id)

    def _clear_caches(self):
        registry = self.odoo.modules.registry.Registry(self.db)
        clear = getattr(registry, "clear_all_caches", None) or registry.clear_cache
        clear()

    # --- one transaction
    def _in_cursor(self, work, commit=True):
        cr, env = self._cursor()
        try:
            result = work(env)
            if commit:
                cr.commit()
            else:
                cr.rollback()
            return result
        finally:
            cr.close()

    def _attempt(self, job, stats):
        cr, env = self._cursor()
        try:
            try:
                summary = job(self._instance(env))
            except chaos.WorkerKilled:
                self.fm.wait_idle()
                cr.rollback()
                self._clear_caches()
                stats.killed += 1
                self.clock.advance(chaos.REQUEUE_AFTER)
                return "killed", None
            self.fm.wait_idle()
            if self.rate and self.rng.random() < self.rate * chaos.COMMIT_KILL_SHARE:
                cr.rollback()  # died between its last reply and the commit
                self._clear_caches()
                stats.killed_at_commit += 1
                self.clock.advance(chaos.REQUEUE_AFTER)
                return "killed", None
            cr.commit()
            return "done", summary
        finally:
            cr.close()

    def _state(self):
        def read(env):
            inst = self._instance(env)
            return inst.backoff_until, inst.health_state, inst.health_message or ""

        return self._in_cursor(read, commit=False)

    def _back_off(self):
        """Move through the backoff windows until a probe lifts it."""
        fields = self.odoo.fields
        while True:
            until, _health, _msg = self._state()
            if not until:
                return
            now = fields.Datetime.now()
            self.clock.advance(max(0.0, (until - now).total_seconds()))

            def expire(env, now=now):
                self._instance(env).write(
                    {"backoff_until": now - datetime.timedelta(seconds=1)}
                )

            self._in_cursor(expire)
            self.probes += 1
            cr, env = self._cursor()
            try:
                try:
                    self._instance(env)._job_probe()
                except chaos.WorkerKilled:
                    self.fm.wait_idle()
                    cr.rollback()
                    self._clear_caches()
                    continue
                self.fm.wait_idle()
                cr.commit()
            finally:
                cr.close()
            if self._state()[0]:
                self.probes_failed += 1

    def _push_pending(self, summary):
        """Mapping rows in state ``error``: made due now (as time passing
        would) and the job runs again."""
        fields = self.odoo.fields

        def due(env):
            rows = env["moodle.mapping"].search(
                [("instance_id", "=", self.instance_id), ("state", "=", "error")]
            )
            rows.write(
                {
                    "next_retry_date": fields.Datetime.now()
                    - datetime.timedelta(seconds=1)
                }
            )
            return len(rows)

        return self._in_cursor(due) > 0

    def _pull_pending(self, summary):
        failed = sum(int(n) for n in _FAILED.findall(summary or ""))
        failed += sum(int(n) for n in _COMPLETION_ERRORS.findall(summary or ""))
        return failed > 0 or self._push_pending(summary)

    def _run_job(self, name, job, pending):
        stats = chaos.JobStats(name)
        started = self.clock.elapsed
        while stats.runs < self.max_runs:
            stats.runs += 1
            if stats.runs % 200 == 0:
                _log(f"{name}: {stats.runs} runs so far")
            outcome, summary = self._attempt(job, stats)
            until, health, message = self._state()
            if until:
                # a killed run may have noted Moodle's failure first: the
                # backoff is committed in a transaction of its own
                if outcome != "killed":
                    stats.failed += 1
                    stats.errors[_error_kind(message)] += 1
                self._back_off()
                continue
            if outcome == "killed":
                continue
            if health == "access":
                stats.failed += 1
                stats.errors["access (paused)"] += 1
                self._in_cursor(
                    lambda env: self._instance(env).write({"health_state": "ok"})
                )
                continue
            self._drain_parts(stats)
            if not pending(summary):
                stats.converged = True
                break
            stats.retry_rounds += 1
            self.clock.advance(chaos.NEXT_RUN)
        stats.simulated = self.clock.elapsed - started
        _log(
            f"{name}: {stats.runs} runs ({stats.failed} failed, "
            f"{stats.killed + stats.killed_at_commit} killed)"
            + ("" if stats.converged else ": NOT CONVERGED")
        )
        self.jobs.append(stats)

    # --- the parts of a parallel push
    def _next_part(self, env):
        env.cr.execute(
            "SELECT uuid FROM queue_job WHERE identity_key LIKE %s "
            "AND state = 'pending' ORDER BY id LIMIT 1",
            [f"moodle:{self.instance_id}:push_part:%"],
        )
        row = env.cr.fetchone()
        return row and row[0]

    @staticmethod
    def _perform(inst, uuid):
        """One queued part, as queue_job's runner runs it; in the attempt's
        cursor (committed, or rolled back when the worker is killed)."""
        from odoo.addons.queue_job.exception import RetryableJobError
        from odoo.addons.queue_job.job import Job

        env = inst.env
        job = Job.load(env, uuid)
        job.set_started()
        job.store()
        try:
            result = job.perform()
        except RetryableJobError as err:
            job.postpone(result=str(err))
            job.set_pending(reset_retry=False)
            job.store()
            return f"postponed: {err}"
        job.set_done()
        job.store()
        env.flush_all()
        job.enqueue_waiting()
        return result

    def _drain_parts(self, stats):
        """Run the parts a parallel push left queued, one at a time, each
        until its job is done, with the faults of any other job."""
        while True:
            uuid = self._in_cursor(self._next_part, commit=False)
            if not uuid:
                return
            stats.runs += 1
            outcome, _summary = self._attempt(
                lambda inst, uuid=uuid: self._perform(inst, uuid), stats
            )
            until, health, message = self._state()
            if until:
                if outcome != "killed":
                    stats.failed += 1
                    stats.errors[_error_kind(message)] += 1
                self._back_off()
            elif health == "access":
                stats.failed += 1
                stats.errors["access (paused)"] += 1
                self._in_cursor(
                    lambda env: self._instance(env).write({"health_state": "ok"})
                )

    # --- the script
    def execute(self):
        from odoo.addons.openeducat_moodle.moodle import client as client_module

        from bench.odoo_worker import _apply_change, _served

        started = time.perf_counter()
        fm = self.fm = chaos.ChaosMoodle(token=chaos.SIM_TOKEN)
        fm.clock = self.clock
        server = chaos._serve(fm)
        _patch_client(client_module.MoodleClient, fm, self.calls)
        try:

            def point(env):
                inst = env["moodle.instance"].search(
                    [("name", "=", "Benchmark")], order="id desc", limit=1
                )
                inst.write({"base_url": fm.base_url, "token": chaos.SIM_TOKEN})
                env["ir.config_parameter"].sudo().set_param(
                    "openeducat_moodle.push_parts", str(self.workers)
                )
                return inst.id

            self.instance_id = self._in_cursor(point)
            fm.chaos(self.rate, self.seed)

            def push(inst):
                return inst._job_push()

            def pull(inst):
                return inst._job_pull_grades()

            self._run_job("initial full push", push, self._push_pending)
            self._run_job("no-change full push", push, self._push_pending)

            def change(env):
                from odoo.addons.openeducat_moodle.services.push import OdooReader

                inst = self._instance(env)
                snap = _served(
                    OdooReader(env).snapshot()[0], set(inst.department_ids.ids)
                )
                changed_snap, changed = generate.change_one_percent(snap)
                _apply_change(env, changed_snap, changed)

            self._in_cursor(change)
            self._run_job("1%-changed push", push, self._push_pending)
            chaos.seed_learning(fm, self.preset.grade_items)
            self._run_job("grade and completion pull", pull, self._pull_pending)
            fm.chaos(0.0, self.seed)
            fm.take_kill()
            final_plan = self._in_cursor(self._final_plan, commit=False)
            state = {
                **chaos.moodle_state(fm),
                **self._in_cursor(self._oec_state, commit=False),
            }
        finally:
            server.shutdown()
            server.server_close()
        return {
            "jobs": [
                {**dataclasses.asdict(j), "errors": dict(j.errors)} for j in self.jobs
            ],
            "faults": dict(fm.fault_counts),
            "calls": self.calls[0],
            "probes": self.probes,
            "probes_failed": self.probes_failed,
            "wall": time.perf_counter() - started,
            "simulated": self.clock.elapsed,
            "final_plan": final_plan,
            "state": _jsonable(state),
        }

    def _final_plan(self, env):
        from odoo.addons.openeducat_moodle.services.push import SyncPush

        inst = self._instance(env)
        result = SyncPush(inst, inst._get_client(), dry_run=True).run()
        names = ("created", "updated", "unenrolled", "failed", "blocked", "waiting")
        return {f: result.total(f) for f in names if result.total(f)}

    def _oec_state(self, env):
        """OpenEduCat's side: the mapping rows of Moodle objects (their
        Moodle object named by its idnumber), the completion rows, exams and
        their marks."""
        fm = self.fm
        idnumber = {}
        for table in ("categories", "courses", "users", "groups"):
            for obj in getattr(fm, table).values():
                idnumber[table, obj["id"]] = obj["idnumber"]
        tables = {
            "category": "categories",
            "course": "courses",
            "user": "users",
            "group": "groups",
        }
        state = chaos.collections.defaultdict(
            lambda: chaos.collections.defaultdict(list)
        )
        rows = env["moodle.mapping"].search_read(
            [("instance_id", "=", self.instance_id)],
            ["moodle_model", "external_key", "moodle_id", "state", "extra_data"],
        )
        for m in rows:
            kind = m["moodle_model"]
            extra = m["extra_data"] or {}
            if kind == "completion":
                state["completion"][m["external_key"]].append(
                    (extra.get("completion"), extra.get("completed_at"))
                )
                continue
            if kind not in tables and kind != "enrolment":
                continue
            target = idnumber.get((tables.get(kind), m["moodle_id"]))
            state["mapping rows"][f"{kind}:{m['external_key']}"].append(
                (m["state"], target)
            )
        for line in env["op.exam.attendees"].search([]):
            exam = line.exam_id
            key = f"{exam.session_id.exam_code}/{exam.subject_id.code}/{exam.name}"
            state["exam marks"][f"{key}@{line.student_id.id}"].append(line.marks)
        for exam in env["op.exam"].search([]):
            key = f"{exam.session_id.exam_code}/{exam.subject_id.code}/{exam.name}"
            state["exams"][key].append(exam.total_marks)
        return state


def _error_kind(message):
    match = re.search(r"\[([A-Za-z0-9_]+)\]", message or "")
    if match:
        return match[1]
    return (message or "unknown").split(":")[0][:40]


def _jsonable(state):
    return {
        kind: {
            str(key): [list(v) if isinstance(v, tuple) else v for v in values]
            for key, values in objects.items()
        }
        for kind, objects in state.items()
    }


def _log(text):
    import sys

    print(f"  [odoo chaos] {text}", file=sys.stderr, flush=True)


def step_chaos(args, odoo):
    """``odoo_worker.py chaos``: run the script, write the JSON to ``--out``."""
    result = OdooRun(odoo, args).execute()
    pathlib.Path(args.out).write_text(json.dumps(result, default=str))
