"""Where generated files go: one root for every tool, so nothing is tied to the source tree.

The root is `$NESTMAC_BUILD` when it is set, else `build/` under the current directory, which is the
source tree's git-ignored `build/` for a developer and a directory of the user's choosing for an installed
wheel.
"""

from __future__ import annotations

import os
from pathlib import Path

BUILD_ENV = "NESTMAC_BUILD"


def build_dir(*parts: str) -> Path:
    """`build_dir("gen")` -> $NESTMAC_BUILD/gen, or build/gen relative to the working directory."""
    return Path(os.environ.get(BUILD_ENV) or "build").joinpath(*parts)
