"""The sync services' jobs (see ``services/sync_services.py``).

SyncSubjects and SyncEnrollment have a job each, ``_job_sync_subjects`` and
``_job_sync_enrollment``, enqueued by the save hooks of the OpenEduCat models
(the service the product names: a subject renamed → SyncSubjects, an
enrolment's subjects changed → SyncEnrollment), by the Sync Wizard and after a
failure of their own. SyncRetries has ``_job_sync_retries``. The other five
services keep the jobs they had (grade and completion pulls, attendance,
health and drift checks).

Every push job, ``_job_push`` included, runs through
:meth:`_moodle_push_job`: the push lock (one push, drift check or import of an
instance at a time; a second one waits without burning a retry), the
instance's backoff and the run log (kind "push", the service's name first in
the message).
"""

import hashlib
import json
import logging

from odoo import _, api, models

from ..const import CHANNEL, PROBE_LEAD
from ..moodle import MoodleError, MoodleTransientError
from ..services.push import SyncPush
from ..services.sync_services import (
    PUSH_SERVICES,
    SERVICES,
    SyncRetries,
    push_counts,
    push_summary,
    retry_scope,
)
from ..sync.push import PHASES
from .moodle_mapping import PHASE_OF

_logger = logging.getLogger(__name__)


def _phases_of(model):
    return {
        phase for (_kind, res_model), phase in PHASE_OF.items() if res_model == model
    }


class MoodleInstance(models.Model):
    _inherit = "moodle.instance"

    # === ENQUEUE === #

    @api.model
    def _moodle_enqueue_services(self, services, records):
        """Enqueue ``services`` about ``records`` on every active instance.

        Called by the save hooks of OpenEduCat models; never calls Moodle in
        the user's transaction, and does nothing under ``connector_no_export``
        (set by every pull, so that what Moodle sent is not pushed back).

        :param list services: names of :data:`~..services.sync_services.SERVICES`
        :param records: the records saved (their ids are the jobs' seeds)
        """
        if self.env.context.get("connector_no_export") or not records:
            return
        seeds = {records._name: sorted(records.ids)}
        for instance in self.sudo().search([("active", "=", True)]):
            instance._enqueue_services(services, seeds)

    def _enqueue_services(self, services, seeds=None, department_ids=None, eta=None):
        """Enqueue the jobs of ``services`` for this instance.

        SyncEnrollment needs the courses SyncSubjects makes: when both are
        asked, it is enqueued to run once SyncSubjects is done. A job
        waiting with the same identity key is not enqueued twice. Nothing is
        enqueued on a paused instance but its health check (which resumes
        it).

        :param list services: names of :data:`~..services.sync_services.SERVICES`
        :param dict seeds: ``{model: ids}`` the push services are about
            (``None``: everything); the other services ignore them
        :param department_ids: narrow the departments (push services only)
        """
        self.ensure_one()
        chain = [
            self._moodle_service_delayable(name, seeds, department_ids, eta)
            for name in PUSH_SERVICES
            if name in services
        ]
        chain = [delayable for delayable in chain if delayable]
        if len(chain) > 1:
            chain[0].on_done(chain[1])
        if chain:
            chain[0].delay()
        for name in services:
            if name in PUSH_SERVICES:
                continue
            if name == "grades":
                self._enqueue_pull(eta)
            elif name == "completion":
                self._enqueue_completion()
            elif name == "attendance":
                self._enqueue_attendance(eta)
            elif name == "health":
                # Not through _moodle_delay: it also runs on a paused instance.
                self.with_delay(
                    channel=CHANNEL,
                    identity_key=f"moodle:{self.id}:health",
                    description=_("Moodle health check of %s", self.name),
                )._job_health_check()
            elif name == "drift":
                delayed = self._moodle_delay(
                    "drift", _("Moodle drift check of %s", self.name), eta
                )
                if delayed:
                    delayed._job_drift_check()
            elif name == "retries":
                delayed = self._moodle_delay(
                    "sync_retries",
                    _("Moodle retries (SyncRetries) on %s", self.name),
                    eta,
                )
                if delayed:
                    delayed._job_sync_retries()
            else:
                raise ValueError(f"unknown Moodle sync service {name!r}")

    def _moodle_service_delayable(self, name, seeds, department_ids=None, eta=None):
        """The job of a push service, ready to delay (``None`` when paused).

        Identity key ``moodle:<instance>:sync_<service>:<digest of the
        seeds and departments>``.
        """
        if self.health_state == "access":
            _logger.info("moodle instance %s is paused; %s not enqueued", self.id, name)
            return None
        service = SERVICES[name]
        digest = hashlib.sha256(
            json.dumps([seeds, department_ids], sort_keys=True).encode()
        ).hexdigest()[:16]
        what = (
            ", ".join(f"{model} ×{len(ids)}" for model, ids in sorted(seeds.items()))
            if seeds
            else _("everything")
        )
        delayable = self.delayable(
            channel=CHANNEL,
            eta=self._moodle_eta(eta),
            identity_key=f"moodle:{self.id}:sync_{name}:{digest}",
            description=_(
                "Moodle %(service)s to %(name)s: %(what)s",
                service=service.title,
                name=self.name,
                what=what,
            ),
        )
        job = getattr(delayable, service.job)
        if department_ids:
            return job(seeds, department_ids=department_ids)
        return job(seeds)

    # === JOBS === #

    def _job_sync_subjects(self, seeds=None, department_ids=None):
        """Job: SyncSubjects, the departments, programs and subject courses.

        :param dict seeds: ``{model: ids}`` saved (the structure is planned
            whole, so whatever changed in it goes; ``None``: everything)
        :param list department_ids: narrow the departments served
        :return: a one-line summary, kept on the job
        """
        return self._moodle_service_job("subjects", seeds, department_ids)

    def _job_sync_enrollment(self, seeds=None, department_ids=None):
        """Job: SyncEnrollment, the people, batch groups, enrolments and
        unenrolments.

        :param dict seeds: ``{model: ids}`` the run is about: those people
            and enrolments and what they bring (``None``: everyone)
        :param list department_ids: narrow the departments served
        :return: a one-line summary, kept on the job
        """
        return self._moodle_service_job("enrollment", seeds, department_ids)

    def _moodle_service_job(self, name, seeds, department_ids):
        service = PUSH_SERVICES[name]

        def requeue(eta):
            self._enqueue_services([name], seeds, department_ids, eta=eta)

        return self._moodle_push_job(
            service.driver,
            seeds=seeds,
            department_ids=department_ids,
            # A run that saw every enrolment may replace or release the held
            # unenrolments.
            full=not seeds and "enrolments" in service.phases,
            requeue=requeue,
            label=service.title,
        )

    def _job_sync_retries(self):
        """Job: SyncRetries, the failed records whose next attempt is due.

        :return: a one-line summary, kept on the job
        """
        self.ensure_one()
        if not self.active:
            return "instance archived: nothing pushed"
        phases, seeds = retry_scope(SyncRetries.due(self))
        if not phases:
            return "SyncRetries: nothing to retry"
        return self._moodle_push_job(
            SyncPush,
            phases,
            seeds,
            requeue=lambda eta: self._enqueue_services(["retries"], eta=eta),
            label=SyncRetries.title,
        )

    def _moodle_push_job(
        self,
        service=SyncPush,
        phases=None,
        seeds=None,
        department_ids=None,
        full=False,
        requeue=None,
        label=None,
    ):
        """Run one push of this instance: the body of ``_job_push`` and of the
        jobs of the push services.

        One push per instance at a time (see ``_run``): a second one waits,
        without burning its retries, so two jobs never both create the same
        Moodle object.

        :param service: ``service(instance, client)`` → the engine driver (a
            :class:`~..services.push.SyncPush`)
        :param list phases: the phases to run (``None``: all the driver runs
            and the instance enables)
        :param dict seeds: ``{model: ids}`` the push is about (``None``: all)
        :param list department_ids: narrow the departments served
        :param bool full: the run sees every enrolment: it may replace or
            release the held unenrolments
        :param requeue: ``requeue(eta)`` enqueues the same work again after
            Moodle failed part way (default: ``_enqueue_push``)
        :param str label: the service's name, first in the run log's message
        :return: a one-line summary, kept on the job
        """
        self.ensure_one()
        if not self.active:
            return "instance archived: nothing pushed"

        def work(client):
            driver = service(self, client)
            try:
                result = driver.run(phases, seeds, department_ids=department_ids)
            except MoodleError as err:
                # What the phases before the failure did is kept: say so.
                engine = getattr(driver, "engine", None)
                if engine is not None:
                    err.partial_counts = push_counts(engine.result)
                raise
            summary = push_summary(result)
            if seeds:
                asked = set(getattr(driver, "service_phases", PHASES))
                asked &= set(phases or PHASES)
                # Only the records this run pushed can have left its scope.
                retire = {
                    model: ids
                    for model, ids in seeds.items()
                    if _phases_of(model) & asked
                }
                if retire:
                    self._moodle_retire_out_of_scope(retire)
            self._moodle_note_unenrolments(result.held_unenrolments, full=full)
            if label:
                summary = f"{label}: {summary or _('nothing to push')}"
            return summary, push_counts(result)

        summary, error = self._run("push", work)
        if isinstance(error, MoodleTransientError):
            # What succeeded is stored with this job's commit; the rest is
            # tried again in a new job once the backoff is over (this job's
            # snapshot may predate the backoff: its end comes with the error).
            until = getattr(error, "backoff_until", None)
            eta = until and until + PROBE_LEAD
            if requeue is None:
                self._enqueue_push(
                    phases, seeds, eta=eta, department_ids=department_ids
                )
            else:
                requeue(eta)
        return summary
