from __future__ import annotations

import pytest

from reconkit import Config, ConfigError

from .conftest import SEED_SECRET

ENV = {"CYBERSOURCE_MERCHANT_ID": "m1", "CYBERSOURCE_KEY_ID": "k1", "CYBERSOURCE_SECRET_KEY": SEED_SECRET}


def test_environments_map_to_hosts():
    assert Config("m", "k", SEED_SECRET).base_url == "https://apitest.cybersource.com"
    assert Config("m", "k", SEED_SECRET, "production").base_url == "https://api.cybersource.com"
    assert Config("m", "k", SEED_SECRET, "production").is_production
    sandbox = Config("m", "k", SEED_SECRET, "http://127.0.0.1:8765/")
    assert sandbox.base_url == "http://127.0.0.1:8765" and sandbox.host == "127.0.0.1:8765"
    assert not sandbox.is_production


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"merchant_id": ""}, "merchant_id"),
    ({"key_id": " "}, "key_id"),
    ({"secret_key": "not base64!!"}, "secret_key"),
    ({"environment": "staging"}, "environment"),
    ({"auth_type": "oauth"}, "auth_type"),
    ({"merchant_id": "bad id with spaces"}, "merchant_id"),
])
def test_bad_values_name_the_field(kwargs, field):
    args = {"merchant_id": "m", "key_id": "k", "secret_key": SEED_SECRET} | kwargs
    with pytest.raises(ConfigError) as info:
        Config(**args)
    assert info.value.field == field
    assert str(info.value).startswith(field)


def test_from_env_reads_variables_and_dotenv(tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_text(f"# comment\nCYBERSOURCE_MERCHANT_ID=from_file\nCYBERSOURCE_KEY_ID='k2'\n"
                      f"export CYBERSOURCE_SECRET_KEY=\"{SEED_SECRET}\"\nCYBERSOURCE_AUTH_TYPE=jwt\n")
    config = Config.from_env({}, dotenv=dotenv)
    assert (config.merchant_id, config.key_id, config.auth_type) == ("from_file", "k2", "jwt")
    config = Config.from_env(ENV | {"CYBERSOURCE_ENVIRONMENT": "production", "CYBERSOURCE_PORTFOLIO_ID": "p"},
                             dotenv=dotenv)
    assert config.merchant_id == "m1" and config.is_production and config.portfolio_id == "p"


def test_from_env_names_the_missing_variable(tmp_path):
    with pytest.raises(ConfigError, match="CYBERSOURCE_KEY_ID"):
        Config.from_env({"CYBERSOURCE_MERCHANT_ID": "m"}, dotenv=None)
    with pytest.raises(ConfigError, match="CYBERSOURCE_SECRET_KEY"):
        Config.from_env(ENV | {"CYBERSOURCE_SECRET_KEY": "%%%"}, dotenv=None)
    bad = tmp_path / ".env"
    bad.write_text("CYBERSOURCE_MERCHANT_ID=m\nthis line is wrong\n")
    with pytest.raises(ConfigError, match=r"\.env:2"):
        Config.from_env({}, dotenv=bad)


def test_from_sdk_dict_accepts_sdk_keys():
    config = Config.from_sdk_dict({"authentication_type": "http_signature", "merchantid": "m",
                                   "merchant_keyid": "k", "merchant_secretkey": SEED_SECRET,
                                   "run_environment": "apitest.cybersource.com"})
    assert config.environment == "test" and config.merchant_id == "m"
    config = Config.from_sdk_dict({"authentication_type": "JWT", "jwt_key_type": "SHARED_SECRET", "merchantid": "m",
                                   "merchant_keyid": "k", "merchant_secret_key": SEED_SECRET,
                                   "run_environment": "api.cybersource.com", "use_metakey": True,
                                   "portfolio_id": "pf"})
    assert config.auth_type == "jwt" and config.is_production and config.signing_merchant_id == "pf"
    with pytest.raises(ConfigError, match="merchant_keyid"):
        Config.from_sdk_dict({"merchantid": "m", "merchant_secretkey": SEED_SECRET, "run_environment": "x"})
    with pytest.raises(ConfigError, match="portfolio_id"):
        Config.from_sdk_dict({"merchantid": "m", "merchant_keyid": "k", "merchant_secretkey": SEED_SECRET,
                              "run_environment": "apitest.cybersource.com", "use_metakey": "true"})
