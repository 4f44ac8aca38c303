from odoo import fields, models

from ..sync import accounts

ADOPTION_POLICIES = [
    (accounts.NEVER, "Never: a person whose email address is taken is not sent"),
    (
        accounts.REVIEW,
        "After a Moodle Manager's review (Initial Import wizard)",
    ),
    (
        accounts.AUTO,
        "Automatically, for accounts that can do nothing a student cannot",
    ),
]


class MoodleInstance(models.Model):
    """Which existing Moodle accounts the connector may take for a person."""

    _inherit = "moodle.instance"

    adopt_existing_accounts = fields.Selection(
        ADOPTION_POLICIES,
        string="Adopt Existing Moodle Accounts",
        default=accounts.REVIEW,
        required=True,
        help="An account that carries one of the connector's idnumbers is always "
        "the connector's. Another account with a person's email address (or "
        "username) is taken for that person: never; after a Moodle Manager "
        "approves it in the Initial Import wizard; or automatically when it is "
        "the only match, holds the person's email address, and has no role above "
        "student that Moodle's web services show (in its courses or at site "
        "level), is not a site administrator and is matched by no one else. "
        "Until then the person is not sent, and the reason is on the record.",
    )
    adopt_keep_auth = fields.Boolean(
        string="Adopted Accounts Keep Their Login",
        default=True,
        help="An adopted account keeps its authentication method, and so its "
        "password or single sign-on. Off: it gets the method new accounts get "
        "(its password is never changed either way).",
    )
