"""Which task drives the shared encoder: each task's share of the weighted loss and of the gradient, over training.

Usage:
    python benchmarks/task_shares.py RUN [RUN ...]    # pretraining run folders (their metrics.jsonl)
Prints, per logged epoch, each task's share of the summed weighted losses (weight/<task> x loss/<task>, what
the optimiser minimises) and, at the monitor epochs, its gradient share (grad_share/<task>: the norm of its
weighted loss's gradient on the encoder, over the tasks' summed norms), as mean and spread over the runs given
(e.g. one recipe's pretraining seeds). A task whose loss share is small can still own the gradient.
"""
import argparse
import json
from pathlib import Path

import numpy as np

from ground.errors import UserError, exit_on_user_error


def read_rows(run):
    path = Path(run) / "metrics.jsonl"
    if not path.is_file():
        raise UserError(f"{run}: no metrics.jsonl (not a pretraining run folder)")
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except json.JSONDecodeError as err:
        raise UserError(f"{path}: not JSON lines ({err})") from None


def shares(row):
    """({task: weighted-loss share}, {task: gradient share} or {}) of one metrics row."""
    tasks = [k.split("/", 1)[1] for k in row if k.startswith("loss/")]
    weighted = {t: row.get(f"weight/{t}", 1.0) * row[f"loss/{t}"] for t in tasks}
    total = sum(weighted.values()) or 1.0
    return ({t: v / total for t, v in weighted.items()},
            {t: row[f"grad_share/{t}"] for t in tasks if f"grad_share/{t}" in row})


def table(runs):
    per_run = [read_rows(run) for run in runs]
    epochs = sorted(set.intersection(*({r["epoch"] for r in rows} for rows in per_run)))
    tasks = list(shares(per_run[0][0])[0])
    lines = ["| epoch | " + " | ".join(f"{t} loss | {t} grad" for t in tasks) + " |",
             "|---|" + "---|---|" * len(tasks)]
    for epoch in epochs:
        rows = [next(r for r in rows if r["epoch"] == epoch) for rows in per_run]
        loss, grad = zip(*(shares(r) for r in rows))
        cells = []
        for t in tasks:
            cells.append(f"{np.mean([s[t] for s in loss]):.2f} ± {np.std([s[t] for s in loss]):.2f}")
            g = [s[t] for s in grad if t in s]
            cells.append(f"{np.mean(g):.2f} ± {np.std(g):.2f}" if len(g) == len(rows) else "")
        if epoch in (epochs[0], epochs[-1]) or any(c for c in cells[1::2]):  # the ends and the monitor epochs
            lines.append(f"| {epoch} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


@exit_on_user_error
def main(argv=None):
    parser = argparse.ArgumentParser(description="Loss and gradient shares per task over pretraining")
    parser.add_argument("runs", nargs="+", help="pretraining run folders (one recipe's seeds)")
    args = parser.parse_args(argv)
    print(f"{len(args.runs)} run(s): mean ± sd over runs of each task's share of the weighted loss and of the "
          "encoder's gradient\n")
    print(table(args.runs))


if __name__ == "__main__":
    main()
