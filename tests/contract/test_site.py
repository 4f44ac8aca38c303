"""Site identity and what the token can do."""

import pytest

from openeducat_moodle.moodle import FEATURES, FUNCTIONS


def test_site_info_names_the_site_user_and_functions(moodle):
    info = moodle.client.get_site_info()

    assert info.release, "release is empty"
    assert isinstance(info.userid, int) and info.userid > 0
    assert info.username
    assert info.siteurl.rstrip("/") == moodle.base_url
    assert "core_webservice_get_site_info" in info.functions
    assert all(isinstance(v, str) for v in info.functions.values())


def test_site_version_is_a_number(moodle):
    # 4.5 reports "2024100706"; 5.1 reports "2025100603.04" (with the decimals
    # of version.php). The client must read both as a site version.
    info = moodle.client.get_site_info()

    assert info.version is not None, "the site version was not understood"
    assert info.version >= 2024100700


def test_capabilities_split_features_into_available_and_missing(moodle):
    caps = moodle.client.capabilities()

    assert set(caps.available) == set(FEATURES)
    assert caps.available["connection"] is True
    for feature, ok in caps.available.items():
        assert ok == (not caps.missing[feature]), feature
        for name in caps.missing[feature]:
            assert name in FUNCTIONS and name not in caps.site.functions
    summary = caps.summary()
    assert summary.splitlines()[0].startswith(f"Moodle {caps.site.release}")
    if not moodle.real:
        # the simulator's service holds the whole catalogue
        assert all(caps.available.values())
        assert caps.site.release == moodle.fm.release


@pytest.mark.sim_only("functions cannot be removed from a service through web services")
def test_capabilities_report_a_function_removed_from_the_service(moodle):
    moodle.fm.remove_function("core_group_add_group_members")

    caps = moodle.client.capabilities()

    assert caps.available["groups"] is False
    assert caps.missing["groups"] == ["core_group_add_group_members"]
    assert caps.missing_for(["groups", "users"]) == ["core_group_add_group_members"]
    assert caps.available["users"] is True
    assert "MISSING" in caps.summary(["groups"])
