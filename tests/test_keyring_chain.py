"""No plaintext through the keyring, ever (issue 19, finding 4): keyring's ``ChainerBackend``
with keyrings.alt's real plaintext-file backend in it.

When more than one keyring backend is installed (Debian and Ubuntu ship
``python3-keyrings.alt``), the keyring library chooses its chain, which writes to the first
backend that takes the write: keyrings.alt's ``PlaintextKeyring`` when nothing better is
there. KeyringTokenCache looks inside the chain and uses only a backend that can hold tokens.
The same with a real Secret Service in the chain is in ``test_keyring_secret_service.py``.
"""

from __future__ import annotations

import base64
import configparser
import io
import json
import warnings
from pathlib import Path
from typing import Any

import keyring.backends.chainer
import keyring.core
import pytest

from fedbearer import FederationAuth, KeyringTokenCache, TokenCacheWarning
from fedbearer.testing import LocalFederation, ProgrammaticBrowser

from .conftest import import_or_fail
from .keyring_backends import MemoryKeyring
from .test_keyring import KEY, SERVICE, tok

keyrings_alt_file = import_or_fail("keyrings.alt.file")


class Chain(keyring.backends.chainer.ChainerBackend):
    """keyring's own chain, over the backends given, in that order (the library's chains
    every installed backend, highest priority first)."""

    def __init__(self, *backends: Any) -> None:
        super().__init__()
        self._chained = list(backends)

    @property  # type: ignore[override]
    def backends(self) -> list[Any]:
        return self._chained


@pytest.fixture
def plaintext(tmp_path: Path) -> Any:
    """keyrings.alt's real plaintext-file backend, its file in the test's directory."""
    backend = keyrings_alt_file.PlaintextKeyring()
    backend.file_path = str(tmp_path / "python_keyring" / "keyring_pass.cfg")
    return backend


def file_values(backend: Any) -> list[str]:
    """Every value in the backend's file, decoded as it stores them (base64, no cipher)."""
    path = Path(backend.file_path)
    if not path.exists():
        return []
    parser = configparser.RawConfigParser()
    parser.read(path)
    return [
        base64.b64decode(value).decode("utf-8", "replace")
        for section in parser.sections()
        for _, value in parser.items(section)
    ]


def in_file(backend: Any, *secrets: str) -> bool:
    values = file_values(backend)
    return any(secret and secret in value for secret in secrets for value in values)


def test_the_plaintext_backend_is_real_and_would_keep_the_token(plaintext):
    """What the tests below guard against: the chain alone writes the token to the file."""
    token = tok()
    Chain(plaintext, MemoryKeyring()).set_password(SERVICE, KEY, token.token)
    assert in_file(plaintext, token.token)


@pytest.mark.parametrize("chosen_by", ["keyring", "backend="])
def test_a_chain_with_only_a_plaintext_backend_stores_nothing_and_warns(
    monkeypatch, tmp_path, plaintext, chosen_by
):
    chain = Chain(plaintext)
    if chosen_by == "keyring":
        monkeypatch.setattr(keyring.core, "_keyring_backend", chain)
        cache = KeyringTokenCache(lock_dir=tmp_path / "locks")
    else:
        cache = KeyringTokenCache(backend=chain, lock_dir=tmp_path / "locks")
    token = tok()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        cache.put(KEY, token)
        got = cache.get(KEY)
    assert got is None
    assert not in_file(plaintext, token.token, token.refresh_token or "")
    messages = [str(w.message) for w in seen if issubclass(w.category, TokenCacheWarning)]
    assert messages and all("keeps secrets safe" in m for m in messages)
    assert "PlaintextKeyring" in messages[0] and "never falls back to plaintext" in messages[0]


@pytest.mark.parametrize("order", ["plaintext first", "plaintext last"])
def test_a_chain_writes_only_to_the_backend_that_can_hold_tokens(
    monkeypatch, tmp_path, plaintext, order
):
    safe = MemoryKeyring()
    chain = Chain(plaintext, safe) if order == "plaintext first" else Chain(safe, plaintext)
    monkeypatch.setattr(keyring.core, "_keyring_backend", chain)
    cache = KeyringTokenCache(lock_dir=tmp_path / "locks")
    token = tok()
    with warnings.catch_warnings():
        warnings.simplefilter("error", TokenCacheWarning)
        cache.put(KEY, token)
        assert KeyringTokenCache(lock_dir=tmp_path / "locks").get(KEY) == token
    assert (SERVICE, KEY) in safe.secrets
    assert not in_file(plaintext, token.token, token.refresh_token or "")


class EncryptedKeyring(MemoryKeyring):
    """Named and placed like keyrings.alt's password-file backend, which asks for its
    password on the terminal (the real one needs pycryptodome to be constructed)."""


EncryptedKeyring.__module__ = "keyrings.alt.file"


def test_a_chain_of_a_prompting_and_a_plaintext_backend_is_refused(
    monkeypatch, tmp_path, plaintext
):
    prompting = EncryptedKeyring()
    monkeypatch.setattr(keyring.core, "_keyring_backend", Chain(prompting, plaintext))
    cache = KeyringTokenCache(lock_dir=tmp_path / "locks")
    with pytest.warns(TokenCacheWarning, match="keeps secrets safe"):
        cache.put(KEY, tok())
    assert prompting.calls == [] and not Path(plaintext.file_path).exists()


def test_a_login_through_a_plaintext_chain_goes_on_and_leaves_no_token_in_any_file(
    monkeypatch, tmp_path, plaintext, isolated_env
):
    monkeypatch.setattr(keyring.core, "_keyring_backend", Chain(plaintext))
    with LocalFederation() as fed:
        auth = FederationAuth(
            fed.client_id,
            fed.endpoint,
            fed.federation_id or "",
            opener=ProgrammaticBrowser(),
            writer=io.StringIO(),
            cache=KeyringTokenCache(lock_dir=tmp_path / "locks"),
        )
        with pytest.warns(TokenCacheWarning, match="keeps secrets safe"):
            token = auth.get_token()
        assert fed.logins == 1
    assert not in_file(plaintext, token.token, token.refresh_token or "")
    secrets = [token.token.encode(), (token.refresh_token or "").encode()]
    for folder in (tmp_path, Path(isolated_env)):
        for path in folder.rglob("*"):
            if path.is_file() and not path.is_symlink():
                assert not any(secret in path.read_bytes() for secret in secrets), path


def test_a_plain_file_backend_given_by_itself_is_still_a_deliberate_choice(tmp_path, plaintext):
    token = tok()
    cache = KeyringTokenCache(backend=plaintext, lock_dir=tmp_path / "locks")
    cache.put(KEY, token)
    assert cache.get(KEY) == token and in_file(plaintext, token.token)


def test_keyrings_alt_s_own_choice_is_refused_too(monkeypatch, tmp_path, plaintext):
    monkeypatch.setattr(keyring.core, "_keyring_backend", plaintext)
    with pytest.warns(TokenCacheWarning, match="plain file"):
        KeyringTokenCache(lock_dir=tmp_path / "locks").put(KEY, tok())
    assert not Path(plaintext.file_path).exists()


def test_a_token_planted_in_the_chain_s_plaintext_file_is_never_read(
    monkeypatch, tmp_path, plaintext
):
    planted = tok()
    plaintext.set_password(SERVICE, KEY, json.dumps(planted.to_dict()))
    monkeypatch.setattr(keyring.core, "_keyring_backend", Chain(plaintext, MemoryKeyring()))
    assert KeyringTokenCache(lock_dir=tmp_path / "locks").get(KEY) is None
