"""Nothing reaches production by accident: every spelling of a production host is production, and
links from responses never leave the host. Name resolution is intercepted, so a failure here
cannot send anything anywhere."""

from __future__ import annotations

import socket

import pytest

from reconkit import Client, Config, Credit, CreditShapeError, ProductionGuardError
from reconkit.hosts import is_production_host, production_host, request_host
from reconkit.widgets import IssueCreditApp

from .conftest import CARD, SEED_SECRET

PRODUCTION_SPELLINGS = [
    "production",
    "PRODUCTION ",
    "https://api.cybersource.com",
    "https://api.cybersource.com.",
    "https://api.cybersource.com..",
    "https://api%2ecybersource.com",
    "https://api%252ecybersource.com",
    "https://%61pi.cybersource.com",
    "https://api.cybersource.com\\@example.com",
    "https://api.cybersource.com#@example.com",
    "https://api.cybersource.com?@example.com",
    "https://user:password@api.cybersource.com",
    "https://example.com@api.cybersource.com",
    "https://API.CyberSource.COM",
    "HTTPS://API.CYBERSOURCE.COM./pts",
    "https://\uff41\uff50\uff49\uff0e\uff43\uff59\uff42\uff45\uff52\uff53\uff4f\uff55\uff52\uff43\uff45\uff0e\uff43\uff4f\uff4d",
    "https://api\u3002cybersource\u3002com",
    "https://api.cyber\u00adsource.com",
    "https://api.cyber\u200bsource.com",
    "https://api.cybersource.com\t",
    "  https://api.cybersource.com/  ",
    "https://api.cybersource.com:443",
    "https://api.cybersource.com:8443/",
    "http://api.cybersource.com",
    "https://api.in.cybersource.com",
    "https://cybersource.com",
    "https://ebc.cybersource.com",
    "https://apitest.cybersource.com.api.cybersource.com",
]
"""Each is production: either the HTTP stack connects to a cybersource.com host that is not a
test host, or a lenient reading of it does (refused rather than guessed)."""

NOT_PRODUCTION = [
    ("test", "TEST"),
    ("https://apitest.cybersource.com", "TEST"),
    ("https://APITEST.cybersource.com.", "TEST"),
    ("http://127.0.0.1:8765/", "CUSTOM"),
    ("https://api.cybersource.com.example.com", "CUSTOM"),
    ("https://example.com/api.cybersource.com", "CUSTOM"),
    ("https://cybersource.com.example.org:8443", "CUSTOM"),
    ("http://[::1]:8080", "CUSTOM"),
]


@pytest.fixture
def no_dns(monkeypatch):
    """Record every name lookup and refuse it: nothing can leave the machine."""
    looked_up: list[object] = []

    def refuse(host, *args, **kwargs):
        looked_up.append(host)
        raise OSError(f"name resolution is blocked in this test ({host!r})")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return looked_up


def _refused_everywhere(config: Config, tmp_path) -> None:
    with Client(config, ledger=str(tmp_path / "ledger.sqlite3")) as client:
        with pytest.raises(ProductionGuardError, match="production"):
            client.create_credit("1.00", "USD", card=CARD)
        with pytest.raises(ProductionGuardError):
            client.void_credit("1234567890123456789012")
        with pytest.raises(ProductionGuardError):
            client.void_credit(Credit({"id": "1" * 22, "_links": {"void": {"href": f"/pts/v2/credits/{'1' * 22}"
                                                                                      "/voids"}}}))
        assert client.ledger.credits().empty


@pytest.mark.parametrize("spelling", PRODUCTION_SPELLINGS)
def test_every_spelling_of_production_is_refused_before_a_socket_opens(spelling, tmp_path, no_dns):
    config = Config("m", "k", SEED_SECRET, spelling)
    assert config.is_production and config.environment_name == "PRODUCTION"
    assert config.base_url.startswith("https://") and "@" not in config.base_url
    _refused_everywhere(config, tmp_path)

    env = {"CYBERSOURCE_MERCHANT_ID": "m", "CYBERSOURCE_KEY_ID": "k", "CYBERSOURCE_SECRET_KEY": SEED_SECRET,
           "CYBERSOURCE_ENVIRONMENT": spelling}
    assert Config.from_env(env, dotenv=None).is_production

    bare = spelling.strip().removeprefix("https://") if spelling.strip().startswith("https://") else spelling
    for run_environment in {spelling, bare} - {"production", "PRODUCTION "}:
        sdk = Config.from_sdk_dict({"merchantid": "m", "merchant_keyid": "k", "merchant_secretkey": SEED_SECRET,
                                    "run_environment": run_environment})
        assert sdk.is_production, run_environment
        _refused_everywhere(sdk, tmp_path)
    assert no_dns == []


@pytest.mark.parametrize("spelling", PRODUCTION_SPELLINGS[::4])
def test_the_issue_app_refuses_production_spelled_any_way(spelling, tmp_path, monkeypatch, no_dns):
    import reconkit.session as session

    monkeypatch.setattr(session, "_sandbox", None)
    for name in [n for n in __import__("os").environ if n.startswith(("CYBERSOURCE_", "RECONKIT_"))]:
        monkeypatch.delenv(name)
    (tmp_path / "data" / "sample").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RECONKIT_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("CYBERSOURCE_MERCHANT_ID", "m")
    monkeypatch.setenv("CYBERSOURCE_KEY_ID", "k")
    monkeypatch.setenv("CYBERSOURCE_SECRET_KEY", SEED_SECRET)
    monkeypatch.setenv("CYBERSOURCE_ENVIRONMENT", spelling)
    app = IssueCreditApp()
    assert "PRODUCTION" in app.banner.value and "Refused" in app.error.value
    assert app.issue_button.disabled and app.confirm_button.disabled and app.batch_button.disabled
    assert app.void_button.disabled
    app.on_issue()
    app.on_confirm()
    app.on_void()
    app.on_void_confirmed()
    assert app.client.ledger.credits().empty and no_dns == []
    assert session._sandbox is None  # it never fell back to the sandbox either


@pytest.mark.parametrize(("environment", "name"), NOT_PRODUCTION)
def test_test_and_custom_hosts_are_not_production(environment, name):
    config = Config("m", "k", SEED_SECRET, environment)
    assert not config.is_production and config.environment_name == name


@pytest.mark.parametrize("environment", ["https://api.cybersource.com.example.com?x=1", "ftp://example.com",
                                         "https://user@example.com", "https://example.com\\@other.org",
                                         "https://exa%6dple.com", "example.com", "https://"])
def test_a_custom_url_that_means_two_things_is_refused(environment):
    with pytest.raises(Exception, match="environment") as info:
        Config("m", "k", SEED_SECRET, environment)
    assert type(info.value).__name__ == "ConfigError"


def test_the_decision_follows_what_requests_connects_to():
    assert request_host("https://api.cybersource.com\\@example.com/x") == "api.cybersource.com"
    assert request_host("https://api.cybersource.com./x") == "api.cybersource.com"
    assert production_host("https://example.com/api.cybersource.com") is None
    assert is_production_host("API.CYBERSOURCE.COM.") and not is_production_host("apitest.cybersource.com")


BAD_LINKS = [
    "@api.cybersource.com/pts/v2/credits/1/voids",
    "//api.cybersource.com/pts/v2/credits/1/voids",
    "https://api.cybersource.com/pts/v2/credits/1/voids",
    "http://127.0.0.1:1/pts/v2/credits/1/voids",
    "\\\\evil.example/pts/v2/credits/1/voids",
    "/pts/v2/credits/1/voids@evil.example",
    ".evil.example/pts/v2/credits/1/voids",
    ":8080/pts/v2/credits/1/voids",
    "pts/v2/credits/1/voids",
    "/pts/../../evil",
    "/pts/v2/credits/%2e%2e/voids",
    "/pts/v2/credits/1/voids?host=evil.example",
    "/pts/v2/credits/1/voids#fragment",
    "/pts/v2/credits/1/voids\r\nHost: evil.example",
    " /pts/v2/credits/1/voids",
    "/pts//v2/credits/1/voids",
    "/admin/v2/credits/1/voids",
    "/\uff50\uff54\uff53/v2/credits/1/voids",
    42,
]


@pytest.mark.parametrize("href", BAD_LINKS)
def test_links_are_followed_only_as_same_origin_paths(href, shared_client, shared_sandbox, no_dns):
    client, sandbox = shared_client, shared_sandbox
    raw = {"id": "1" * 22, "_links": {"void": {"href": href, "method": "POST"},
                                      "self": {"href": href, "method": "GET"}}}
    before = len(sandbox.requests)
    with pytest.raises(CreditShapeError, match="link"):
        client.void_credit(Credit(raw))
    with pytest.raises(CreditShapeError, match="link"):
        client.get_credit(Credit(raw))
    assert len(sandbox.requests) == before and no_dns == []
    assert isinstance(CreditShapeError("x"), ValueError)


def test_an_id_that_would_leave_the_path_is_refused(shared_client, shared_sandbox):
    client, sandbox = shared_client, shared_sandbox
    before = len(sandbox.requests)
    with pytest.raises(CreditShapeError):
        client.get_credit(Credit({"id": "1@evil.example"}, source="tss"))
    with pytest.raises(ValueError, match="not a credit id"):
        client.void_credit("1/../../x")
    assert len(sandbox.requests) == before


def test_well_formed_links_are_followed(shared_client, shared_sandbox):
    client, sandbox = shared_client, shared_sandbox
    voids = sandbox.count("POST", "void")  # the shared sandbox's, from tests before this one
    credit = client.create_credit("3.00", "USD", card=CARD)
    assert client.get_credit(Credit(credit.raw)).id == credit.id
    assert client.void_credit(credit).status == "VOIDED"
    assert sandbox.count("POST", "void") == voids + 1
