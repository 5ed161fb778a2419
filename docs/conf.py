"""Sphinx configuration for fedbearer's documentation.

Build (warnings are errors, as in CI)::

    pip install -e '.[docs]'
    sphinx-build -n -W -b html docs docs/_build/html

The build needs no network: there is no intersphinx mapping (the CI machines have no
internet access), so references to the Python standard library or to ``requests`` are
written as plain text or ``:rfc:`` links, never as cross-project references.
"""

from __future__ import annotations

import os
import sys

# Document the checkout itself, installed or not.
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

import fedbearer

project = "fedbearer"
author = "fedbearer contributors"
copyright = "fedbearer contributors"
release = fedbearer.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
]

# No intersphinx: it downloads objects.inv files at build time, and the build must work
# offline.

# `sphinx-build -n` (nitpicky) must be clean. Without intersphinx, names from the standard
# library and other projects in signatures cannot resolve; nor can the private type aliases
# and modules that annotations mention (``Verify``, ``fedbearer._credentials.Options``).
# Those are ignored; every other reference must resolve.
nitpick_ignore_regex = [
    (
        r"py:(class|mod|obj|data|func|meth)",
        r"(datetime|collections\.abc|contextlib|os|asyncio|select|ssl|threading|typing|typing_extensions|urllib|webbrowser|requests)(\..*)?",
    ),
    (r"py:(class|obj)", r"(responses\.)?(RequestsMock|BaseResponse)|KeyringBackend"),
    (r"py:(class|obj|data)", r"Verify|Opener|Seconds|CacheSetting"),
    (r"py:(class|obj|data)", r"fedbearer(\.[a-z]+)*\._[a-z_]+\.[A-Za-z_]+"),
]

root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
language = "en"
nitpicky = False

# -- autodoc ----------------------------------------------------------------------------

autodoc_member_order = "bysource"
# Show defaults as written (``timeout=DEFAULT_LOGIN_TIMEOUT``, ``timeout=_UNSET``) rather
# than their values: the names are the documented constants.
autodoc_preserve_defaults = True
autodoc_typehints = "signature"
autodoc_default_options = {
    "member-order": "bysource",
}

# -- HTML -------------------------------------------------------------------------------

html_theme = "furo"
html_title = f"fedbearer {release}"
html_show_sourcelink = False


# -- constants re-exported from private modules ------------------------------------------


def _constant_doc(app, what, name, obj, options, lines):
    """Give ``fedbearer.DEFAULT_*`` the ``#:`` comment written where it is defined.

    autodoc looks for a constant's doc comment in the module it is documented under
    (``fedbearer``), finds none (they live in ``fedbearer._token`` and friends) and falls
    back to the docstring of ``float``. Take the comment from the defining module instead.
    """
    if what != "data" or not name.startswith("fedbearer."):
        return
    from sphinx.errors import PycodeError
    from sphinx.pycode import ModuleAnalyzer

    short = name.rpartition(".")[2]
    for modname in sorted(m for m in sys.modules if m.startswith("fedbearer._")):
        try:
            analyzer = ModuleAnalyzer.for_module(modname)
            analyzer.analyze()
        except PycodeError:  # a module without source: look in the others
            continue
        doc = analyzer.attr_docs.get(("", short))
        if doc:
            lines[:] = [*doc]
            return


def setup(app):
    app.connect("autodoc-process-docstring", _constant_doc)
    return {"parallel_read_safe": True}
