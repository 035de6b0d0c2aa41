"""Cold-start latency of the `siamese` CLI: `--help` and `verify` against a bare `import torch`.

Each command runs N times in a fresh interpreter and the median wall time is reported, with the
two ratios the CLI is held to: `siamese --help` against 0.5 s, and `siamese verify` against a
bare `python -c "import torch"` (target: at most 1.5x).

Usage:
    python benchmarks/cli_latency.py IMAGE_A IMAGE_B --model runs/<run> [--runs 5]

It trains nothing: pass an existing run directory (e.g. from `siamese train`) and two images.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HELP_BUDGET_S = 0.5
VERIFY_RATIO_BUDGET = 1.5


def siamese_executable() -> list[str]:
    """The `siamese` console script of this interpreter's environment."""
    beside = Path(sys.executable).parent / "siamese"
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("siamese")
    if found is None:
        sys.exit("cannot find the `siamese` command; install the package (pip install -e .)")
    return [found]


def seconds(cmd: list[str]) -> float:
    """Wall time of one fresh execution of `cmd` (which must succeed)."""
    start = time.perf_counter()
    done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip()}")
    return elapsed


def median_seconds(commands: dict[str, list[str]], runs: int) -> dict[str, float]:
    """Median wall time per command; rounds interleave the commands so load drifts hit all alike."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, cmd in commands.items():
            times[name].append(seconds(cmd))
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("image_a", type=Path, help="first image for `siamese verify`")
    parser.add_argument("image_b", type=Path, help="second image for `siamese verify`")
    parser.add_argument("--model", type=Path, required=True, help="trained run directory or checkpoint")
    parser.add_argument("--runs", type=int, default=5, help="cold runs per command (median reported)")
    args = parser.parse_args()

    siamese = siamese_executable()
    commands = {
        "python -c 'import torch'": [sys.executable, "-c", "import torch"],
        "siamese --help": [*siamese, "--help"],
        "siamese verify": [
            *siamese,
            "verify",
            str(args.image_a),
            str(args.image_b),
            "--model",
            str(args.model),
        ],
    }
    medians = median_seconds(commands, args.runs)
    for name, median in medians.items():
        print(f"{name:26s} median of {args.runs}: {median:.3f} s")
    torch_s, help_s, verify_s = medians.values()
    print(f"{f'help / {HELP_BUDGET_S} s':26s} ratio:        {help_s / HELP_BUDGET_S:.2f}  (<= 1 passes)")
    ratio = verify_s / torch_s
    print(f"{'verify / import torch':26s} ratio:        {ratio:.2f}  (<= {VERIFY_RATIO_BUDGET} passes)")


if __name__ == "__main__":
    main()
