"""The encoder and aeon's MiniRocket, each in a scikit-learn pipeline with RidgeClassifierCV, on the same UCI HAR
windows: scores and times printed side by side.

Usage:
    python benchmarks/aeon_pipeline.py                          # the shipped encoder (no training) vs MiniRocket
    python benchmarks/aeon_pipeline.py --pretrain_epochs 20     # also an encoder pretrained in the pipeline's fit
    python benchmarks/aeon_pipeline.py --train_fraction 0.1 --draws 3
Both pipelines are fit on the labelled windows of the UCI HAR train subjects (all of them, or a stratified
--train_fraction drawn per --draws seed) and scored on the test subjects (macro-F1, accuracy). The shipped
encoder (`har_mtl`) was pretrained on the train subjects' recordings only; a pipeline with --pretrain_epochs
pretrains its encoder on the fit's windows alone (the collection it is given, labels unused).
"""
import argparse
import time

import numpy as np
from aeon.transformations.collection.convolution_based import MiniRocket
from sklearn.linear_model import RidgeClassifierCV
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline

from data_processing.har import load_har
from HAR_centralized.transformer import EncoderTransformer


def score(pipeline, x_train, y_train, x_test, y_test):
    start = time.time()
    pipeline.fit(x_train, y_train)
    fitted = time.time() - start
    predicted = pipeline.predict(x_test)
    return (f1_score(y_test, predicted, average="macro"), accuracy_score(y_test, predicted), fitted,
            time.time() - start - fitted)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train_fraction", type=float, default=1.0, help="labelled share of the train windows")
    parser.add_argument("--draws", type=int, default=1, help="label draws (seeds 0..draws-1) below 100%%")
    parser.add_argument("--pretrain_epochs", type=int, default=0, help="also pretrain an encoder in fit (0: no)")
    args = parser.parse_args(argv)
    train, test = load_har("train", merge_val=True), load_har("test")
    pipelines = {"encoder har_mtl (shipped) + ridge": lambda seed: make_pipeline(
                     EncoderTransformer.from_pretrained("har_mtl"), RidgeClassifierCV(np.logspace(-3, 3, 10))),
                 "aeon MiniRocket + ridge": lambda seed: make_pipeline(
                     MiniRocket(random_state=seed), RidgeClassifierCV(np.logspace(-3, 3, 10)))}
    if args.pretrain_epochs:
        pipelines[f"encoder pretrained in fit ({args.pretrain_epochs} epochs) + ridge"] = lambda seed: make_pipeline(
            EncoderTransformer(epochs=args.pretrain_epochs, seed=seed), RidgeClassifierCV(np.logspace(-3, 3, 10)))
    print(f"UCI HAR: {len(train.x)} train windows ({args.train_fraction:.0%} labelled), {len(test.x)} test windows")
    print("| pipeline | macro-F1 | accuracy | fit s | predict s |")
    print("|---|---|---|---|---|")
    draws = 1 if args.train_fraction >= 1 else args.draws
    for name, make in pipelines.items():
        results = []
        for seed in range(draws):
            if args.train_fraction < 1:
                index, _ = train_test_split(np.arange(len(train.y)), train_size=args.train_fraction,
                                            stratify=train.y, random_state=seed)
            else:
                index = np.arange(len(train.y))
            results.append(score(make(seed), train.x[index], train.y[index], test.x, test.y))
        f1, accuracy, fit_s, predict_s = np.median(np.array(results), axis=0)
        print(f"| {name} | {f1:.3f} | {accuracy:.3f} | {fit_s:.1f} | {predict_s:.1f} |", flush=True)


if __name__ == "__main__":
    main()
