"""Build (or find up to date) every sample model that ``plans/samples.yaml`` converts: the NER sample,
the Keras and Paddle digit CNNs and the scikit-learn models.

Each builder runs in its own Python process (importing TensorFlow and then PaddlePaddle in one
process crashes) and is cached by its build stamp (``build_cache.py``), so a second run takes
seconds. Usage::

    python sample_models/build_all.py [--force]

Exit code: 0 when every sample is built, else the first failing builder's exit code.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: the builders, in the order the plan lists their samples
BUILDERS = ("build_ner_minilm.py", "build_digits_keras.py", "build_digits_paddle.py", "build_sklearn.py")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--force", action="store_true", help="rebuild every sample even if up to date")
    args = parser.parse_args()
    for script in BUILDERS:
        start = time.perf_counter()
        done = subprocess.run([sys.executable, str(HERE / script), *(["--force"] if args.force else [])])
        if done.returncode != 0:
            print(f"build_all: {script} failed (exit {done.returncode})", file=sys.stderr)
            return done.returncode
        print(f"build_all: {script} done in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
