"""The constructors' keyword options are spelled once, typed, and checked by name."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from fedbearer import Bearer, FederationAuth

from .conftest import skip_or_fail

CONSTRUCTORS = {
    "__init__": lambda **kw: FederationAuth("c", "auth.example.com", "fed", **kw),
    "from_issuer": lambda **kw: FederationAuth.from_issuer("https://i.example", "c", **kw),
    "from_endpoints": lambda **kw: FederationAuth.from_endpoints(
        "c",
        authorization_endpoint="https://i.example/a",
        token_endpoint="https://i.example/t",
        **kw,
    ),
    "from_profile": lambda **kw: FederationAuth.from_profile("p", **kw),
    "from_nebius_profile": lambda **kw: FederationAuth.from_nebius_profile(
        "p", client_id="c", **kw
    ),
    "from_bearer": lambda **kw: FederationAuth.from_bearer(
        Bearer("p", "c", "auth.example.com", "fed"), **kw
    ),
}


@pytest.mark.parametrize("method", CONSTRUCTORS)
def test_a_misspelt_option_names_the_method_called_and_the_option_meant(method):
    # Checked before any file is read: from_profile and from_nebius_profile fail here even
    # though no profile "p" exists.
    with pytest.raises(TypeError) as info:
        CONSTRUCTORS[method](refresh_margn=5)
    assert str(info.value) == (
        f"FederationAuth.{method}() got an unexpected keyword argument 'refresh_margn'; "
        "did you mean 'refresh_margin'?"
    )


def test_from_issuer_says_scopes_for_scope():
    with pytest.raises(TypeError, match=r"from_issuer\(\).*'scope'; did you mean 'scopes'"):
        FederationAuth.from_issuer("https://i.example", "c", scope="openid")  # type: ignore[call-arg]


def test_every_constructor_takes_the_same_options():
    auth = CONSTRUCTORS["from_issuer"](
        cache=None, hosts=["api.example.com"], refresh_margin=7, timeout=9, preflight=False
    )
    assert auth.refresh_margin == 7 and auth.hosts == frozenset({"https://api.example.com:443"})
    assert auth.bearer.settings.timeout == 9 and not auth.bearer.settings.preflight


GOOD = """
    from fedbearer import FederationAuth

    FederationAuth.from_issuer("https://i.example", "c", scopes=["openid"], timeout=5.0)
    FederationAuth("c", "auth.example.com", "fed", hosts=["api.example.com"], cache=None)
    FederationAuth.from_profile("work", refresh_margin=30, interactive=False)
"""
BAD = """
    from fedbearer import FederationAuth

    FederationAuth.from_issuer("https://i.example", "c", scope="openid")
    FederationAuth("c", "auth.example.com", "fed", timeout="soon")
    FederationAuth.from_profile("work", refresh_margn=30)
"""


def _mypy(tmp_path: Path, source: str) -> tuple[str, int]:
    try:
        from mypy import api
    except ImportError:  # pragma: no cover - mypy is in the test extra
        skip_or_fail("mypy is not installed")
    snippet = tmp_path / "snippet.py"
    snippet.write_text(textwrap.dedent(source))
    stdout, stderr, status = api.run(
        [
            "--strict",
            "--follow-imports=silent",
            "--no-incremental",
            f"--python-version={sys.version_info[0]}.{sys.version_info[1]}",
            str(snippet),
        ]
    )
    return stdout + stderr, status


def test_type_checkers_see_the_options(tmp_path):
    output, status = _mypy(tmp_path, GOOD)
    assert status == 0, output
    output, status = _mypy(tmp_path, BAD)
    assert 'Unexpected keyword argument "scope"' in output, output
    assert 'Argument "timeout"' in output and "incompatible type" in output, output
    assert 'Unexpected keyword argument "refresh_margn"' in output, output
    assert output.count("error:") == 3, output
