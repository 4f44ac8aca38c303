"""Fetch learning results from Moodle, course by course."""

import collections
import dataclasses

from ..moodle import MoodleRecordError
from .grades import assignment_rows, gradebook_rows, quiz_row


@dataclasses.dataclass
class CourseGrades:
    """What one Moodle course gave: its grade rows, or the error that stopped it."""

    courseid: int
    rows: list = dataclasses.field(default_factory=list)
    error: MoodleRecordError | None = None


class GradeFetcher:
    """Reads grades for many courses with as few calls as Moodle allows.

    Gradebook: one call per course (every student at once). Assignments and
    quizzes are listed once per :attr:`LIST_CHUNK` courses (a request bounded
    by our own courses, whatever the site's size); assignment grades take one
    call per course; a quiz's best grade takes one call per student (Moodle
    has no bulk form of it).

    :attr:`current` is the course the call being made is for (the first of
    its chunk for the lists), ``None`` before any: when Moodle fails, the
    course it failed at.

    :param client: a :class:`~openeducat_moodle.moodle.MoodleClient`
    """

    LIST_CHUNK = 100

    def __init__(self, client, gradebook=True, assignments=True, quizzes=True):
        self.client = client
        self.gradebook = gradebook
        self.assignments = assignments
        self.quizzes = quizzes
        self.current = None

    def _by_course(self, items, key):
        grouped = collections.defaultdict(list)
        for item in items:
            grouped[item[key]].append(item)
        return grouped

    def fetch(self, courseids, students=None):
        """Yield a :class:`CourseGrades` per course.

        :param list courseids: Moodle course ids
        :param dict students: ``{courseid: [userids]}``, needed for quizzes
        :raise MoodleTransientError, MoodleAccessError: Moodle failed as a whole
        """
        courseids = list(courseids)
        skip = set()
        if self.assignments:
            skip.add("assign")
        if self.quizzes:
            skip.add("quiz")
        for start in range(0, len(courseids), self.LIST_CHUNK):
            chunk = courseids[start : start + self.LIST_CHUNK]
            self.current = chunk[0]
            assigns, quizzes = {}, {}
            if self.assignments:
                assigns = {
                    c["id"]: c.get("assignments") or []
                    for c in self.client.get_assignments(chunk)
                }
            if self.quizzes:
                quizzes = self._by_course(self.client.get_quizzes(chunk), "course")
            yield from self._courses(chunk, students, skip, assigns, quizzes)

    def _courses(self, courseids, students, skip, assigns, quizzes):
        for courseid in courseids:
            self.current = courseid
            result = CourseGrades(courseid)
            try:
                if self.gradebook:
                    result.rows += gradebook_rows(
                        self.client.get_grade_items(courseid), skip
                    )
                result.rows += self._assignments(courseid, assigns.get(courseid, []))
                for quiz in quizzes.get(courseid, []):
                    for userid in (students or {}).get(courseid, []):
                        best = self.client.get_quiz_best_grade(quiz["id"], userid)
                        row = quiz_row(courseid, quiz, userid, best)
                        if row:
                            result.rows.append(row)
            except MoodleRecordError as err:
                result.rows, result.error = [], err
            yield result

    def _assignments(self, courseid, assignments):
        if not assignments:
            return []
        by_id = {a["id"]: a for a in assignments}
        rows = []
        for entry in self.client.get_assignment_grades(list(by_id)):
            assignment = by_id.get(entry["assignmentid"])
            if assignment:
                rows += assignment_rows(courseid, assignment, entry.get("grades") or [])
        return rows
