"""The unit suite on the oldest and the newest Python that setup.cfg claims (``nox``).

::

    nox                            # tests-3.9 and tests-3.13, as .ci/run does
    nox -s tests-3.13 -- -k cache  # arguments after -- go to pytest

The README's test command runs the whole suite on the default Python; these sessions run it
again on 3.9 and 3.13 without the tests marked ``browser`` or ``interop`` (a real Chromium
and the node OpenID provider). Those drive the same fedbearer code through a browser and a
second provider, not through other Python versions, and they would add two minutes to every
CI run. nox finds an interpreter as ``python3.9`` / ``python3.13`` on ``PATH`` and never
downloads one; .ci/run puts pyenv's there when no other is. The session's virtual
environment is made and filled by uv when uv is installed (.ci/run installs it), by venv and
pip otherwise.

The ``nebius`` SDK, the reference that the cache and profile compatibility tests compare
with, needs Python >= 3.10 (setup.cfg installs it only there), so on 3.9 the tests that
import it are left out by name below, and the session says so, rather than skipped (under
``CI=true`` nothing may skip).

On 3.9 the session also type-checks fedbearer against 3.9's standard library
(``mypy --python-version 3.9``), which the mypy in the main environment can no longer do.
"""

from __future__ import annotations

import nox

OLDEST, NEWEST = "3.9", "3.13"

nox.options.sessions = ["tests"]
nox.options.default_venv_backend = "uv|venv"  # uv installs in seconds; venv without it
nox.options.download_python = "never"

# Everything that imports nebius, for Pythons it does not install on.
NEEDS_NEBIUS = [
    "--ignore=tests/test_cache_interop.py",
    "--ignore=tests/interop/test_cache_processes.py",
    "--deselect=tests/test_nebius_config.py::"
    "test_agrees_with_the_nebius_sdk_on_which_profile_is_chosen",
]


@nox.session(python=[OLDEST, NEWEST])
def tests(session: nox.Session) -> None:
    """The suite without the browser and interop markers."""
    session.install("-e", ".[test]")
    args = ["-m", "not browser and not interop"]
    if session.python == OLDEST:
        session.log("nebius needs Python >= 3.10; not run here: " + " ".join(NEEDS_NEBIUS))
        args += NEEDS_NEBIUS
    session.run("python", "-m", "pytest", *args, *session.posargs)
    if session.python == OLDEST and not session.posargs:
        # pyproject.toml has mypy check as 3.10 (mypy 2 knows no older Python); the mypy
        # that installs on 3.9 still checks against 3.9's standard library.
        session.run("mypy", "--python-version", OLDEST, "fedbearer")
