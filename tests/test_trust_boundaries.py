"""Every value that crosses a boundary is checked where it enters (issue #11).

The token endpoint's answer, the cache file, the configuration: each case here failed (or
leaked) before the checks existed. The property tests feed arbitrary JSON and YAML through
the real parsers and accept only three outcomes: a Token, a typed fedbearer error, or a
cache miss with a warning.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import stat
import threading
import warnings
from dataclasses import replace
from datetime import datetime, timezone

import pytest
import requests
import responses
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedbearer import (
    ConfigurationError,
    FedbearerError,
    FederationAuth,
    FileTokenCache,
    InvalidTokenResponseError,
    MemoryTokenCache,
    Token,
    TokenCacheWarning,
    TokenDataError,
    cache_key,
)
from fedbearer._challenge import bearer_error, parse_challenges
from fedbearer._cli import EXIT_INTERACTION_REQUIRED, EXIT_USAGE, main
from fedbearer._protocol import parse_token_response
from fedbearer._token import MAX_TOKEN_LENGTH, MAX_TOKEN_LIFETIME
from fedbearer.testing import CallbackOpener, ProgrammaticBrowser, add_token_response

from .api_server import ProtectedAPI

INJECTED = "good\r\nX-Evil: 1"
REQUESTED_AT = 1_800_000_000.0


def body(**fields) -> bytes:
    return json.dumps(fields).encode()


def caught(fn, *args):
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        result = fn(*args)
    return result, [w for w in seen if issubclass(w.category, TokenCacheWarning)]


def write_cache(path, doc, mode=0o600) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc))
    path.chmod(mode)


def make_auth(fed, **kwargs) -> FederationAuth:
    kwargs.setdefault("opener", ProgrammaticBrowser())
    kwargs.setdefault("writer", io.StringIO())
    kwargs.setdefault("timeout", 10)
    return FederationAuth(fed.client_id, fed.endpoint, fed.federation_id or "", **kwargs)


def future(seconds: float = 3600) -> datetime:
    return datetime.fromtimestamp(REQUESTED_AT + seconds + 10**8, tz=timezone.utc)


# ------------------------------------------------------------------ 1. token values


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (INJECTED, "whitespace or control characters"),
        ("tab\there", "whitespace or control characters"),
        ("with space", "whitespace or control characters"),
        ("caf\u00e9", "non-ASCII"),
        ("a,b;c", "RFC 6750 b64token"),
        ("x" * (MAX_TOKEN_LENGTH + 1), f"longer than {MAX_TOKEN_LENGTH}"),
        ("", "empty"),
    ],
)
def test_an_unsendable_access_token_is_refused_without_quoting_it(value, reason):
    with pytest.raises(InvalidTokenResponseError) as info:
        parse_token_response(200, body(access_token=value), requested_at=REQUESTED_AT)
    assert reason in str(info.value)
    if value:
        assert value not in str(info.value) and value not in repr(info.value)
    with pytest.raises(TokenDataError):
        Token(value, None)


@pytest.mark.parametrize("value", ["eyJ.ab-c_d~e+f/g==", "ya29.a0AfB_byC", "a" * MAX_TOKEN_LENGTH])
def test_b64token_access_tokens_are_accepted(value):
    assert parse_token_response(200, body(access_token=value), requested_at=0).token == value


@pytest.mark.parametrize("refresh", [INJECTED, "two words", "caf\u00e9", ["list"]])
def test_a_malformed_refresh_token_is_refused(refresh):
    with pytest.raises(InvalidTokenResponseError, match="refresh token"):
        parse_token_response(
            200, body(access_token="ok", refresh_token=refresh), requested_at=REQUESTED_AT
        )


def test_an_injected_token_from_the_endpoint_is_an_error_and_is_never_cached(federation, tmp_path):
    cache = FileTokenCache(tmp_path / "credentials.yaml")
    auth = make_auth(federation, cache=cache)
    real = federation.handle_token

    def answer(content_type, data):
        reply = real(content_type, data)
        doc = json.loads(reply.body)
        doc["access_token"] = INJECTED
        return replace(reply, body=json.dumps(doc).encode())

    federation.handle_token = answer
    with pytest.raises(InvalidTokenResponseError) as info:
        auth.get_token()
    assert "X-Evil" not in str(info.value)
    assert cache.entries() == []


def test_an_injected_token_in_the_cache_is_a_miss_and_a_fresh_login(federation, tmp_path):
    path = tmp_path / "credentials.yaml"
    cache = FileTokenCache(path)
    auth = make_auth(federation, cache=cache)
    write_cache(
        path, {"tokens": {auth.bearer.name: {"token": INJECTED, "expires_at": 4_000_000_000}}}
    )
    with ProtectedAPI(federation.is_valid) as api:
        session = requests.Session()
        session.trust_env = False
        session.auth = auth
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            assert session.get(api.url).status_code == 200
    assert federation.logins == 1
    assert api.seen[-1].authorization == "Bearer " + auth.get_token().token
    messages = " ".join(str(w.message) for w in seen)
    assert "unreadable entry" in messages and "X-Evil" not in messages
    assert cache.get(auth.bearer.name).token != INJECTED  # replaced by the fresh login


def test_the_cli_never_prints_an_injected_cached_token(federation, isolated_env, capsys):
    key = cache_key(federation.endpoint, federation.federation_id, "default")
    write_cache(
        isolated_env / ".nebius" / "credentials.yaml",
        {"tokens": {key: {"token": INJECTED, "expires_at": 4_000_000_000}}},
    )
    code = main(
        [
            "token",
            "--non-interactive",
            *("--client-id", federation.client_id),
            *("--federation-endpoint", federation.endpoint),
            *("--federation-id", federation.federation_id),
        ]
    )
    out = capsys.readouterr()
    assert code == EXIT_INTERACTION_REQUIRED
    assert out.out == "" and "X-Evil" not in out.err


# ------------------------------------------------------------------ 2. lifetimes


@pytest.mark.parametrize("expires_in", [1e12, 1e20, 10**30, "99999999999999999999999"])
def test_an_absurd_expires_in_is_clamped_to_the_documented_maximum(expires_in):
    token = parse_token_response(
        200, body(access_token="ok", expires_in=expires_in), requested_at=REQUESTED_AT
    )
    assert token.expires_at == REQUESTED_AT + MAX_TOKEN_LIFETIME


@pytest.mark.parametrize(
    "raw", [b"1e400", b"-1e400", b"NaN", b"0", b"-5", b'"soon"', b"true", b"[3600]"]
)
def test_an_unusable_expires_in_is_an_invalid_token_response(raw):
    data = b'{"access_token": "ok", "expires_in": ' + raw + b"}"
    with pytest.raises(InvalidTokenResponseError, match="expires_in"):
        parse_token_response(200, data, requested_at=REQUESTED_AT)


def test_a_jwt_exp_far_away_is_clamped_too():
    import base64

    payload = base64.urlsafe_b64encode(json.dumps({"exp": 1e300}).encode()).rstrip(b"=")
    jwt = "eyJhbGciOiJub25lIn0." + payload.decode() + ".sig"
    token = parse_token_response(200, body(access_token=jwt), requested_at=REQUESTED_AT)
    assert token.expires_at == REQUESTED_AT + MAX_TOKEN_LIFETIME


def test_an_absurd_lifetime_from_the_endpoint_is_a_fedbearer_error(federation):
    real = federation.handle_token

    def answer(content_type, data):
        reply = real(content_type, data)
        doc = json.loads(reply.body)
        doc["expires_in"] = "EXPIRES"
        return replace(reply, body=json.dumps(doc).encode().replace(b'"EXPIRES"', b"1e400"))

    federation.handle_token = answer
    with pytest.raises(FedbearerError, match="expires_in"):
        make_auth(federation, cache=None).get_token()


@pytest.mark.parametrize(
    "expires_at", [10**12, 10**30, 1e300, -(10**12), float("inf"), float("nan"), "soon"]
)
def test_an_absurd_expires_at_in_the_cache_is_a_miss_with_a_warning(tmp_path, expires_at):
    path = tmp_path / "credentials.yaml"
    write_cache(path, {"tokens": {"k": {"token": "ok", "expires_at": expires_at}}})
    result, seen = caught(FileTokenCache(path).get, "k")
    if result is None:
        assert len(seen) == 1 and "unreadable entry" in str(seen[0].message)
    else:  # far but representable: a real date, and the token is usable
        assert isinstance(result.expiration, datetime)


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
FIELD_VALUES = (
    JSON
    | st.sampled_from(["ok", INJECTED, "Bearer", "bearer", "mac", "", "3600", "1e400"])
    | st.integers(min_value=-(10**30), max_value=10**30)
)
TOKEN_RESPONSES = (
    st.dictionaries(
        st.sampled_from(
            ["access_token", "token_type", "expires_in", "refresh_token", "scope", "error"]
        ),
        FIELD_VALUES,
    )
    | JSON
)


@settings(max_examples=400, deadline=None)
@given(TOKEN_RESPONSES)
def test_any_json_token_response_is_a_token_or_a_typed_error(doc):
    data = json.dumps(doc).encode()  # NaN and Infinity included, as Python's json writes them
    try:
        token = parse_token_response(200, data, requested_at=REQUESTED_AT)
    except FedbearerError as exc:
        assert INJECTED not in str(exc)
        return
    assert isinstance(token, Token)
    assert REQUESTED_AT <= token.expires_at <= REQUESTED_AT + MAX_TOKEN_LIFETIME
    assert token.token.isascii() and token.token.isprintable() and " " not in token.token


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_from_the_token_endpoint_are_a_token_or_a_typed_error(data):
    for status in (200, 400):
        with contextlib.suppress(FedbearerError):
            parse_token_response(status, data, requested_at=REQUESTED_AT)


YAML_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats()
    | st.text(max_size=30)
    | st.sampled_from([INJECTED, "ok", "eyJ.a.b", "", "0"])
)
YAML_VALUES = st.recursive(
    YAML_SCALARS,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
CACHE_ENTRIES = (
    st.dictionaries(
        st.sampled_from(["token", "expires_at", "refresh_token", "issued_at", "other"]),
        YAML_VALUES,
    )
    | YAML_VALUES
)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(entry=CACHE_ENTRIES)
def test_any_yaml_cache_entry_is_a_token_or_a_miss_with_a_warning(tmp_path, entry):
    path = tmp_path / "credentials.yaml"
    write_cache(path, {"tokens": {"k": entry}})
    cache = FileTokenCache(path)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        token = cache.get("k")
        cache.entries()
        # A write next to it must cope with it too (the entry is dropped or kept, never fatal).
        cache.put("other", Token("fresh", None))
    assert token is None or isinstance(token, Token)
    if token is not None:
        assert token.expires_at is None or math.isfinite(token.expires_at)
        assert "\n" not in token.token and "\r" not in token.token


# ------------------------------------------------------------------ 3. the file loses no data


DOTFILE = b"# my shell settings\nexport PATH=$HOME/bin:$PATH\nalias ll='ls -l'\n"


def linked_cache(tmp_path, target_name: str, content: bytes):
    """A cache at nebius/credentials.yaml that is a symbolic link to dotfiles/<target_name>,
    as people who keep their dotfiles in a repository have it."""
    target = tmp_path / "dotfiles" / target_name
    target.parent.mkdir()
    target.write_bytes(content)
    target.chmod(0o600)
    link = tmp_path / "nebius" / "credentials.yaml"
    link.parent.mkdir()
    link.symlink_to(target)
    return FileTokenCache(link), link, target


@pytest.mark.parametrize(
    "content",
    [DOTFILE, b"editor: vim\ntheme: dark\n", b"- a list\n", b""],
    ids=["shell", "yaml-mapping", "yaml-list", "empty"],
)
def test_a_symlink_to_a_file_that_is_not_a_cache_is_never_written(tmp_path, content):
    cache, link, target = linked_cache(tmp_path, "bashrc", content)
    _, seen = caught(cache.put, "k", Token("secret-token", None))
    assert target.read_bytes() == content
    assert link.is_symlink() and list(tmp_path.glob("**/*.unreadable-*")) == []
    assert len(seen) == 1
    message = str(seen[0].message)
    assert "symbolic link" in message and "not saved" in message
    assert "secret-token" not in message
    assert caught(cache.get, "k")[0] is None


@pytest.mark.parametrize("content", [b"tokens: {}\n", b"tokens:\n  other: {token: t}\n"])
def test_a_symlink_to_a_cache_keeps_working(tmp_path, content):
    cache, link, target = linked_cache(tmp_path, "credentials.yaml", content)
    _, seen = caught(cache.put, "k", Token("tok", None))
    assert seen == [] and link.is_symlink()
    assert cache.get("k").token == "tok"
    assert yaml.safe_load(target.read_bytes())["tokens"]["k"]["token"] == "tok"


# ------------------------------------------------------------------ 5. TLS by default


TOKEN = "cached-token"


def seeded_auth(**kwargs) -> FederationAuth:
    cache = MemoryTokenCache()
    auth = FederationAuth("cid", "https://fed.example", "fid", cache=cache, **kwargs)
    cache.put(auth.bearer.name, Token(TOKEN, None))
    return auth


@responses.activate
@pytest.mark.parametrize(
    ("url", "sent"),
    [
        ("https://api.example/v1", True),
        ("http://api.example/v1", False),
        ("http://api.example:8080/v1", False),
        ("http://127.0.0.1:8080/v1", True),
        ("http://127.5.6.7/v1", True),
        ("http://localhost:9/v1", True),
        ("http://[::1]:8080/v1", True),
    ],
)
def test_without_hosts_the_token_goes_only_over_https_or_to_this_machine(url, sent, caplog):
    responses.get(url, json={})
    session = requests.Session()
    session.auth = seeded_auth()
    caplog.set_level(logging.WARNING, logger="fedbearer")
    for _ in range(3):
        request = session.get(url).request
        assert ("Authorization" in request.headers) is sent
    warned = [r for r in caplog.records if "not sending the token" in r.getMessage()]
    assert len(warned) == (0 if sent else 1)  # once per origin, not per request
    assert TOKEN not in caplog.text


@responses.activate
def test_a_plain_http_host_gets_the_token_when_named_in_hosts():
    responses.get("http://api.internal/v1", json={})
    session = requests.Session()
    session.auth = seeded_auth(hosts=["http://api.internal"])
    request = session.get("http://api.internal/v1").request
    assert request.headers["Authorization"] == "Bearer " + TOKEN


@pytest.mark.parametrize(
    "endpoint", ["http://auth.example.com", "http://10.0.0.5:8080/fed", "HTTP://Auth.Example"]
)
def test_a_plain_http_endpoint_elsewhere_needs_an_explicit_opt_in(endpoint):
    with pytest.raises(ConfigurationError, match="allow_insecure_http=True"):
        FederationAuth("cid", endpoint, "fid")
    auth = FederationAuth("cid", endpoint, "fid", allow_insecure_http=True)
    assert auth.bearer.settings.federation.token_url.startswith("http://")


@pytest.mark.parametrize(
    "endpoint", ["http://127.0.0.1:9000", "http://localhost:9000/fed", "http://[::1]:9000"]
)
def test_a_plain_http_endpoint_on_this_machine_needs_no_opt_in(endpoint):
    FederationAuth("cid", endpoint, "fid")


def test_the_cli_names_its_flag_for_a_plain_http_endpoint(capsys):
    args = ["token", "--client-id", "c", "--federation-endpoint", "http://auth.example.com"]
    assert main([*args, "--federation-id", "f"]) == EXIT_USAGE
    assert "--allow-insecure-http" in capsys.readouterr().err
    code = main([*args, "--federation-id", "f", "--allow-insecure-http", "--non-interactive"])
    assert code == EXIT_INTERACTION_REQUIRED


# ------------------------------------------------------------------ 6. unambiguous keys


@pytest.mark.parametrize(
    ("federation_id", "profile"), [("fed", "A/p"), ("fed/A", "p"), ("", "../x")]
)
def test_a_slash_in_the_federation_id_or_profile_is_a_configuration_error(federation_id, profile):
    with pytest.raises(ConfigurationError, match="contains '/'"):
        FederationAuth("cid", "https://auth.example", federation_id, profile=profile)
    with pytest.raises(ConfigurationError, match="contains '/'"):
        cache_key("https://auth.example", federation_id, profile)


def test_keys_that_used_to_collide_now_cannot_be_built():
    built = set()
    for endpoint, fid, profile in [
        ("https://a.example/fed", "A", "p"),
        ("https://a.example", "fed", "A/p"),
        ("https://a.example", "fed/A", "p"),
    ]:
        with contextlib.suppress(ConfigurationError):
            built.add(cache_key(endpoint, fid, profile))
    assert len(built) == 1


@pytest.mark.parametrize(
    "endpoint", ["https://auth.example/", " https://auth.example", "https://auth.example "]
)
def test_an_endpoint_with_a_stray_slash_or_space_is_warned_about(endpoint):
    with pytest.warns(TokenCacheWarning, match="trailing '/'"):
        FederationAuth("cid", endpoint, "fid")


def test_a_control_character_in_the_key_is_a_configuration_error():
    with pytest.raises(ConfigurationError, match="control characters"):
        FederationAuth("cid", "https://auth.example", "fid", profile="a\nb")


# ------------------------------------------------------------------ 7. bounded cache


def test_a_huge_cache_file_is_a_miss_its_bytes_kept_and_read_only_in_part(tmp_path, monkeypatch):
    path = tmp_path / "credentials.yaml"
    chunk = b"# padding " + b"x" * 1013 + b"\n"
    with open(path, "wb") as fh:
        fh.write(b"tokens:\n  k: {token: ok, expires_at: null}\n")
        for _ in range(50 * 1024):  # 50 MiB
            fh.write(chunk)
    path.chmod(0o600)
    size = path.stat().st_size
    read = [0]
    real_read = os.read

    def counting_read(fd, n):
        data = real_read(fd, n)
        read[0] += len(data)
        return data

    monkeypatch.setattr(os, "read", counting_read)
    cache = FileTokenCache(path)
    result, seen = caught(cache.get, "k")
    assert result is None and len(seen) == 1 and "larger than" in str(seen[0].message)
    assert read[0] <= 2 * 1024 * 1024  # not the 50 MiB
    monkeypatch.setattr(os, "read", real_read)
    assert path.stat().st_size == size

    _, seen = caught(cache.put, "k", Token("fresh", None))
    backups = list(tmp_path.glob("credentials.yaml.unreadable-*"))
    assert len(backups) == 1 and backups[0].stat().st_size == size
    assert cache.get("k").token == "fresh" and path.stat().st_size < 1000


# ------------------------------------------------------------------ 8. challenges, parsed


@pytest.mark.parametrize(
    ("header", "renew"),
    [
        (None, True),
        ("", True),
        ('Bearer realm="api"', True),
        ('Bearer error="invalid_token"', True),
        ('Bearer error="invalid_token", error_description="not insufficient_scope"', True),
        ('Bearer error="invalid_token", error_uri="https://x/insufficient_scope"', True),
        ('Bearer realm="api", error="insufficient_scope", scope="admin"', False),
        ("Bearer error=insufficient_scope", False),
        ('Basic realm="intranet"', False),
        ("Negotiate", False),
        ('Basic realm="a", Bearer error="invalid_token"', True),
        ('Basic realm="a", Bearer error="insufficient_scope"', False),
    ],
)
def test_renewal_is_decided_by_the_parsed_bearer_error(header, renew):
    assert (bearer_error(header) is None) is renew


def test_challenges_follow_the_rfc_9110_grammar():
    header = (
        'Newauth realm="apps", type=1, title="Login to \\"apps\\"", Basic realm="simple", '
        "Negotiate YII=, Bearer error=invalid_token"
    )
    parsed = [(c.scheme, c.params, c.token68) for c in parse_challenges(header)]
    assert parsed == [
        ("newauth", {"realm": "apps", "type": "1", "title": 'Login to "apps"'}, ""),
        ("basic", {"realm": "simple"}, ""),
        ("negotiate", {}, "YII="),
        ("bearer", {"error": "invalid_token"}, ""),
    ]


def test_a_401_mentioning_insufficient_scope_in_its_description_is_renewed(federation):
    with ProtectedAPI(federation.is_valid) as api:
        session = requests.Session()
        session.trust_env = False
        session.auth = make_auth(federation, cache=None)
        session.get(api.url)
        federation.revoke_access_tokens()
        api.challenge = 'Bearer error="invalid_token", error_description="no insufficient_scope"'
        assert session.get(api.url).status_code == 200
    assert federation.refreshes + federation.logins == 2


# ------------------------------------------------------------------ 9. one warning, not per thread


def test_a_fresh_token_refused_under_concurrency_is_warned_about_once(caplog):
    api = "https://api.example/v1"
    fed = "https://fed.example"
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        for _ in range(2):
            add_token_response(rsps, fed, access_token="tok")
        rsps.get(api, status=401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        auth = FederationAuth("cid", fed, "fid", cache=None, opener=CallbackOpener())
        auth.get_token()
        caplog.set_level(logging.WARNING, logger="fedbearer")
        start = threading.Barrier(16)

        def call():
            session = requests.Session()
            session.auth = auth
            start.wait()
            session.get(api)

        threads = [threading.Thread(target=call) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    refused = [r for r in caplog.records if "fresh token too" in r.getMessage()]
    assert len(refused) == 1


# ------------------------------------------------------------------ 4. private files


def test_a_cache_file_others_can_read_is_tightened_before_a_token_goes_in(tmp_path):
    path = tmp_path / "credentials.yaml"
    write_cache(path, {"tokens": {}}, mode=0o644)
    _, seen = caught(FileTokenCache(path).put, "k", Token("tok", None, refresh_token="rt"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(seen) == 1 and "0644" in str(seen[0].message) and str(path) in str(seen[0].message)
