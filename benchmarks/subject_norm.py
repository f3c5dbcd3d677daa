"""What per-subject normalisation (--subject_norm) gives each representation, on the val and the test subjects.

Usage:
    python benchmarks/subject_norm.py --encoder HAR_centralized/outputs/study/runs/mtl_default_seed42_tasksrocket
    python benchmarks/subject_norm.py --encoder RUN --draws 20 --out resources/study/subject_norm.md
The embedding, MiniRocket's features and the expert features, each as it is (none), standardised per subject
(zscore) and, for the embedding, with BatchNorm statistics per subject (adabn; the others z-scored), through
the classifier's own Representations; one fixed probe (ridge, as benchmarks/distillation_gap.py) and the same
label draws for every row. The val columns are where a choice would be made; the test columns only confirm.
"""
import argparse
from pathlib import Path

from common.classification import ClassifierConfig, Representations, load_pretrained_encoder, saved_data_record
from har_task import HARTask
from studies.report import signed_interval
from common.subject_norm import SUBJECT_NORMS
from distillation_gap import score
from ground.errors import UserError, exit_on_user_error
from ground.io import atomic_write_text
from HAR_centralized.config import HARClassifierConfig

METHODS = ("encoder", "minirocket", "expert_features")


@exit_on_user_error
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", required=True, help="a finished pretraining run folder (or its encoder.pt)")
    parser.add_argument("--draws", type=int, default=20, help="label draws per fraction")
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.01, 0.1])
    parser.add_argument("--kernels_seed", type=int, default=0, help="MiniRocket's kernels (the study: the seed)")
    parser.add_argument("--minirocket_kernels", type=int, default=10_000,
                        help="MiniRocket's features (multiples of 84)")
    parser.add_argument("--out", default="", help="also write the table to this markdown file")
    args = parser.parse_args(argv)
    if args.draws < 2 or not all(0 < f < 1 for f in args.fractions) or args.minirocket_kernels < 84:
        raise UserError("--draws must be at least 2, --fractions in (0, 1), --minirocket_kernels at least 84")
    encoder_path = Path(args.encoder)
    encoder_path = encoder_path / "encoder.pt" if encoder_path.is_dir() else encoder_path
    if not encoder_path.is_file():
        raise UserError(f"--encoder {args.encoder}: no encoder.pt there")
    splits = HARTask(HARClassifierConfig()).labelled_splits(saved_data_record(encoder_path), str(encoder_path))
    model_args, state_dict = load_pretrained_encoder(encoder_path)
    labels = {k: getattr(splits, k)["y"] for k in ("train", "val", "test")}
    labels.update({f"{k}_subject": getattr(splits, k)["subject"] for k in ("train", "val", "test")})
    rows = [(m, n) for m in METHODS for n in SUBJECT_NORMS if n != "adabn" or m == "encoder"]
    reps = {n: Representations(ClassifierConfig(subject_norm=n, init_seed=args.kernels_seed,
                                                minirocket_kernels=args.minirocket_kernels),
                               splits, model_args, state_dict, "cpu", "fp32") for n in SUBJECT_NORMS}
    scores = {(m, n, on, f): score(reps[n][m], labels, f, args.draws, on)[0]
              for m, n in rows for on in ("val", "test") for f in args.fractions}
    columns = [(on, f) for on in ("val", "test") for f in args.fractions]
    lines = [f"Encoder {encoder_path}; MiniRocket's kernels seed {args.kernels_seed}; ridge probe; macro-F1, mean [sd "
             f"over {args.draws} label draws]; paired differences (95% t-interval over draws) to the same "
             "representation without normalisation, and to MiniRocket's features normalised alike.", "",
             "| representation | subject_norm | " + " | ".join(f"{on} {100 * f:g}%" for on, f in columns) + " |",
             "|---|---|" + "---|" * len(columns)]
    for m, n in rows:
        cells = []
        for on, f in columns:
            s = scores[(m, n, on, f)]
            cell = f"{s.mean():.3f} [{s.std(ddof=1):.3f}]"
            if n != "none":
                cell += f"; vs none {signed_interval(s - scores[(m, 'none', on, f)])}"
            if m != "minirocket":  # under adabn MiniRocket's features are z-scored
                same = scores[("minirocket", "zscore" if n == "adabn" else n, on, f)]
                cell += f"; vs minirocket {signed_interval(s - same)}"
            cells.append(cell)
        lines.append(f"| {m} | {n} | " + " | ".join(cells) + " |")
    print("\n".join(lines))
    if args.out:
        atomic_write_text(Path(args.out), "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
