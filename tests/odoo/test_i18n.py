"""The committed translation template is current.

Exports the template of the installed addon the way ``odoo-bin
--i18n-export`` does and checks that each of its messages is in
``openeducat_moodle/i18n/openeducat_moodle.pot``. When this fails, regenerate
the file (see the README, "Run it"):

    odoo-bin -c ODOO_RC -d DB -u openeducat_moodle --stop-after-init
    odoo-bin -c ODOO_RC -d DB --modules=openeducat_moodle \\
        --i18n-export=openeducat_moodle/i18n/openeducat_moodle.pot
"""

import io
import pathlib

import polib

from odoo.tests import TransactionCase, tagged
from odoo.tools.translate import trans_export

POT = (
    pathlib.Path(__file__).resolve().parents[2]
    / "openeducat_moodle"
    / "i18n"
    / "openeducat_moodle.pot"
)


def _msgids(text):
    return {entry.msgid for entry in polib.pofile(text) if entry.msgid}


@tagged("post_install", "-at_install")
class TestTranslationTemplate(TransactionCase):
    def test_template_is_current(self):
        buffer = io.BytesIO()
        trans_export(None, ["openeducat_moodle"], buffer, "po", self.env.cr)
        exported = _msgids(buffer.getvalue().decode())
        self.assertTrue(exported, "the export of openeducat_moodle is empty")
        committed = _msgids(POT.read_text(encoding="utf-8"))
        missing = sorted(exported - committed)
        self.assertFalse(
            missing,
            f"{POT.name} lacks {len(missing)} message(s), e.g. {missing[:3]}; "
            "regenerate it with odoo-bin --i18n-export",
        )

    def test_template_has_no_stale_messages(self):
        buffer = io.BytesIO()
        trans_export(None, ["openeducat_moodle"], buffer, "po", self.env.cr)
        exported = _msgids(buffer.getvalue().decode())
        committed = _msgids(POT.read_text(encoding="utf-8"))
        stale = sorted(committed - exported)
        self.assertFalse(
            stale,
            f"{POT.name} has {len(stale)} message(s) the addon no longer uses, "
            f"e.g. {stale[:3]}; regenerate it with odoo-bin --i18n-export",
        )
