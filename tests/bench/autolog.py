"""What autologging adds to a training call (part of ``make bench``): the wall time of
a small scikit-learn fit (``LogisticRegression`` on 150 rows of 4 features, a new
sample each fit) without hooks, with ``registry.sklearn.autolog()`` on a fresh SQLite
ledger (a run, its params, training accuracy, the training data as a dataset version,
the pickled model as a model version), and inside ``@registry.track``. Fits alternate
between the setups, so the machine's load falls on each alike; the figures are
medians. The target is at most 5 ms of overhead per fit.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.bench.harness import fresh, load_average, write_result

FITS = 200


def measure(fits: int = FITS) -> dict[str, Any]:
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    import registry
    import registry.sklearn

    rng = np.random.default_rng(0)
    samples = [(rng.normal(size=(150, 4)), rng.integers(0, 3, 150)) for _ in range(fits)]
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        os.chdir(work)  # the artifacts folder, .mlledger/artifacts, is made here
        reg = registry.connect(fresh(work, "autolog"), project="bench")

        @registry.track(job="bench-track", exclude=["x", "y"])
        def tracked(x: Any, y: Any) -> Any:
            return LogisticRegression().fit(x, y)

        plain: list[float] = []
        logged: list[float] = []
        in_track: list[float] = []
        LogisticRegression().fit(*samples[0])  # imports and caches warmed
        for x, y in samples:
            started = time.perf_counter()
            LogisticRegression().fit(x, y)
            plain.append(time.perf_counter() - started)
            registry.sklearn.autolog(registry=reg)
            started = time.perf_counter()
            LogisticRegression().fit(x, y)
            logged.append(time.perf_counter() - started)
            started = time.perf_counter()
            tracked(x, y)
            in_track.append(time.perf_counter() - started)
            registry.sklearn.autolog(disable=True)
        reg.close()
    base = statistics.median(plain)
    return {
        "fits": fits,
        "fit_ms": round(base * 1000, 3),
        "autolog_fit_ms": round(statistics.median(logged) * 1000, 3),
        "autolog_overhead_ms": round((statistics.median(logged) - base) * 1000, 3),
        "track_with_autolog_fit_ms": round(statistics.median(in_track) * 1000, 3),
        "track_with_autolog_overhead_ms": round((statistics.median(in_track) - base) * 1000, 3),
        "target_overhead_ms": 5.0,
        "load_average": load_average(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="where to write the JSON")
    parser.add_argument("--fits", type=int, default=FITS, help=f"fits per setup ({FITS})")
    args = parser.parse_args()
    write_result(args.out, measure(args.fits))


if __name__ == "__main__":
    main()
