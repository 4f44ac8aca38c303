"""Run the queued parts of a parallel push as queue_job's runner does, with
``workers`` jobs at once (``--workers``); runs under Odoo's own Python.

Each job runs in its own thread, cursor and transaction, as in an Odoo
worker: started and committed, performed, done and committed, then the jobs
that waited for it released (queue_job's own dependency query) and
committed. A job that asks to be retried later (``RetryableJobError``) is
rolled back and postponed, as the runner does. Jobs start in queue_job's
order (priority, eta, creation) when a worker is free and their eta is past.
"""

import threading
import time


def run_parts(odoo, db, instance_id, workers, log=None):
    """Run every queued part of ``instance_id``'s parallel push.

    :return: ``{"jobs": n, "postponed": n, "order": [(part, start, end)]}``,
        times in seconds from the start
    """
    from odoo import SUPERUSER_ID, api

    from odoo.addons.queue_job.exception import RetryableJobError
    from odoo.addons.queue_job.job import Job

    registry = odoo.modules.registry.Registry(db)
    pattern = f"moodle:{instance_id}:push_part:%"
    started = time.perf_counter()
    done = threading.Condition()
    running, order, errors = {}, [], []
    postponed = [0]

    def query(sql):
        with registry.cursor() as cr:
            cr.execute(sql, [pattern])
            return cr.fetchall()

    def runnable():
        return [
            row[0]
            for row in query(
                "SELECT uuid FROM queue_job WHERE identity_key LIKE %s "
                "AND state = 'pending' AND (eta IS NULL OR "
                "eta <= now() at time zone 'utc') "
                "ORDER BY priority, eta NULLS FIRST, date_created, id"
            )
        ]

    def left():
        return query(
            "SELECT count(*) FROM queue_job WHERE identity_key LIKE %s "
            "AND state IN ('pending', 'wait_dependencies', 'enqueued', 'started')"
        )[0][0]

    def perform(uuid):
        begin = time.perf_counter() - started
        try:
            with registry.cursor() as cr:
                env = api.Environment(cr, SUPERUSER_ID, {})
                job = Job.load(env, uuid)
                part = job.args[1] if len(job.args) > 1 else uuid
                job.set_started()
                job.store()
                env.flush_all()
                cr.commit()
                try:
                    job.perform()
                except RetryableJobError as err:
                    cr.rollback()
                    env.invalidate_all()
                    job = Job.load(env, uuid)
                    job.postpone(result=str(err), seconds=err.seconds)
                    job.set_pending(reset_retry=False)
                    job.store()
                    env.flush_all()
                    cr.commit()
                    postponed[0] += 1
                    return
                env.flush_all()
                job.set_done()
                job.store()
                env.flush_all()
                cr.commit()
                job.enqueue_waiting()
                cr.commit()
                order.append((part, begin, time.perf_counter() - started))
                if log:
                    log(
                        f"  part {part}: {order[-1][2] - begin:.1f} s "
                        f"(at {begin:.1f} s)"
                    )
        except Exception as err:  # noqa: BLE001 - reported, the run stops
            errors.append(f"{uuid}: {err!r}")
        finally:
            with done:
                running.pop(uuid, None)
                done.notify_all()

    while True:
        with done:
            free = workers - len(running)
        if free > 0:
            for uuid in [u for u in runnable() if u not in running][:free]:
                thread = threading.Thread(target=perform, args=(uuid,))
                with done:
                    running[uuid] = thread
                thread.start()
        with done:
            idle = not running
        if idle and not runnable():
            if errors or not left():
                break
            time.sleep(1)  # a postponed job waits for its eta
            continue
        with done:
            done.wait(1)
    if errors:
        raise RuntimeError("parts failed: " + "; ".join(errors))
    return {"jobs": len(order), "postponed": postponed[0], "order": order}
