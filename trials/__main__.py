"""``python -m trials DATASET [ROOT]``: make sure a dataset is on disk and say where, in one line.

Downloads a missing published dataset into ``~/.cache/attnas/data`` (or ROOT) through torchvision when the internet
is reachable: e.g. ``python -m trials fashion_mnist`` before going offline (``make demo`` uses it where the Debian
package cannot be installed). Segmentation datasets too (``python -m trials mask_folder DIR`` checks a folder of
images/ + masks/; ``fashion_scenes`` generates and caches its scenes). Exit code 0 when the dataset loads, 2 with
one ``error:`` line when it cannot.
"""

from __future__ import annotations

import sys

from trials.tasks import TRIAL_TASKS


def main(argv: list[str]) -> int:
    loaders = {name: task.load for task in TRIAL_TASKS.values() for name in task.datasets}
    if not 1 <= len(argv) <= 2 or argv[0] not in loaders:
        print(f"usage: python -m trials DATASET [ROOT]; datasets: {', '.join(loaders)}", file=sys.stderr)
        return 2
    try:
        data = loaders[argv[0]](argv[0], root=argv[1] if len(argv) > 1 else None, download=True, val_size=1,
                                test=True, log=print)
    except (RuntimeError, ValueError) as exc:  # DatasetMissingError, DatasetError: one line each
        print(f"error: {exc}", file=sys.stderr)
        return 2
    c, h, w = data.image_shape
    print(f"{argv[0]}: {len(data.train_y) + len(data.val_y)} train and {len(data.test_y)} test images, {c}×{h}×{w}, "
          f"{data.num_classes} classes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
