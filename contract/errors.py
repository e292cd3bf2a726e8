"""The one root of every error nestmac reports to a user, so each CLI catches one class and prints one line.

A tool never lets one of these escape as a traceback: `contract.cli.run_main` turns any NestmacError into
`error: <message>` and exit status 2. Subclasses say where the fault lies (a parameter outside the numerics
contract, a bad file or flag, a failed external tool); anything else that escapes is a bug in nestmac.
"""

from __future__ import annotations


class NestmacError(Exception):
    """Anything a command-line tool reports as one `error:` line with exit status 2."""
