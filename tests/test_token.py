"""The Token value object and its expiry rules, with a frozen clock."""

from __future__ import annotations

import pickle
from datetime import datetime, timedelta, timezone

import pytest

from fedbearer import DEFAULT_REFRESH_MARGIN, Token, TokenDataError, _clock

T0 = 1_800_000_000.0


@pytest.fixture
def frozen(monkeypatch):
    now = [T0]
    monkeypatch.setattr(_clock, "now", lambda: now[0])
    return now


def utc(ts):
    return datetime.fromtimestamp(ts, tz=timezone.utc)


def test_repr_and_str_never_show_the_token():
    token = Token("SUPERSECRET", utc(T0), refresh_token="REFRESHSECRET")
    for text in (repr(token), str(token), f"{token}"):
        assert "SUPERSECRET" not in text and "REFRESHSECRET" not in text


def test_naive_expiration_is_rejected():
    with pytest.raises(TokenDataError):
        Token("t", datetime(2030, 1, 1))


def test_expiration_is_normalised_to_utc():
    tz = timezone(timedelta(hours=3))
    token = Token("t", datetime(2030, 1, 1, 3, 0, tzinfo=tz))
    assert token.expiration == datetime(2030, 1, 1, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("remaining", "margin", "expired"),
    [
        (400, 300, False),
        (300, 300, True),
        (299, 300, True),
        (1, 0, False),
        (0, 0, True),
        (-5, 0, True),
        (400, timedelta(minutes=5), False),
    ],
)
def test_is_expired_is_now_at_or_after_expiry_minus_margin(frozen, remaining, margin, expired):
    assert Token("t", utc(T0 + remaining)).is_expired(margin) is expired


def test_margin_is_capped_at_half_the_lifetime(frozen):
    token = Token("t", utc(T0 + 60), issued_at=utc(T0))
    assert not token.is_expired(DEFAULT_REFRESH_MARGIN)
    frozen[0] = T0 + 29
    assert not token.is_expired(DEFAULT_REFRESH_MARGIN)
    frozen[0] = T0 + 30
    assert token.is_expired(DEFAULT_REFRESH_MARGIN)


def test_token_without_expiry_never_expires(frozen):
    frozen[0] = 1e12
    assert not Token("t", None).is_expired()


def test_dict_round_trip_uses_the_reference_form():
    token = Token("t", utc(T0 + 0.7))
    assert token.to_dict() == {"token": "t", "expires_at": int(T0)}
    assert Token.from_dict({"token": "t", "expires_at": int(T0)}).expiration == utc(int(T0))
    assert Token.from_dict({"token": "t", "expires_at": 0}).expiration is None
    assert Token.from_dict({"token": "t", "expires_at": None}).expiration is None
    with_refresh = Token("t", None, refresh_token="r")
    assert Token.from_dict(with_refresh.to_dict()).refresh_token == "r"
    issued = Token("t", utc(T0 + 60), issued_at=utc(T0))
    assert issued.to_dict()["issued_at"] == int(T0)
    assert Token.from_dict(issued.to_dict()).issued_at == utc(int(T0))
    assert Token.from_dict({"token": "t", "expires_at": 5, "issued_at": "x"}).issued_at is None


@pytest.mark.parametrize(
    "data",
    [
        [],
        {},
        {"token": ""},
        {"token": 5},
        {"token": "t", "expires_at": "tomorrow"},
        {"token": "t", "expires_at": True},
        {"token": "t", "expires_at": float("nan")},
        {"token": "t", "expires_at": 10**20},
        {"token": "t", "refresh_token": 3},
    ],
)
def test_from_dict_rejects_wrong_shapes(data):
    with pytest.raises(TokenDataError) as info:
        Token.from_dict(data)
    assert isinstance(info.value, ValueError)


def test_token_is_immutable_and_picklable():
    token = Token("t", utc(T0), refresh_token="r", issued_at=utc(T0 - 10))
    with pytest.raises(AttributeError):
        token.token = "x"  # type: ignore[misc]
    clone = pickle.loads(pickle.dumps(token))
    assert clone == token and clone.issued_at == token.issued_at
