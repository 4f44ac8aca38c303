"""Reads that cost what changed in Moodle, not what Moodle holds.

Course completion and attendance are read again and again (completion after
every grade pull). Two ways to read only what can have changed since the last
successful run:

* **with the companion plugin** ``local_openeducat`` (seen in the token's
  functions): its paged reads list the rows changed at or after a time, many
  courses per call. The time is the plugin's own clock: the ``timenow`` of the
  first page of the previous successful run, kept as a :class:`Watermark`.
  Once a day the read is whole (``since`` 0): rows the plugin cannot see change
  (a student mapped later, a course restored) come back then.
* **without it**, with Moodle's own functions: completion is asked only for
  the students not complete yet, in courses with criteria, who went into the
  course since the last run (Moodle's last course access, one call per
  course), and for everyone not complete once a day (a date criterion, a
  teacher's mark: completions no student activity shows). Attendance has no
  "since" in Moodle's API: every session is read (one call per activity), and
  the sessions that did not change are left alone (see
  :mod:`.attendance`).

A watermark is only moved on by a run that finished; a run that fails part way
leaves it, and the next run reads the same changes again (every row is a
whole state: reading it twice is harmless). A course Moodle would not let the
run read (a warning) is read again from its own earlier time by the next runs
until it is read (:attr:`Watermark.retry`).
"""

import dataclasses

from ..moodle import MoodleAccessError, MoodleRecordError, MoodleTransientError
from ..moodle.catalogue import PLUGIN_COMPLETIONS

DAY = 86400
# Without the plugin, "since the last run" is the connector's clock against
# Moodle's last-access times: this much earlier, for clocks that differ.
CLOCK_MARGIN = 600
COMPLETE, INCOMPLETE, NO_CRITERIA = "complete", "incomplete", "no_criteria"


@dataclasses.dataclass
class Watermark:
    """Where the last successful read of one kind stopped.

    :ivar int since: the plugin: the ``timenow`` of its first page (Moodle's
        clock); without it: the start of the run less :data:`CLOCK_MARGIN`
        (the connector's clock); 0: never
    :ivar int full_at: when the last whole read (the daily sweep) ran, unix
        time on the connector's clock; 0: never
    :ivar bool plugin: ``since`` is the plugin's
    :ivar dict retry: ``{course id: since}``: courses the run could not read
        (a warning, a course OpenEduCat refused), read again from that time
    :ivar int sweep_from: when an unfinished whole read (without the plugin)
        began: the next run goes on with the students not asked since then
        instead of starting again (0: none under way)
    """

    since: int = 0
    full_at: int = 0
    plugin: bool = False
    retry: dict = dataclasses.field(default_factory=dict)
    sweep_from: int = 0

    @classmethod
    def load(cls, data):
        """From what :meth:`dump` stored (anything else: never read)."""
        if not isinstance(data, dict):
            return cls()
        try:
            return cls(
                since=int(data.get("since") or 0),
                full_at=int(data.get("full_at") or 0),
                plugin=bool(data.get("plugin")),
                retry={int(k): int(v) for k, v in (data.get("retry") or {}).items()},
                sweep_from=int(data.get("sweep_from") or 0),
            )
        except (TypeError, ValueError, AttributeError):
            return cls()

    def dump(self):
        """A JSON-ready dict."""
        return {
            "since": self.since,
            "full_at": self.full_at,
            "plugin": self.plugin,
            "retry": {str(k): v for k, v in sorted(self.retry.items())},
            "sweep_from": self.sweep_from,
        }

    def full_due(self, now, plugin):
        """Whether this run reads everything: once a day, the first time,
        and when the way of reading changed (the plugin installed or gone:
        ``since`` is another clock's)."""
        return (
            not self.full_at
            or now - self.full_at >= DAY
            or self.plugin != plugin
            or (plugin and not self.since)
        )

    def groups(self, courseids, full):
        """``[(since, course ids)]``: one read per group.

        A whole read is one group from 0; otherwise the courses from
        :attr:`since`, and those to read again from their earliest time.
        """
        courseids = sorted(set(courseids))
        if full:
            return [(0, courseids)] if courseids else []
        retry = {c: s for c, s in self.retry.items() if c in courseids}
        main = [c for c in courseids if c not in retry]
        groups = [(self.since, main)] if main else []
        if retry:
            groups.append((min(retry.values()), sorted(retry)))
        return groups

    def following(self, timenow, now, full, plugin, failed):
        """The watermark after a finished run.

        :param timenow: the plugin's first ``timenow`` of the run (``None``:
            not read with the plugin, or nothing asked)
        :param now: the run's start, connector's clock
        :param failed: ``{course id: since}`` the run could not read
        """
        if plugin:
            since = timenow if timenow is not None else self.since
        else:
            since = now - CLOCK_MARGIN
        retry = {} if full else dict(self.retry)
        for courseid in list(retry):
            if courseid not in failed:
                del retry[courseid]
        for courseid, when in failed.items():
            retry[courseid] = min(when, retry.get(courseid, when))
        return Watermark(
            since=since,
            full_at=now if full else self.full_at,
            plugin=plugin,
            retry=retry,
        )


# ---------------------------------------------------------------- completion


@dataclasses.dataclass
class Student:
    """One student enrolment to read completion for.

    :ivar str key: the enrolment's mapping key (``user@course``)
    :ivar int res_id: the ``op.student.course``
    :ivar int userid: the Moodle user
    :ivar dict stored: the completion recorded last time (``{}``: never)
    :ivar int checked: when it was recorded (unix time; 0: never)
    """

    key: str
    res_id: int
    userid: int
    stored: dict = dataclasses.field(default_factory=dict)
    checked: int = 0


def core_status(data):
    """The status of ``core_completion_get_course_completion_status``'s
    answer (``None``: the course has no criteria)."""
    if data is None:
        return {"completion": NO_CRITERIA}
    return {
        "completion": COMPLETE if data.get("completed") else INCOMPLETE,
        "completed_at": max(
            (c.get("timecompleted") or 0 for c in data.get("completions") or []),
            default=0,
        )
        or None,
    }


def plugin_status(row):
    """The status of one row of ``local_openeducat_get_course_completions``."""
    if not row.get("hascriteria"):
        return {"completion": NO_CRITERIA}
    return {
        "completion": COMPLETE if row.get("completed") else INCOMPLETE,
        "completed_at": row.get("timecompleted") or None,
    }


def _same(stored, status):
    return stored.get("completion") == status["completion"] and (
        stored.get("completed_at") or None
    ) == (status.get("completed_at") or None)


class CompletionReader:
    """One completion run: asks Moodle what can have changed, hands each
    answer to ``store`` (which keeps it at once), and says where the next run
    starts.

    :param client: a :class:`~openeducat_moodle.moodle.MoodleClient` whose
        ``capabilities()`` has run (the plugin is seen in its functions)
    :param Watermark mark: the previous successful run's
    :param int now: the run's start (unix time, connector's clock)
    :param store: ``store(answers)``, answers ``[(key, res_id, status)]``;
        called per course (and every :attr:`COMMIT_EVERY` answers) without
        the plugin, per page with it
    :param collections.Counter counts: statuses counted here
    :param list errors: the run log's problem lines
    """

    COMMIT_EVERY = 500

    def __init__(self, client, mark, now, store, counts, errors):
        self.client = client
        self.mark = mark
        self.now = int(now)
        self.store = store
        self.counts = counts
        self.errors = errors
        self.plugin = client.has_function(PLUGIN_COMPLETIONS)
        self.full = mark.full_due(self.now, self.plugin)
        # A whole read that failed part way goes on where it stopped: the
        # students answered since it began are not asked again.
        self.sweep_from = (mark.sweep_from or self.now) if self.full else 0

    def run(self, courses):
        """Read completion of ``courses``: ``[(Moodle course id, [Student])]``,
        in the order to ask.

        :return: the next run's :class:`Watermark`
        :raise MoodleTransientError, MoodleAccessError: Moodle failed as a
            whole (what was read before is stored)
        """
        if self.plugin:
            timenow, failed = self._run_plugin(courses)
        else:
            timenow, failed = None, self._run_core(courses)
        return self.mark.following(timenow, self.now, self.full, self.plugin, failed)

    # --- without the plugin -------------------------------------------------

    def _run_core(self, courses):
        failed = {}
        for courseid, students in courses:
            todo = [s for s in students if s.stored.get("completion") != COMPLETE]
            # Moodle keeps a completion once reached: no need to ask again.
            self.counts[COMPLETE] += len(students) - len(todo)
            if todo and not self.full:
                todo = self._can_have_changed(courseid, todo)
            elif todo:
                for done in (s for s in todo if s.checked >= self.sweep_from):
                    self.counts[done.stored.get("completion") or INCOMPLETE] += 1
                todo = [s for s in todo if s.checked < self.sweep_from]
            if todo:
                self._ask(courseid, todo)
        return failed

    def _can_have_changed(self, courseid, students):
        """Between two daily sweeps: the students never asked, and, in a
        course with criteria, those who went into the course since the last
        run (one call for the course)."""
        known = [s for s in students if s.stored]
        new = [s for s in students if not s.stored]
        if not known:
            return new
        if all(s.stored.get("completion") == NO_CRITERIA for s in known):
            # No criteria when last asked (the sweep asks again): a student
            # enrolled since is recorded so, without asking.
            status = {"completion": NO_CRITERIA}
            self.counts[NO_CRITERIA] += len(new)
            self.store([(s.key, s.res_id, status) for s in new])
            return []
        try:
            access = self.client.get_course_last_access(courseid)
        except MoodleRecordError as err:
            self.errors.append(f"course {courseid}: last access not read ({err})")
            return students
        since = self.mark.since
        active = [
            s
            for s in known
            if s.userid in access
            and (access[s.userid] is None or access[s.userid] >= since)
        ]
        return new + active

    def _ask(self, courseid, students):
        """One status call per student (Moodle has no bulk form); a course
        without criteria is known from the first answer."""
        no_criteria = False
        answers = []
        for student in students:
            if no_criteria:
                status = {"completion": NO_CRITERIA}
            else:
                try:
                    data = self.client.get_course_completion_status(
                        courseid, student.userid
                    )
                except MoodleRecordError as err:
                    self.counts["error"] += 1
                    self.errors.append(f"{student.key}: {err}")
                    continue
                except (MoodleTransientError, MoodleAccessError):
                    # Moodle failed as a whole: keep what this course gave.
                    self.store(answers)
                    raise
                status = core_status(data)
                no_criteria = data is None
            self.counts[status["completion"]] += 1
            answers.append((student.key, student.res_id, status))
            if len(answers) >= self.COMMIT_EVERY:
                self.store(answers)
                answers = []
        self.store(answers)

    # --- with the plugin ----------------------------------------------------

    def _run_plugin(self, courses):
        """Every course in a few calls: the rows changed since the watermark
        (everything once a day), stored page by page; only the rows that
        differ from what is recorded are written."""
        students = {
            courseid: {s.userid: s for s in course_students}
            for courseid, course_students in courses
        }
        timenow, failed = None, {}
        for since, courseids in self.mark.groups(students, self.full):
            try:
                timenow = self._read_pages(students, courseids, since, timenow, failed)
            except MoodleRecordError as err:
                # The plugin refused the read: these courses wait for the
                # next run, from the same time.
                failed.update(dict.fromkeys(courseids, since))
                self.counts["error"] += 1
                self.errors.append(f"{PLUGIN_COMPLETIONS}: {err}")
        return timenow, failed

    def _read_pages(self, students, courseids, since, timenow, failed):
        """One group's pages, each stored as it comes; returns the first
        page's ``timenow``."""
        for answer in self.client.course_completion_pages(courseids, since):
            if timenow is None:
                timenow = int(answer.get("timenow") or 0) or None
            for warning in answer.get("warnings") or []:
                courseid = int(warning.get("itemid") or 0)
                if courseid in failed:
                    continue  # said again by every page
                if warning.get("item") == "course" and courseid in students:
                    failed[courseid] = since
                    self.counts["error"] += 1
                    self.errors.append(
                        f"course {courseid}: {warning.get('message')} "
                        f"({warning.get('warningcode')})"
                    )
            self.store(self._page_answers(answer, students))
        return timenow

    def _page_answers(self, answer, students):
        answers = []
        for row in answer.get("completions") or []:
            course = students.get(int(row["courseid"])) or {}
            status = plugin_status(row)
            if status["completion"] == NO_CRITERIA:
                targets = list(course.values())
            else:
                student = course.get(int(row["userid"]))
                targets = [student] if student else []
            for student in targets:
                self.counts[status["completion"]] += 1
                if not _same(student.stored, status):
                    answers.append((student.key, student.res_id, status))
                    student.stored = status
        return answers
