"""Versions of what nestmac hands to other tools: the generator, the manifest format, the hardware interface.

`format_version` changes when the manifest's own structure changes (a key added, renamed or removed);
`interface_version` changes when anything an integrator wires to changes (a port, a width rule, a payload
layout, a handshake or reset rule). tests/hw/test_manifest_snapshot.py holds a committed manifest per version
pair, and CHANGELOG.md must say why each pair exists: the interface cannot drift silently.
"""

from __future__ import annotations

from importlib import metadata

MANIFEST_FORMAT = "nestmac-engine-manifest"
MANIFEST_FORMAT_VERSION = 3
INTERFACE_VERSION = 3


def generator_version() -> str:
    """The installed nestmac's version (the wheel's, or the editable install's)."""
    try:
        return metadata.version("nestmac")
    except metadata.PackageNotFoundError:
        # Run from a bare source tree on PYTHONPATH: there is no installed distribution to ask.
        return "unknown (not installed)"
