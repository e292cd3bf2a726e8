"""Session fixtures of the golden tests: a trained model (the root conftest's `trained`) on disk and exported."""

from __future__ import annotations

import pytest

from contract.model_files import write_export
from golden.export import build_export
from golden.model import save_checkpoint


@pytest.fixture(scope="session")
def checkpoint_file(trained, training_settings, tmp_path_factory):
    """A truncquant/offset checkpoint on disk, as golden.train writes it."""
    path = tmp_path_factory.mktemp("models") / "truncquant_offset.pt"
    save_checkpoint(trained("truncquant", "offset"), path, training_settings)
    return path


@pytest.fixture(scope="session")
def export_dir(trained, tmp_path_factory):
    """The truncquant/offset model's export directory, as golden.export writes it."""
    path = tmp_path_factory.mktemp("exports") / "truncquant_offset"
    write_export(build_export(trained("truncquant", "offset")), path)
    return path
