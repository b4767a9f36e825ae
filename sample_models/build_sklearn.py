#!/usr/bin/env python
"""Build the scikit-learn sample models on scikit-learn's bundled data sets (no download).

Writes ``sample_models/sklearn/`` (git-ignored):

* ``logreg-breast-cancer.skops``  StandardScaler + LogisticRegression   (breast cancer, 2 classes)
* ``hgb-breast-cancer.skops``     HistGradientBoostingClassifier        (breast cancer)
* ``svm-wine.skops``              StandardScaler + SVC(probability)     (wine, 3 classes)
* ``rf-wine.skops``               RandomForestClassifier                (wine)
* ``gbr-diabetes.skops``          GradientBoostingRegressor             (diabetes, regression)
* ``<dataset>-test.npz``          the held-out 25 % split: ``X`` (float64) and gold ``y``

Splits are stratified for classification and seeded (random_state=0). The build is cached by this
script's sha256 (``build-stamp.json``) and takes a few seconds.

Usage: ``python sample_models/build_sklearn.py [--force]``
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from build_cache import fresh_tmp, publish, script_sha256, up_to_date

SCRIPT = Path(__file__).resolve()
OUT = SCRIPT.parent / "sklearn"
SEED = 0


def models():
    """(file stem, dataset, estimator) triples."""
    from sklearn.ensemble import GradientBoostingRegressor, HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    return [
        ("logreg-breast-cancer", "breast-cancer", make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))),
        ("hgb-breast-cancer", "breast-cancer", HistGradientBoostingClassifier(random_state=SEED)),
        ("svm-wine", "wine", make_pipeline(StandardScaler(), SVC(probability=True, random_state=SEED))),
        ("rf-wine", "wine", RandomForestClassifier(n_estimators=200, random_state=SEED)),
        ("gbr-diabetes", "diabetes", GradientBoostingRegressor(random_state=SEED)),
    ]


def datasets():
    """name → (X_train, X_test, y_train, y_test), seeded 75/25 splits."""
    from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine
    from sklearn.model_selection import train_test_split

    out = {}
    for name, loader, stratify in (
        ("breast-cancer", load_breast_cancer, True),
        ("wine", load_wine, True),
        ("diabetes", load_diabetes, False),
    ):
        x, y = loader(return_X_y=True)
        out[name] = train_test_split(x, y, test_size=0.25, random_state=SEED, stratify=y if stratify else None)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description="Build the scikit-learn sample models.")
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    args = parser.parse_args()
    if not args.force and up_to_date(OUT, SCRIPT):
        print(f"sklearn samples: up to date ({OUT})")
        return
    import numpy as np
    import skops.io as sio

    start = time.perf_counter()
    tmp = fresh_tmp(OUT)
    data = datasets()
    for name, (_, x_test, _, y_test) in data.items():
        np.savez(tmp / f"{name}-test.npz", X=x_test, y=y_test)
    scores = {}
    for stem, dataset, model in models():
        x_train, x_test, y_train, y_test = data[dataset]
        model.fit(x_train, y_train)
        scores[stem] = round(float(model.score(x_test, y_test)), 4)
        sio.dump(model, tmp / f"{stem}.skops")
        print(f"{stem}: held-out score {scores[stem]}")
    stamp = {
        "script_sha256": script_sha256(SCRIPT),
        "seed": SEED,
        "scores": scores,
        "seconds": round(time.perf_counter() - start, 1),
    }
    publish(tmp, OUT, stamp)
    print(f"built {OUT} in {stamp['seconds']} s")


if __name__ == "__main__":
    main()
