"""The hardware contract cannot drift silently: the manifest of one small engine is committed per version pair.

`manifest.json` is what an integrator wires to. Any change to it (a port, a width, a payload field, a
parameter) must come with a new `interface_version` (or `format_version`, for the manifest's own structure)
in contract/versions.py and a CHANGELOG.md entry saying why. The snapshot for the current version pair is
compared exactly; a snapshot is never overwritten, only added for a new pair:
`NESTMAC_UPDATE_SNAPSHOT=1 pytest tests/hw/test_manifest_snapshot.py` writes a missing one.
"""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path

import pytest

from contract.config import EngineConfig
from contract.versions import INTERFACE_VERSION, MANIFEST_FORMAT_VERSION
from hw.generate import generate

SNAPSHOTS = Path(__file__).parent / "snapshots"
CHANGELOG = Path(__file__).parents[2] / "CHANGELOG.md"
# Small enough to elaborate in a second, with every field width different from its neighbours'.
CONFIG = EngineConfig(rows=2, cols=3, base_bits=4, act_bits=5, acc_bits=20, max_m=8, max_k=16, max_n=24)


def snapshot_path(format_version: int, interface_version: int) -> Path:
    return SNAPSHOTS / f"manifest-format{format_version}-interface{interface_version}.json"


@pytest.fixture(scope="module")
def current_manifest(tmp_path_factory) -> dict:
    """The generated manifest.json without the generator's version, which changes with every release by design."""
    manifest = json.loads(generate(CONFIG, tmp_path_factory.mktemp("gen") / "gen").manifest.read_text())
    del manifest["generator"]["version"]
    return manifest


def test_the_manifest_equals_the_snapshot_of_its_version_pair(current_manifest):
    path = snapshot_path(MANIFEST_FORMAT_VERSION, INTERFACE_VERSION)
    manifest = current_manifest
    if not path.exists() and os.environ.get("NESTMAC_UPDATE_SNAPSHOT") == "1":
        path.write_text(json.dumps(manifest, indent=2) + "\n")
    assert path.exists(), (
        f"no manifest snapshot for format {MANIFEST_FORMAT_VERSION}, interface {INTERFACE_VERSION}: add a CHANGELOG.md "
        f"entry and run NESTMAC_UPDATE_SNAPSHOT=1 pytest {Path(__file__).name}"
    )
    want = json.loads(path.read_text())
    if manifest != want:
        diff = difflib.unified_diff(
            json.dumps(want, indent=2).splitlines(), json.dumps(manifest, indent=2).splitlines(), lineterm=""
        )
        pytest.fail(
            f"the manifest drifted from {path.name} without a version change: bump interface_version (or "
            f"format_version) in contract/versions.py and say why in CHANGELOG.md\n" + "\n".join(list(diff)[:60])
        )


def test_every_snapshot_is_named_by_the_versions_it_holds():
    snapshots = sorted(SNAPSHOTS.glob("manifest-*.json"))
    assert snapshots, "no manifest snapshots committed"
    for path in snapshots:
        manifest = json.loads(path.read_text())
        assert path == snapshot_path(manifest["format_version"], manifest["interface_version"])


def test_the_changelog_explains_the_current_versions():
    text = CHANGELOG.read_text()
    for key, value in (("format_version", MANIFEST_FORMAT_VERSION), ("interface_version", INTERFACE_VERSION)):
        assert f"`{key}` {value}" in text, f"CHANGELOG.md says nothing of manifest {key} {value}"
