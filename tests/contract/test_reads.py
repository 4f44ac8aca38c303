"""What issue 15's reads rely on in Moodle's own functions, on the simulator
and on a real Moodle: each enrolled user's last access to a course, in one
``core_enrol_get_enrolled_users`` call (``lastcourseaccess``, 0 for never);
the courses of one category and courses by ids, never the whole site."""


def test_last_course_access_of_every_enrolled_user(moodle):
    course = moodle.new_course()
    users = [moodle.new_user()["id"], moodle.new_user()["id"]]
    for userid in users:
        moodle.enrol(course["id"], userid)

    access = moodle.client.get_course_last_access(course["id"])

    # nobody went into the new course: 0 each, as ints
    assert {userid: access.get(userid) for userid in users} == dict.fromkeys(users, 0)
    assert all(isinstance(value, int) for value in access.values())


def test_courses_of_one_category_and_by_ids(moodle):
    category = moodle.new_category()["id"]
    ours = [moodle.new_course(category)["id"] for _ in range(2)]
    elsewhere = moodle.new_course()["id"]

    in_category = moodle.client.get_courses_in_category(category)
    by_ids = moodle.client.get_courses_by_ids([*ours, elsewhere], per_call=2)

    assert sorted(c["id"] for c in in_category) == sorted(ours)
    assert {c["categoryid"] for c in in_category} == {category}
    assert sorted(c["id"] for c in by_ids) == sorted([*ours, elsewhere])
    assert all(c.get("idnumber") for c in by_ids)
