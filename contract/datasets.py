"""The data sets' names, their pixel scales and the command-line flags that choose one, shared by every CLI
that reads data.

Here rather than in golden.data so that a CLI can parse (and refuse) its arguments, and the export format can
record the input scale of a model's data set, without importing torch.
"""

from __future__ import annotations

from contract.cli import Parser, number

#: The user's own data sets (golden.user_data), read from the path given with --data-dir: `npz`, NumPy arrays
#: (x [N, C, H, W] uint8, y [N] labels); `folder`, one sub-folder of PNG/JPEG images per class.
USER_DATASETS = ("npz", "folder")
DATASETS = ("digits", "fashion-mnist", *USER_DATASETS)
#: What a pixel is divided by to bring it into [0, 1] before it becomes an activation code: the digits are
#: integers 0..16, the other data sets' are bytes. An export records its data set's scale (model.json "input").
PIXEL_MAX = {"digits": 16, "fashion-mnist": 255, "npz": 255, "folder": 255}
#: The data sets read from --data-dir (Fashion-MNIST only where its package is not installed).
DIRECTORY_DATASETS = ("fashion-mnist", *USER_DATASETS)
#: The data set of a model whose checkpoint or export records none (trained before the record existed).
FALLBACK_DATASET = "digits"
MAX_LIMIT = 1 << 30


def add_data_arguments(
    parser: Parser,
    limit_help: str = "use only the first N images of each half",
    limit_aliases: tuple[str, ...] = (),
    *,
    reads_model: bool = True,
    datasets: tuple[str, ...] = DATASETS,
) -> None:
    """--data, --data-dir and --limit (also spelt as `limit_aliases`, for a tool's older flag name); `datasets`:
    the data sets a tool has recipes for, if not all.

    For a tool that reads a trained model (`reads_model`), --data defaults to the data set the model records,
    resolved by `chosen_dataset` once the model is loaded; a tool that trains from scratch defaults to digits."""
    if reads_model:
        default, data_help = None, f"data set (default: the model's own, as recorded; {FALLBACK_DATASET} if none)"
    else:
        default, data_help = FALLBACK_DATASET, "data set"
    parser.add_argument("--data", choices=datasets, default=default, help=data_help)
    parser.add_argument(
        "--data-dir",
        metavar="PATH",
        help="fashion-mnist: directory of the idx files (default: the Debian package's directory); npz: a .npz "
        "file (split 80/20 here) or a directory holding train.npz and test.npz; folder: a directory of class "
        "sub-folders (split 80/20 here) or one holding train/ and test/ of them (needed for npz and folder)",
    )
    parser.add_argument(
        "--limit",
        *limit_aliases,
        dest="limit",
        type=number(int, 1, MAX_LIMIT),
        metavar="N",
        help=f"{limit_help} (default: all)",
    )


def chosen_dataset(given: str | None, recorded: str | None) -> str:
    """The data set a run uses: the one given with --data, else the one the model was trained on."""
    return given or recorded or FALLBACK_DATASET
