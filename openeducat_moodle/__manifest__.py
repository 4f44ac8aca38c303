{
    "name": "OpenEduCat Moodle Connector",
    "summary": "Push OpenEduCat's structure and people to Moodle; pull grades, "
    "completion and attendance back",
    "version": "17.0.1.0.0",
    "category": "Education",
    "license": "LGPL-3",
    "author": "openeducat_moodle contributors",
    "website": "https://github.com/openeducat-moodle/openeducat_moodle",
    "depends": ["openeducat_core", "queue_job"],
    "external_dependencies": {"python": ["requests"]},
    "data": [
        "security/moodle_security.xml",
        "security/ir.model.access.csv",
        "data/queue_job_data.xml",
        "data/ir_cron_data.xml",
        "views/moodle_instance_views.xml",
        "views/moodle_mapping_views.xml",
        "views/moodle_sync_run_views.xml",
        "views/menus.xml",
    ],
    "installable": True,
    "application": False,
}
