"""The confirmation's sequential rule on simulated confirmations: error rate, coverage, power and seeds spent.

Each simulated confirmation has 3 candidates whose per-seed paired difference to the plain backbone is
``effect + spread * e``, e drawn from one of ``search.confirm.sequential.DRAWS`` (normal; bimodal: a seed learns or
stays at chance; right- and left-skewed: now and then a large jump or drop). The rule is the default design
(resolution 0.01, 3 to 10 seeds, looks at 3, 5, 8, 10). Printed per case: how often some candidate is called
``better`` / ``worse``, how often every interval covers the truth, the mean seeds per confirmation, and how often the
resolution (not the cap) stopped it. Pure Python; no training.

    python -m benchmarks.sequential_rule [--runs 1000] [--quick]
"""

from __future__ import annotations

import argparse
import datetime
from collections.abc import Sequence

from search.confirm.sequential import DRAWS, SequentialDesign, simulate


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1000, help="simulated confirmations per case (default 1000)")
    parser.add_argument("--quick", action="store_true", help="50 runs per case (figures rough)")
    args = parser.parse_args(argv)
    runs = 50 if args.quick else args.runs
    design = SequentialDesign()
    print(f"Command: `python -m benchmarks.sequential_rule{' --quick' if args.quick else f' --runs {runs}'}`  \n"
          f"Date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}; design: resolution "
          f"{design.resolution}, seeds {design.min_seeds}..{design.max_seeds}, looks {design.looks}, alpha "
          f"{design.alpha}, 3 candidates, {runs} confirmations per case\n")
    print("| outcomes | seed spread of d | true difference | better | worse | all covered | mean seeds | "
          "stopped on resolution |\n|---|---|---|---|---|---|---|---|")
    figures = {}
    for draw in DRAWS:
        for spread in (0.004, 0.01, 0.02):
            for effect in (0.0, 2 * design.resolution):
                r = simulate(design=design, effect=effect, spread=spread, draw=draw, runs=runs, seed=7)
                figures[f"{draw}/{spread}/{effect}/better"] = r.better
                print(f"| {draw} | {spread} | {effect:+.2f} | {r.better:.3f} | {r.worse:.3f} | {r.covered:.3f} | "
                      f"{r.mean_seeds:.1f} | {r.resolved:.2f} |")
    return figures


if __name__ == "__main__":
    main()
