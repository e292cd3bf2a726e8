"""The data sets' names and the command-line flags that choose one, shared by every CLI that reads data.

Here rather than in golden.data so that a CLI can parse (and refuse) its arguments without importing torch.
"""

from __future__ import annotations

from contract.cli import Parser, number

DATASETS = ("digits", "fashion-mnist")
MAX_LIMIT = 1 << 30


def add_data_arguments(
    parser: Parser, limit_help: str = "use only the first N images of each half", limit_aliases: tuple[str, ...] = ()
) -> None:
    """--data, --data-dir and --limit (also spelt as `limit_aliases`, for a tool's older flag name)."""
    parser.add_argument("--data", choices=DATASETS, default="digits", help="data set (default digits)")
    parser.add_argument(
        "--data-dir", help="directory of the Fashion-MNIST idx files (default: the Debian package's directory)"
    )
    parser.add_argument(
        "--limit", *limit_aliases, dest="limit", type=number(int, 1, MAX_LIMIT), metavar="N", help=limit_help
    )
