# A test stand-in, never shipped: see ../README.md.
{
    "name": "OpenEduCat Grading (test stand-in)",
    "summary": "The published names of OpenEduCat Enterprise's openeducat_grading, "
    "for the connector's tests only",
    "version": "17.0.0.1.0",
    "category": "Hidden",
    "license": "LGPL-3",
    "author": "openeducat_moodle contributors",
    "website": "https://github.com/openeducat-moodle/openeducat_moodle",
    # op.student, op.batch and op.subject: OpenEduCat's core. Not
    # openeducat_exam: the page has the gradebook "take priority if both are
    # installed", so it stands without exams.
    "depends": ["openeducat_core"],
    "data": ["security/ir.model.access.csv"],
    "installable": True,
}
