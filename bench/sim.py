"""The Moodle simulator for the benchmark, in its own process.

``python -m bench.sim --port 0 --token T [--latency S] [--moodle-speed SPEED]``
serves ``tests.fake_moodle`` over loopback HTTP and prints ``READY <base_url>``.

Two things are added to the test simulator, both in this file only:

* Indexes. The test simulator looks enrolments, manual enrolment instances,
  usernames, e-mails, gradebook children, a course's groups and a session's
  attendance records up by scanning every record, which
  is right for tests and quadratic at 100,000 enrolments (hours per push).
  :class:`IndexedFakeMoodle` keeps the same answers with dictionary lookups,
  so that the simulator's time stays per call and the benchmark measures the
  connector, not the simulator's scans.
* A control endpoint, ``POST /bench/<op>`` with a JSON body, that no web
  service client can reach by accident: ``seed_grades`` (grade items and
  grades in every course, like teachers would), ``seed_completion``,
  ``seed_attendance``, ``install_plugin`` (the companion plugin
  local_openeducat), ``stats``, ``reset_calls``.
  Seeding is not a web-service call and is not counted.
"""

import argparse
import collections
import json
import random
import re
import resource
import sys
import threading
import time

from tests.fake_moodle import FakeMoodle
from tests.fake_moodle.server import _Handler, _Server

CONTROL = "/bench/"


class _IndexedDict(dict):
    """A dict of records that keeps ``key(record) → record`` indexes.

    The indexed fields of a record never change after it is stored (an
    enrolment's course and user, an enrolment instance's course).
    """

    def __init__(self, pair_key, group_key):
        super().__init__()
        self.pair_key = pair_key
        self.group_key = group_key
        self.by_pair = {}
        self.by_group = collections.defaultdict(dict)

    def __setitem__(self, key, record):
        old = self.get(key)
        if old is not None:
            self._drop(old)
        super().__setitem__(key, record)
        if self.pair_key:
            self.by_pair[self.pair_key(record)] = record
        self.by_group[self.group_key(record)][key] = record

    def _drop(self, record):
        if self.pair_key:
            self.by_pair.pop(self.pair_key(record), None)
        self.by_group[self.group_key(record)].pop(record["id"], None)

    def pop(self, key, *default):
        if key in self:
            self._drop(self[key])
        return super().pop(key, *default)

    def __delitem__(self, key):
        self.pop(key)

    def clear(self):
        super().clear()
        self.by_pair.clear()
        self.by_group.clear()


# Moodle's own pace, per record, for ``--moodle-speed moodle45``: issue 7's
# figures for a Moodle 4.5 on two cores at its best batch sizes (85 new users,
# 350 enrolments, 400 group memberships a second; its database is the
# bottleneck). The grade pull's reads, measured on the Moodle 4.5.6 of
# BENCHMARKS.md (MariaDB, fastest of 7 calls on the quiet machine, least
# squares over courses of 20 to 500 students and 1 to 20 items): a course's
# gradebook report costs 29 ms, 1.0 ms per student and 0.76 ms per grade item
# of each student (course total included); an assignment's grades 13 ms a
# call, a quiz's best grade 11 ms (one student), the assignment and quiz
# lists 12 ms a call and 4 ms (assignments) or 1 ms (quizzes) per course
# asked. The simulator's own work comes on top. Other functions cost what the
# simulator takes. A cost is ``(marker, seconds)`` per marker in the request,
# or terms ``(where, marker, seconds)``, ``where`` one of "call" (once, no
# marker), "request", "answer" (see :func:`_cost`).
SPEEDS = {
    "instant": {},
    "moodle45": {
        "core_user_create_users": (b"%5Busername%5D=", 1 / 85),
        "enrol_manual_enrol_users": (b"%5Broleid%5D=", 1 / 350),
        "core_group_add_group_members": (b"%5Buserid%5D=", 1 / 400),
        "gradereport_user_get_grade_items": (
            ("call", None, 0.029),
            ("answer", b'"userfullname"', 0.0010),
            ("answer", b'"graderaw"', 0.00076),
        ),
        "mod_assign_get_grades": (
            ("call", None, 0.013),
            ("answer", b'"grade"', 0.000011),
        ),
        "mod_quiz_get_user_best_grade": (("call", None, 0.011),),
        "mod_assign_get_assignments": (
            ("call", None, 0.012),
            ("request", b"courseids%5B", 0.004),
        ),
        "mod_quiz_get_quizzes_by_courses": (
            ("call", None, 0.012),
            ("request", b"courseids%5B", 0.001),
        ),
    },
}
_WSFUNCTION = re.compile(rb"(?:^|&)wsfunction=([A-Za-z0-9_]+)")


def _cost(cost, body, answer):
    """Seconds of Moodle's work for one call of a function priced ``cost``
    (an entry of :data:`SPEEDS`), given the request and answer bodies."""
    if isinstance(cost[0], bytes):
        cost = (("request", *cost),)
    seconds = 0.0
    for where, marker, each in cost:
        if where == "call":
            seconds += each
        else:
            seconds += (body if where == "request" else answer).count(marker) * each
    return seconds


# How much faster Moodle serves k clients at once than one, for
# ``--moodle-speed moodle45``: a Moodle 4.5.6 on two cores (PHP with 4
# workers, MariaDB) serves four parallel clients 1.4 times faster than one,
# and no more beyond four (measured); between one and four the curve is
# interpolated (see :func:`speedup`).
SPEEDUP = {1: 1.0, 4: 1.4}


def speedup(k):
    """Moodle's throughput with ``k`` requests served at once, against one:
    :data:`SPEEDUP` where measured, linear between, flat beyond the last."""
    if k <= 1:
        return 1.0
    known = sorted(SPEEDUP)
    if k >= known[-1]:
        return SPEEDUP[known[-1]]
    below = max(n for n in known if n <= k)
    above = min(n for n in known if n >= k)
    if below == above:
        return SPEEDUP[below]
    share = (k - below) / (above - below)
    return SPEEDUP[below] + share * (SPEEDUP[above] - SPEEDUP[below])


class MoodleTime:
    """Moodle's charged work, shared by the requests served at once.

    Each request brings its work in seconds of one client's pace; while
    ``k`` requests are in service, each advances at ``speedup(k) / k`` of a
    second per second (processor sharing), so ``k`` clients together are
    served ``speedup(k)`` times faster than one, never more. With one client
    at a time this is a plain sleep of the work.
    """

    def __init__(self, curve=speedup):
        self.curve = curve
        self._cond = threading.Condition()
        self._left = {}
        self._since = time.monotonic()
        # Seconds with k requests in service, for the statistics.
        self.busy = collections.Counter()

    def _advance(self, now):
        k = len(self._left)
        if k:
            elapsed = now - self._since
            self.busy[k] += elapsed
            step = elapsed * self.curve(k) / k
            for token in self._left:
                self._left[token] -= step
        self._since = now

    def charge(self, seconds):
        """Block until Moodle has done ``seconds`` of one client's work."""
        if seconds <= 0:
            return
        token = object()
        with self._cond:
            self._advance(time.monotonic())
            self._left[token] = seconds
            while True:
                k = len(self._left)
                left = self._left[token]
                if left <= 1e-6:
                    break
                # Woken early by a departure (the others go faster then).
                self._cond.wait(left * k / self.curve(k))
                self._advance(time.monotonic())
            del self._left[token]
            self._cond.notify_all()


class IndexedFakeMoodle(FakeMoodle):
    """``FakeMoodle`` with indexes on its hot lookups; same answers."""

    speed = SPEEDS["instant"]

    def handle(self, body, path=None):
        answer = super().handle(body, path)
        if self.speed and isinstance(body, bytes):
            match = _WSFUNCTION.search(body)
            cost = self.speed.get(match[1].decode()) if match else None
            if cost and answer[0] == 200:
                self.moodle_time.charge(_cost(cost, body, answer[2]))
        return answer

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Moodle's pace, shared by the requests served at once.
        self.moodle_time = MoodleTime()
        # Keep only the last calls: the counters stay complete.
        self.calls = collections.deque(maxlen=1000)
        self._user_index = None
        self._children = {}
        self._logs_by_session = {}
        self._logs_indexed = -1
        self._groups_by_course = {}
        self._groups_indexed = -1

    def _reset_state(self):
        super()._reset_state()
        enrolments = _IndexedDict(
            lambda e: (e["courseid"], e["userid"]), lambda e: e["courseid"]
        )
        for key, record in self.enrolments.items():
            enrolments[key] = record
        self.enrolments = enrolments
        instances = _IndexedDict(None, lambda i: i["courseid"])
        for key, record in self.enrol_instances.items():
            instances[key] = record
        self.enrol_instances = instances
        self._user_index = None
        self._children = {}

    # --- enrolments -----------------------------------------------------

    def _enrolment(self, courseid, userid):
        return self.enrolments.by_pair.get((courseid, userid))

    def _manual_instance(self, courseid, enabled_only=True):
        for inst in self.enrol_instances.by_group.get(courseid, {}).values():
            if inst["enrol"] == "manual" and (inst["status"] == 0 or not enabled_only):
                return inst
        return None

    def _course_users(self, courseid, roles=None, active_only=False):
        found = []
        for enrolment in self.enrolments.by_group.get(courseid, {}).values():
            if active_only and enrolment["status"]:
                continue
            if roles is None or set(enrolment["roles"]) & set(roles):
                found.append(enrolment["userid"])
        return sorted(found)

    def ws_core_enrol_get_enrolled_users(self, courseid, options):
        # Same answer: the base sorts every enrolment of the site per call,
        # and scans every group per user.
        every = self.enrolments
        self.enrolments = dict(every.by_group.get(courseid, {}))
        try:
            return super().ws_core_enrol_get_enrolled_users(courseid, options)
        finally:
            self.enrolments = every

    def _enrolled_user_info(self, courseid, enrolment):
        if self._groups_indexed != len(self.groups):
            self._groups_by_course = collections.defaultdict(dict)
            for gid, group in self.groups.items():
                self._groups_by_course[group["courseid"]][gid] = group
            self._groups_indexed = len(self.groups)
        every = self.groups
        self.groups = self._groups_by_course.get(courseid, {})
        try:
            return super()._enrolled_user_info(courseid, enrolment)
        finally:
            self.groups = every

    # --- users ----------------------------------------------------------

    def _users_by(self):
        if self._user_index is None:
            names, emails = collections.Counter(), collections.defaultdict(set)
            for user in self.users.values():
                names[user["username"]] += 1
                if not user["deleted"]:
                    emails[user["email"].lower()].add(user["id"])
            self._user_index = (names, emails)
        return self._user_index

    def _check_new_user(self, user, batch_usernames, batch_emails):
        names, _emails = self._users_by()
        if user["username"] in names and user["username"] not in batch_usernames:
            # The base check scans; it reports the clash with Moodle's words.
            return super()._check_new_user(user, batch_usernames, batch_emails)
        saved, self.users = self.users, {}
        try:
            super()._check_new_user(user, batch_usernames, batch_emails)
        finally:
            self.users = saved

    def _email_taken(self, email, own_id=None):
        if self.users:  # an update: the exact scan (rare in the benchmark)
            return super()._email_taken(email, own_id)
        # inside _check_new_user, where self.users is set aside: the index
        return bool(self._user_index[1].get(email.lower(), set()) - {own_id})

    def add_user(self, *args, **kwargs):
        userid = super().add_user(*args, **kwargs)
        if self._user_index is not None:
            user = self.users[userid]
            self._user_index[0][user["username"]] += 1
            self._user_index[1][user["email"].lower()].add(userid)
        return userid

    def ws_core_user_update_users(self, users):
        self._user_index = None
        try:
            return super().ws_core_user_update_users(users)
        finally:
            self._user_index = None

    def _delete_user(self, userid):
        self._user_index = None
        super()._delete_user(userid)

    # --- gradebook --------------------------------------------------------

    def _new_grade_item(self, courseid, **data):
        self._children = {}
        return super()._new_grade_item(courseid, **data)

    def add_grade_category(self, *args, **kwargs):
        self._children = {}
        return super().add_grade_category(*args, **kwargs)

    def _child_entries(self, catid):
        if catid not in self._children:
            self._children[catid] = super()._child_entries(catid)
        return self._children[catid]

    def _top_grade_category(self, courseid):
        key = ("top", courseid)
        if key not in self._children:
            self._children[key] = super()._top_grade_category(courseid)
        return self._children[key]

    def _maxdepth(self, courseid):
        key = ("depth", courseid)
        if key not in self._children:
            self._children[key] = super()._maxdepth(courseid)
        return self._children[key]

    # --- benchmark set-up (not web-service calls) -------------------------

    def seed_grades(self, items_per_course=5, prefix="oec_subj_", seed=7, graded=1.0):
        """Give every course whose idnumber starts with ``prefix`` grade items
        and a grade for each enrolled student (``graded``: the share graded)."""
        rng = random.Random(seed)
        items = grades = 0
        with self._lock:
            for course in list(self.courses.values()):
                if not (course.get("idnumber") or "").startswith(prefix):
                    continue
                students = self._course_users(course["id"], roles={5})
                for n in range(items_per_course):
                    item = self.add_manual_item(
                        course["id"], f"Assessment {n + 1}", grademax=100.0
                    )
                    items += 1
                    for userid in students:
                        if rng.random() < graded:
                            self.set_manual_grade(item, userid, rng.randint(20, 100))
                            grades += 1
        return {"grade_items": items, "grades": grades}

    def seed_completion(self, prefix="oec_subj_", share=0.5, seed=11):
        """Completion criteria on every course; ``share`` of students done."""
        rng = random.Random(seed)
        courses = done = 0
        with self._lock:
            for course in list(self.courses.values()):
                if not (course.get("idnumber") or "").startswith(prefix):
                    continue
                self.set_completion_criteria(course["id"], (1,))
                courses += 1
                for userid in self._course_users(course["id"], roles={5}):
                    if rng.random() < share:
                        self.complete_course(course["id"], userid)
                        done += 1
        return {"courses_with_criteria": courses, "completed": done}

    def seed_attendance(self, prefix="oec_subj_", sessions=2, seed=13):
        """An attendance activity in every course whose idnumber starts with
        ``prefix``, ``sessions`` taken sessions in each, a status for every
        student (records written straight into the tables, as a teacher's
        register does; set up after the pushes, not counted)."""
        rng = random.Random(seed)
        start = self.now() - 7 * 86400
        activities = records = 0
        with self._lock:
            for course in list(self.courses.values()):
                if not (course.get("idnumber") or "").startswith(prefix):
                    continue
                attid = self.add_attendance(course["id"], "Attendance")
                activities += 1
                statuses = [
                    s["id"]
                    for s in self.attendance_statuses.values()
                    if s["attendanceid"] == attid
                ]
                students = self._course_users(course["id"], roles={5})
                for n in range(sessions):
                    sessionid = self.add_attendance_session(
                        attid, start + n * 86400, 3600
                    )
                    session = self.attendance_sessions[sessionid]
                    taken = start + n * 86400 + 3600
                    for userid in students:
                        logid = self._next("att_log")
                        self.attendance_logs[logid] = {
                            "id": logid,
                            "sessionid": sessionid,
                            "studentid": userid,
                            "remarks": None,
                            "statusid": rng.choice(statuses),
                            "statusset": "",
                            "timetaken": taken,
                            "takenby": self.ws_userid,
                        }
                        records += 1
                    session.update(
                        lasttaken=taken, lasttakenby=self.ws_userid, timemodified=taken
                    )
        return {"attendance_activities": activities, "attendance_records": records}

    # --- attendance: the records of a session by an index ----------------

    def _session_info(self, session):
        # Same answer as the base, which scans every record per session.
        if self._logs_indexed != len(self.attendance_logs):
            self._logs_by_session = collections.defaultdict(dict)
            for logid, log in self.attendance_logs.items():
                self._logs_by_session[log["sessionid"]][logid] = log
            self._logs_indexed = len(self.attendance_logs)
        every = self.attendance_logs
        self.attendance_logs = self._logs_by_session.get(session["id"], {})
        try:
            return super()._session_info(session)
        finally:
            self.attendance_logs = every

    def stats(self):
        with self._lock:
            return {
                "call_counts": dict(self.call_counts),
                "courses": len(self.courses),
                "users": len(self.users),
                "enrolments": len(self.enrolments),
                "groups": len(self.groups),
                "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                # seconds with k paced requests in service at once
                "moodle_busy": {
                    str(k): round(v, 1)
                    for k, v in sorted(self.moodle_time.busy.items())
                },
            }


class _BenchHandler(_Handler):
    # Keep-alive, like the Apache or nginx in front of a real Moodle.
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_POST(self):
        if not self.path.startswith(CONTROL):
            return super().do_POST()
        length = int(self.headers.get("Content-Length") or 0)
        args = json.loads(self.rfile.read(length) or b"{}")
        fm = self.server.fake_moodle
        op = self.path[len(CONTROL) :]
        if op == "reset_calls":
            fm.reset_calls()
            answer = {}
        elif op in ("seed_grades", "seed_completion", "seed_attendance", "stats"):
            answer = getattr(fm, op)(**args)
        elif op == "install_plugin":  # the companion plugin local_openeducat
            fm.install_plugin()
            answer = {"plugin": True}
        else:
            self.send_error(404)
            return
        body = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def serve(fm, host="127.0.0.1", port=0):
    server = _Server((host, port), _BenchHandler)
    server.fake_moodle = fm
    base_url = f"http://{host}:{server.server_address[1]}"
    fm.base_url = base_url
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, base_url


def main(argv=None):
    parser = argparse.ArgumentParser(description="Indexed Moodle simulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default="simtoken")
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--moodle-speed", choices=sorted(SPEEDS), default="instant")
    args = parser.parse_args(argv)
    fm = IndexedFakeMoodle(token=args.token)
    fm.latency = args.latency
    fm.speed = SPEEDS[args.moodle_speed]
    server, base_url = serve(fm, args.host, args.port)
    print(f"READY {base_url}", flush=True)
    try:
        sys.stdin.read()  # runs until the parent closes our stdin
    except KeyboardInterrupt:
        pass
    server.shutdown()
    server.server_close()


if __name__ == "__main__":
    main()
