{
    "name": "OpenEduCat Moodle Connector: Exams",
    "summary": "Lets the Moodle grade pull create exam attendees in bulk",
    "version": "17.0.1.0.0",
    "category": "Education",
    "license": "LGPL-3",
    "author": "openeducat_moodle contributors",
    "website": "https://github.com/openeducat-moodle/openeducat_moodle",
    "depends": ["openeducat_moodle", "openeducat_exam"],
    "auto_install": True,
}
