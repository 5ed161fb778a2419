"""The command line's smaller promises (issue #21, finding 8) and kubectl's exec credential:
a first ``fedbearer token`` says to log in, ``status`` on a fresh home names both files,
options only as spelt with a suggestion for a misspelt one, ``--version`` agreeing with
CHANGELOG.md, and ``token --format exec-credential``.

Each command runs in-process through ``main`` on the temporary HOME conftest gives every
test; logins are real, through ``$BROWSER`` and a local federation.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest
from packaging.version import Version

from fedbearer import __version__
from fedbearer._cli import EXIT_OK, EXIT_USAGE, main

pytestmark = [pytest.mark.fedbearer_real, pytest.mark.timeout(60)]

ROOT = Path(__file__).resolve().parent.parent


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line(text: str) -> str:
    return " ".join(text.split())


def nebius_flags(fed) -> list[str]:
    return [
        "--client-id",
        fed.client_id,
        "--federation-endpoint",
        fed.endpoint,
        "--federation-id",
        fed.federation_id,
    ]


def test_token_before_any_login_says_to_run_fedbearer_login(capsys):
    code, out, err = run(capsys, "token")
    assert code == EXIT_USAGE and out == ""
    assert "run 'fedbearer login'" in one_line(err)
    assert "--issuer URL" in err and "--federation-endpoint URL" in err


def test_status_on_a_fresh_home_names_both_token_files(capsys, isolated_env):
    code, out, _ = run(capsys, "status")
    assert code == EXIT_OK
    text = one_line(out)
    assert str(isolated_env / ".nebius" / "credentials.yaml") in text
    assert str(isolated_env / ".cache" / "fedbearer" / "tokens.yaml") in text


@pytest.mark.parametrize(
    ("argv", "meant"),
    [
        (["status", "--formt", "json"], "--format"),
        (["token", "--client-id=x", "--isuer", "https://a.example"], "--issuer"),
        (["--debg", "status"], "--debug"),
    ],
)
def test_a_misspelt_option_gets_a_suggestion(argv, meant, capsys):
    code, out, err = run(capsys, *argv)
    assert code == EXIT_USAGE and out == ""
    assert f"did you mean {meant}?" in err
    assert err.count("\n") == 1


def test_an_option_prefix_is_not_taken_for_the_option(capsys):
    """``--client`` used to be taken for ``--client-id``: a prefix that works today breaks
    the day another option starts the same way."""
    code, _, err = run(capsys, "status", "--client", "x")
    assert code == EXIT_USAGE
    assert "unrecognized arguments: --client x" in err
    assert "did you mean --client-id?" in err
    assert err.startswith("fedbearer status: error:")


def test_version_and_changelog_agree_about_what_is_released(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == EXIT_OK and out.strip() == f"fedbearer {__version__}"
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    released = [Version(v) for v in re.findall(r"^## \[(\d[^\]]*)\]", changelog, re.M)]
    unreleased = changelog.split("## [Unreleased]", 1)[1].split("\n## [", 1)[0]
    version = Version(__version__)
    assert released, "CHANGELOG.md names no release"
    if re.search(r"^- ", unreleased, re.M):
        # Changes not yet released: this is a development version after the last release.
        assert version.is_devrelease or version.is_prerelease
        assert version > max(released)
    else:
        assert version == max(released)


def test_token_prints_a_kubernetes_exec_credential(federation, browser_command, capsys):
    code, out, err = run(capsys, "token", "--format", "exec-credential", *nebius_flags(federation))
    assert code == EXIT_OK
    credential = json.loads(out)
    assert credential["apiVersion"] == "client.authentication.k8s.io/v1"
    assert credential["kind"] == "ExecCredential"
    status = credential["status"]
    assert federation.is_valid(status["token"])
    stamp = status["expirationTimestamp"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", stamp)
    expires = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    assert 3000 < (expires - datetime.now(timezone.utc)).total_seconds() <= 3600
    assert set(credential) == {"apiVersion", "kind", "status"}
    assert status["token"] not in err
