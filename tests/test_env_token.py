"""A ready token from the environment: FEDBEARER_TOKEN, then NEBIUS_IAM_TOKEN.

Sent as it is, with no cache read or write, no refresh and no login; a 401 for it is
returned with one warning; a malformed value is a ConfigurationError that names the
variable and never quotes the value; ``token_from_env=False`` ignores the environment.
"""

from __future__ import annotations

import io
import logging
import pickle

import pytest
import requests

from fedbearer import ConfigurationError, FederationAuth, MemoryTokenCache, Token, TokenCache
from fedbearer.testing import LocalFederation

from .api_server import ProtectedAPI

FEDBEARER_TOKEN = "FEDBEARER_TOKEN"
NEBIUS_IAM_TOKEN = "NEBIUS_IAM_TOKEN"

# fedbearer's pytest plugin keeps tokens in the environment away from tests; these are about
# exactly those tokens (conftest clears the variables, so only what a test sets is there).
pytestmark = pytest.mark.fedbearer_real


class Tripwire:
    """A token cache that fails the test if it is touched at all."""

    def _touched(self, *args: object) -> None:
        raise AssertionError("the token cache was used despite a token in the environment")

    get = put = remove = login_lock = entries = _touched


def never_open(url: str) -> bool:
    raise AssertionError("a login was started despite a token in the environment")


def make_auth(fed: LocalFederation, **kwargs) -> FederationAuth:
    kwargs.setdefault("opener", never_open)
    kwargs.setdefault("writer", io.StringIO())
    kwargs.setdefault("cache", Tripwire())
    return FederationAuth(fed.client_id, fed.endpoint, fed.federation_id or "", **kwargs)


def session_with(auth: FederationAuth) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    session.auth = auth
    return session


@pytest.fixture
def api(federation):
    with ProtectedAPI(federation.is_valid) as server:
        yield server


def test_the_tripwire_is_a_token_cache():
    assert isinstance(Tripwire(), TokenCache)


def test_fedbearer_token_is_sent_as_is_without_cache_refresh_or_login(federation, api, monkeypatch):
    token = federation.issue_token(user="ci-bot")
    monkeypatch.setenv(FEDBEARER_TOKEN, token)
    auth = make_auth(federation)
    session = session_with(auth)

    for _ in range(3):
        assert session.get(api.url + "/things").status_code == 200

    assert {seen.authorization for seen in api.seen} == {f"Bearer {token}"}
    assert auth.token_variable == FEDBEARER_TOKEN
    got = auth.get_token()
    assert got.token == token and got.expiration is None and got.refresh_token is None
    assert federation.authorize_requests == 0 and federation.token_requests == 0


@pytest.mark.parametrize(
    ("fedbearer_value", "nebius_value", "expected"),
    [
        ("fedbearer-tok", "nebius-tok", FEDBEARER_TOKEN),
        (None, "nebius-tok", NEBIUS_IAM_TOKEN),
        ("", "nebius-tok", NEBIUS_IAM_TOKEN),  # empty means unset, as in the Nebius SDK
        ("fedbearer-tok", None, FEDBEARER_TOKEN),
        ("", "", None),
        (None, None, None),
    ],
)
def test_fedbearer_token_comes_first_then_nebius_iam_token(
    federation, monkeypatch, fedbearer_value, nebius_value, expected
):
    for name, value in ((FEDBEARER_TOKEN, fedbearer_value), (NEBIUS_IAM_TOKEN, nebius_value)):
        if value is not None:
            monkeypatch.setenv(name, value)
    auth = make_auth(federation, cache=None)
    assert auth.token_variable == expected
    if expected is not None:
        values = {FEDBEARER_TOKEN: fedbearer_value, NEBIUS_IAM_TOKEN: nebius_value}
        assert auth.get_token().token == values[expected]
    else:
        assert repr(auth).endswith("token=none)")


BAD_VALUES = {
    "space inside": "abc def",
    "CR/LF header injection": "abc\r\nX-Injected: 1",
    "trailing newline": "abc.def.ghi\n",
    "leading space": " abc",
    "tab": "abc\tdef",
    "non-ASCII": "abcdéf",
    "quote": 'abc"def',
    "too long": "a" * 16385,
    "only white space": "   ",
}


@pytest.mark.parametrize("variable", [FEDBEARER_TOKEN, NEBIUS_IAM_TOKEN])
@pytest.mark.parametrize("value", list(BAD_VALUES.values()), ids=list(BAD_VALUES))
def test_a_malformed_value_is_a_configuration_error_naming_the_variable_not_the_value(
    federation, monkeypatch, variable, value
):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as info:
        make_auth(federation)
    message = str(info.value)
    assert message.startswith(variable + " ")
    assert f"unset {variable}" in message
    # Never quoted: no piece of the value (all of them are made of letters) is in the text.
    for piece in ("abc", "def", "ghi", "X-Injected", "a" * 20):
        assert piece not in message


def test_a_malformed_fedbearer_token_never_falls_back_to_nebius_iam_token(federation, monkeypatch):
    monkeypatch.setenv(FEDBEARER_TOKEN, "typo in token")
    monkeypatch.setenv(NEBIUS_IAM_TOKEN, "good-token")
    with pytest.raises(ConfigurationError, match=r"^FEDBEARER_TOKEN "):
        make_auth(federation)


def test_token_from_env_false_never_looks_at_the_environment(federation, api, monkeypatch):
    from fedbearer.testing import ProgrammaticBrowser

    monkeypatch.setenv(FEDBEARER_TOKEN, "not a token at all")  # not even validated
    monkeypatch.setenv(NEBIUS_IAM_TOKEN, "nebius-tok")
    cache = MemoryTokenCache()
    auth = make_auth(federation, token_from_env=False, cache=cache, opener=ProgrammaticBrowser())
    assert auth.token_variable is None
    assert session_with(auth).get(api.url).status_code == 200
    assert federation.logins == 1
    assert [key for key, _ in cache.entries()] == [auth.bearer.name]


@pytest.mark.parametrize("value", [1, 0, "yes", None])
def test_token_from_env_must_be_a_bool(federation, value):
    with pytest.raises(ConfigurationError, match="token_from_env"):
        make_auth(federation, token_from_env=value)


def test_the_environment_is_read_once_when_the_adapter_is_built(federation, api, monkeypatch):
    first = federation.issue_token()
    monkeypatch.setenv(FEDBEARER_TOKEN, first)
    auth = make_auth(federation)
    monkeypatch.setenv(FEDBEARER_TOKEN, federation.issue_token())
    monkeypatch.delenv(FEDBEARER_TOKEN)
    assert session_with(auth).get(api.url).status_code == 200
    assert api.seen[-1].authorization == f"Bearer {first}"


def test_a_401_is_returned_with_one_warning_and_no_renewal(federation, api, monkeypatch, caplog):
    token = federation.issue_token()
    monkeypatch.setenv(FEDBEARER_TOKEN, token)
    auth = make_auth(federation)
    session = session_with(auth)
    api.always_401 = True
    caplog.set_level(logging.DEBUG, logger="fedbearer")

    responses = [session.get(api.url + f"/call-{i}") for i in range(3)]

    assert [r.status_code for r in responses] == [401, 401, 401]
    assert all(r.history == [] for r in responses)  # never resent
    assert len(api.seen) == 3
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    text = warnings[0].getMessage()
    assert "FEDBEARER_TOKEN" in text and "environment" in text and "cannot be renewed" in text
    assert token not in caplog.text
    assert federation.authorize_requests == 0 and federation.token_requests == 0
    assert auth.get_token().token == token  # still the token it sends: nothing to renew to


def test_an_insufficient_scope_401_is_returned_without_the_warning(
    federation, api, monkeypatch, caplog
):
    monkeypatch.setenv(FEDBEARER_TOKEN, federation.issue_token())
    api.insufficient_scope = True
    caplog.set_level(logging.WARNING, logger="fedbearer")
    assert session_with(make_auth(federation)).get(api.url).status_code == 401
    assert caplog.records == []


def test_hosts_and_the_plain_http_rule_still_apply(federation, api, monkeypatch, caplog):
    monkeypatch.setenv(FEDBEARER_TOKEN, federation.issue_token())
    caplog.set_level(logging.WARNING, logger="fedbearer")
    elsewhere = make_auth(federation, hosts=["https://api.example.com"])
    prepared = requests.Request("GET", api.url).prepare()
    assert "Authorization" not in elsewhere(prepared).headers
    anywhere = make_auth(federation)
    plain_remote = requests.Request("GET", "http://api.example.com/x").prepare()
    assert "Authorization" not in anywhere(plain_remote).headers
    assert "not https://" in caplog.text
    secure = requests.Request("GET", "https://api.example.com/x").prepare()
    assert anywhere(secure).headers["Authorization"].startswith("Bearer ")


def test_repr_names_the_variable_and_never_the_token(federation, monkeypatch):
    token = federation.issue_token()
    monkeypatch.setenv(NEBIUS_IAM_TOKEN, token)
    text = repr(make_auth(federation))
    assert "token=from $NEBIUS_IAM_TOKEN" in text
    assert token not in text


def test_an_unpickled_copy_reads_the_same_variable_again(federation, api, monkeypatch):
    token = federation.issue_token()
    monkeypatch.setenv(NEBIUS_IAM_TOKEN, token)
    auth = make_auth(federation, cache=None)
    data = pickle.dumps(auth)
    assert token.encode() not in data  # the token is left out, as a logged-in one is

    copy = pickle.loads(data)
    assert copy.token_variable == NEBIUS_IAM_TOKEN
    assert session_with(copy).get(api.url).status_code == 200
    assert api.seen[-1].authorization == f"Bearer {token}"

    monkeypatch.delenv(NEBIUS_IAM_TOKEN)
    orphan = pickle.loads(data)
    with pytest.raises(ConfigurationError, match=r"\$NEBIUS_IAM_TOKEN.*not set in this process"):
        session_with(orphan).get(api.url)
    assert federation.authorize_requests == 0


def test_from_bearer_and_from_nebius_profile_take_the_option_too(federation, tmp_path, monkeypatch):
    monkeypatch.setenv(FEDBEARER_TOKEN, "env-tok")
    plain = make_auth(federation)
    assert FederationAuth.from_bearer(plain.bearer, cache=None).token_variable == FEDBEARER_TOKEN
    assert FederationAuth.from_bearer(plain.bearer, token_from_env=False).token_variable is None
    config = tmp_path / "config.yaml"
    config.write_text(
        "profiles:\n"
        "  ci:\n"
        "    auth-type: federation\n"
        f"    federation-endpoint: {federation.endpoint}\n"
        "    federation-id: fed\n"
    )
    for flag, expected in ((True, FEDBEARER_TOKEN), (False, None)):
        auth = FederationAuth.from_nebius_profile(
            client_id="c", config_file=str(config), token_from_env=flag
        )
        assert auth.token_variable == expected


def test_every_b64token_character_is_accepted(federation, monkeypatch):
    monkeypatch.setenv(FEDBEARER_TOKEN, "a-Z_0.9~+/==")
    assert make_auth(federation).get_token() == Token("a-Z_0.9~+/==", None)
