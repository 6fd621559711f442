"""Wall time of the whole data stage (load_raw + prepare + writes) on the Magazine ratings CSV.

Usage: ``.venv/bin/python benchmarks/data_stage.py [DATA_DIR]`` where DATA_DIR defaults to
``../shared/data``; prints the seconds taken and the main counts.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from layerkd.config import settings
from layerkd.data.prepare import PrepareParams, prepare_dataset


def main() -> None:
    """Run the stage once and print the timing."""
    root = (
        Path(sys.argv[1])
        if len(sys.argv) > 1
        else Path(__file__).resolve().parents[2] / ("shared/data")
    )
    raw = root / "amazon2018" / "Magazine_Subscriptions"
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        stats = prepare_dataset(
            raw,
            "amazon2018_csv",
            "Magazine_Subscriptions",
            settings(PrepareParams, "data", n_candidates=49),  # the schema's data defaults
            Path(out),
        )
        seconds = time.perf_counter() - start
    print(f"data stage on Magazine_Subscriptions.csv ({stats['raw_rows']} rows): {seconds:.2f} s")
    print(
        f"users {stats['users']}, items {stats['items']}, interactions {stats['interactions']}, "
        f"samples {stats['samples']}, k-core passes {stats['kcore']['kcore_iterations']}"
    )


if __name__ == "__main__":
    main()
