"""Demo data for the standalone server (``--seed-demo``)."""


def seed_demo(fm):
    """Create a small department/program/course tree with a few users."""
    with fm._lock:
        dept = fm.add_category("Science", idnumber="demo_dept_1")
        prog = fm.add_category("BSc Physics", parent=dept, idnumber="demo_course_1")
        course = fm.add_course(
            "Mechanics (BSc Physics)", "MECH_PHY", prog, idnumber="demo_subj_1"
        )
        teacher = fm.add_user(
            "demo.teacher", "Tess", "Teacher", idnumber="demo_faculty_1"
        )
        students = [
            fm.add_user(f"demo.student{i}", "Student", f"Number{i}", idnumber=f"s{i}")
            for i in (1, 2, 3)
        ]
        fm.enrol(course, teacher, 3)
        for userid in students:
            fm.enrol(course, userid, 5)
        group = fm.add_group(course, "Batch A", idnumber="demo_batch_1")
        for userid in students[:2]:
            fm.add_group_member(group, userid)
        assign = fm.add_assignment(course, "Lab report 1", idnumber="demo_as1")
        fm.grade_assignment(assign, students[0], 72.5)
        quiz = fm.add_quiz(course, "Quiz 1", grade=10.0, gradetopass=5.0)
        fm.add_quiz_attempt(quiz, students[0], 7.5)
        fm.set_completion_criteria(course, (1,))
        att = fm.add_attendance(course, "Attendance")
        fm.add_attendance_session(att, fm.now())
    return course
