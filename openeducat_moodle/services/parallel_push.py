"""The engine drivers of a parallel full push (see ``sync/parallel.py``).

:class:`ParallelPush` is the first job's: it reads OpenEduCat, pushes the
structure, and then either pushes the rest itself (little left to create: one
job, as a plain full push) or leaves the parts for the jobs to come
(``parts``). :class:`PushPart` is each part's: the same reading and planning,
acting on its part's records only.
"""

import collections

from ..sync.parallel import STRUCTURE_PHASES, split, to_create
from ..sync.push import PushResult, PushSync
from .push import OdooReader, OdooStore, SyncPush


class ParallelPush(SyncPush):
    """A full push that goes on in parts when much is left to create.

    :param instance: a ``moodle.instance``
    :param client: its client
    :param int count: the most parts per stage (the channel's capacity)
    :param int threshold: the fewest records to create that make parts worth
        their cost (each part reads OpenEduCat and the mapping table again)
    """

    def __init__(self, instance, client, count, threshold):
        super().__init__(instance, client)
        self.count = count
        self.threshold = max(1, threshold)
        self.engine = None
        # The parts (sync.parallel.Part) when the push goes on in parts, and
        # the Moodle ids of the courses this job created.
        self.parts = None
        self.fresh_courses = []

    def run(self, phases=None, seeds=None, engine=PushSync, department_ids=None):
        """Push the structure, then the rest or its parts' plan.

        :return: what this job pushed (:class:`~..sync.push.PushResult`)
        """
        settings = self.settings()
        snapshot, _scope = OdooReader(self.instance.env).snapshot()
        self.engine = core = engine(self.client, OdooStore(self.instance), settings)
        structure = [p for p in settings.phases if p in STRUCTURE_PHASES]
        rest = [p for p in settings.phases if p not in STRUCTURE_PHASES]
        calls_before = collections.Counter(self.client.call_counts)
        # The estimate and the split read the snapshot without a phase.
        core.snapshot, core.scope = snapshot, None
        try:
            if structure:
                core.run(snapshot, phases=structure)
            if not rest:
                return core.result
            if to_create(core, rest, enough=self.threshold) >= self.threshold:
                self.parts = split(core, rest, self.count)
                self.fresh_courses = sorted(core._fresh_courses)
            else:
                core.run(snapshot, phases=rest)
        finally:
            core.result.calls = self.client.call_counts - calls_before
        return core.result


class PushPart(SyncPush):
    """One part of a parallel push.

    :param part: its :class:`~..sync.parallel.Part`
    :param fresh_courses: Moodle ids of the courses the first job created:
        nothing else can have made groups in them yet, so they are not looked
        up (only for a part's first attempt: a rerun may follow a worker
        that made groups and died before storing them)
    """

    def __init__(self, instance, client, part, fresh_courses=()):
        super().__init__(instance, client)
        self.part = part
        self.fresh_courses = set(fresh_courses or ())
        self.engine = None

    def run(self, phases=None, seeds=None, engine=PushSync, department_ids=None):
        """Push the part's records (planned among all of them).

        :return: the part's :class:`~..sync.push.PushResult`
        """
        settings = self.settings()
        phases = [p for p in settings.phases if p in self.part.phases]
        if not phases:
            return PushResult()
        snapshot, _scope = OdooReader(self.instance.env).snapshot()
        self.engine = engine(self.client, OdooStore(self.instance), settings)
        self.engine._fresh_courses.update(self.fresh_courses)
        return self.engine.run(snapshot, phases=phases, part=self.part)
