"""Import cost of ``import buttress`` against its own dependencies.

Each sample runs a fresh interpreter: we time ``python -c 'import X'`` end to
end and subtract the bare interpreter start-up measured the same way. Prints medians and the ratio
buttress / (attrs + structlog + tenacity). Aim: at most 1.3x.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

RUNS = 21
CASES = {
    "bare interpreter": "pass",
    "attrs, structlog, tenacity": "import attrs, structlog, tenacity",
    "buttress": "import buttress",
}


def sample(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - start


def main() -> None:
    results: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(RUNS):
        # Interleave the cases so machine noise hits all of them alike.
        for name, code in CASES.items():
            results[name].append(sample(code))
    medians = {name: statistics.median(values) for name, values in results.items()}
    base = medians["bare interpreter"]
    print(f"{'case':<30} {'median ms':>10} {'minus start-up ms':>18}")
    for name, value in medians.items():
        print(f"{name:<30} {value * 1000:>10.1f} {(value - base) * 1000:>18.1f}")
    deps = medians["attrs, structlog, tenacity"] - base
    ours = medians["buttress"] - base
    print(f"\nratio buttress / (attrs+structlog+tenacity): {ours / deps:.2f}x (aim <= 1.3x)")
    probe = "import sys, buttress; print([m for m in ('asyncpg', 'redis') if m in sys.modules])"
    loaded = subprocess.run(
        [sys.executable, "-c", probe],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    print(f"drivers loaded by 'import buttress': {loaded}")


if __name__ == "__main__":
    main()
