"""A study's statistics and its markdown, from per-draw rows: what the tables and claims say, kept apart from
what runs the study.

A row is one (method, mode, fraction, pretraining seed, label draw) score. Label draws are nested in
pretraining seeds (a baseline without pretraining repeats its own init seed instead), so the intervals
respect the nesting: the mean over draws per pretraining seed, then the t-interval over seeds. Two spreads
are reported: over pretraining seeds (of those per-seed means) and over draws (within a seed, pooled).
Claims are paired: the same seed and draw for both methods, the per-draw difference averaged per seed, then
the t-interval over seeds.
"""
import numpy as np
from scipy import stats

from ground.errors import UserError
from ground.io import atomic_write_text
from studies.plots import plot_label_efficiency, plot_scaling, plot_weighting_study


def fraction_key(fraction):
    """A fraction as rows are grouped by (0.1 and 0.1000000001 alike)."""
    return round(float(fraction), 6)


def by_seed(rows, method, mode, fraction):
    """{pretraining seed: {draw: macro-F1}} of one method, mode and fraction."""
    out = {}
    for r in rows:
        if (r["method"], r["mode"]) == (method, mode) and fraction_key(r["fraction"]) == fraction_key(fraction):
            out.setdefault(r["pretrain_seed"], {})[r["draw"]] = r["macro_f1"]
    return out


def t_interval(values):
    """(mean, [low, high]) of the 95% t-interval of values (None for one value: no interval)."""
    values = np.asarray(values, dtype=float)
    mean = float(values.mean())
    if len(values) < 2:
        return mean, None
    half = float(stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values)))
    return mean, [mean - half, mean + half]


def signed_interval(values):
    """The mean difference and its 95% t-interval as text: +0.012 [+0.004, +0.020]."""
    mean, (low, high) = t_interval(values)
    return f"{mean:+.3f} [{low:+.3f}, {high:+.3f}]"


def aggregate(rows):
    """One entry per (method, mode, fraction): mean, sd over pretraining seeds (of per-seed means), pooled sd
    over draws within a seed, the nested 95% interval, and the counts."""
    table = []
    for method, mode, fraction in sorted({(r["method"], r["mode"], fraction_key(r["fraction"])) for r in rows}):
        seeds = by_seed(rows, method, mode, fraction)
        seed_means = [np.mean(list(d.values())) for d in seeds.values()]
        within = [np.var(list(d.values()), ddof=1) for d in seeds.values() if len(d) > 1]
        mean, ci = t_interval(seed_means)
        table.append({"method": method, "mode": mode, "fraction": fraction, "macro_f1_mean": mean,
                      "macro_f1_std": float(np.std(seed_means, ddof=1)) if len(seed_means) > 1 else 0.0,
                      "macro_f1_sd_draws": float(np.sqrt(np.mean(within))) if within else 0.0,
                      "ci95": ci, "n_pretrain_seeds": len(seeds),
                      "n_label_draws": int(min(len(d) for d in seeds.values()))})
    return table


def time_table(rows, units):
    """Markdown rows (method, mode) x fractions: the median seconds of one draw's fit (a row's seconds), and
    each representation's one-off seconds (the embedding, the MiniRocket transform), median over units."""
    fractions = sorted({fraction_key(r["fraction"]) for r in rows})
    seconds = {}
    for r in rows:
        seconds.setdefault((r["method"], r["mode"], fraction_key(r["fraction"])), []).append(r["seconds"])
    once = {}
    for u in units:
        for name, value in u["representation_seconds"].items():
            once.setdefault(name, []).append(value)
    lines = ["| method | mode | " + " | ".join(f"{100 * f:g}%" for f in fractions) + " |",
             "|---|---|" + "---|" * len(fractions)]
    for method, mode in dict.fromkeys((r["method"], r["mode"]) for r in rows):
        lines.append(f"| {method} | {mode} | " + " | ".join(
            f"{np.median(seconds[(method, mode, f)]):.1f}" if (method, mode, f) in seconds else "" for f in fractions)
            + " |")
    if once:
        lines += ["", "Once per unit, before the draws (seconds, median over units): "
                  + ", ".join(f"{name} {np.median(v):.1f}" for name, v in sorted(once.items())) + "."]
    return lines


def paired_difference(rows, a, b, fraction):
    """a minus b ((method, mode) each) at `fraction`, paired by pretraining seed and draw: the per-seed mean
    difference, its t-interval over seeds, n seeds and draws; None when the two share no seed and draw. A side
    without seeds (pretrain_seed None: a method with no randomness beyond one fixed seed) pairs with each
    seed of the other."""
    first, second = by_seed(rows, *a, fraction), by_seed(rows, *b, fraction)
    if set(second) == {None}:
        second = {seed: second[None] for seed in first}
    if set(first) == {None}:
        first = {seed: first[None] for seed in second}
    per_seed, draws = [], []
    for seed in sorted(set(first) & set(second)):
        common = sorted(set(first[seed]) & set(second[seed]))
        if common:
            per_seed.append(np.mean([first[seed][d] - second[seed][d] for d in common]))
            draws.append(len(common))
    if not per_seed:
        return None
    mean, ci = t_interval(per_seed)
    return {"mean": mean, "ci95": ci, "n_pretrain_seeds": len(per_seed), "n_label_draws": int(min(draws)),
            "holds": bool(ci is not None and ci[0] > 0)}


def mean_score(rows, method, mode, fraction):
    seeds = by_seed(rows, method, mode, fraction)
    return float(np.mean([np.mean(list(d.values())) for d in seeds.values()])) if seeds else float("-inf")


def evaluate_claims(rows, claims, partial=False):
    """Each claim {"a": (method, mode), "b": (method, mode), "fractions": [...]} as paired differences; "b_best_of":
    [(method, mode), ...] instead of "b" compares with the best of them at each fraction (by mean score: the
    hardest opponent). A claim naming a method the rows do not have is an error (partial: listed as pending)."""
    present = {(r["method"], r["mode"]) for r in rows}
    results = []
    for claim in claims:
        a, candidates = tuple(claim["a"]), [tuple(b) for b in claim.get("b_best_of", [claim.get("b")])]
        missing = [m for m in [a, *candidates] if m not in present]
        b_name = (f"{candidates[0][0]} ({candidates[0][1]})" if "b" in claim
                  else "best of " + ", ".join(m for m, _ in candidates))
        name = f"{a[0]} ({a[1]}) - {b_name}"
        if missing and not partial:
            raise UserError(f"claim {name}: no results for {', '.join(f'{m} ({mode})' for m, mode in missing)}: "
                            f"run its part first (or --partial 1 for a report of what has finished)")
        for fraction in claim["fractions"]:
            result, best = None, None
            if not missing:
                best = max(candidates, key=lambda m: mean_score(rows, *m, fraction))
                result = paired_difference(rows, a, best, fraction)
            entry = {"claim": name, "fraction": fraction, **(result or {"pending": True})}
            if result and "b_best_of" in claim:
                entry["b"] = list(best)
            results.append(entry)
    return results


def scaling_table(rows, curve, opponent, fractions):
    """Markdown rows of the unlabelled-data scaling curve: per pretraining data (curve: (label, method, relative
    windows)), the linear probe's mean macro-F1 and its paired difference to `opponent` at each fraction."""
    lines = ["| pretraining data | windows (x default) | " + " | ".join(
        f"{100 * f:g}%: macro-F1, minus {opponent[0]}" for f in fractions) + " |",
        "|---|---|" + "---|" * len(fractions)]
    for label, method, windows in curve:
        cells = []
        for fraction in fractions:
            mean = mean_score(rows, method, "linear", fraction)
            difference = paired_difference(rows, (method, "linear"), opponent, fraction)
            if mean == float("-inf") or difference is None:
                cells.append("pending")
                continue
            interval = (f" [{difference['ci95'][0]:+.3f}, {difference['ci95'][1]:+.3f}]" if difference["ci95"]
                        else "")
            cells.append(f"{mean:.3f}, {difference['mean']:+.3f}{interval} ({difference['n_pretrain_seeds']}x"
                         f"{difference['n_label_draws']})")
        lines.append(f"| {label} | {windows:g} | " + " | ".join(cells) + " |")
    return lines


def label_spec(method, mode):
    return f"{method} ({mode})"


def score_table(table, fractions=None):
    """Markdown rows (method, mode) x fractions: mean ± sd over seeds [sd over draws] (seeds x draws)."""
    fractions = fractions or sorted({r["fraction"] for r in table})
    lines = ["| method | mode | " + " | ".join(f"{100 * f:g}%" for f in fractions) + " |",
             "|---|---|" + "---|" * len(fractions)]
    cells = {(r["method"], r["mode"], r["fraction"]): r for r in table}
    for method, mode in dict.fromkeys((r["method"], r["mode"]) for r in table):
        values = [cells.get((method, mode, fraction_key(f))) for f in fractions]
        lines.append(f"| {method} | {mode} | " + " | ".join(_cell(v) for v in values) + " |")
    return lines


def _cell(v):
    """mean ± sd over seeds [sd over draws] (seeds x draws); one seed has no spread over seeds to show."""
    if not v:
        return ""
    seeds = f" ± {v['macro_f1_std']:.3f}" if v["n_pretrain_seeds"] > 1 else ""
    counts = f"({v['n_pretrain_seeds']}x{v['n_label_draws']})"
    return f"{v['macro_f1_mean']:.3f}{seeds} [{v['macro_f1_sd_draws']:.3f}] {counts}"


def claims_table(claims):
    """One markdown row per claim, one column per fraction: the paired difference, its 95% interval (seeds x
    draws) and "holds" when the interval is above 0; the claims still waiting for a method on one line."""
    fractions = sorted({c["fraction"] for c in claims})
    names = list(dict.fromkeys(c["claim"] for c in claims))
    cells = {(c["claim"], c["fraction"]): c for c in claims}
    pending = [n for n in names if all(cells.get((n, f), {}).get("pending") for f in fractions if (n, f) in cells)]
    lines = ["| claim (a - b) | " + " | ".join(f"{100 * f:g}%" for f in fractions) + " |",
             "|---|" + "---|" * len(fractions)]
    for name in names:
        if name not in pending:
            lines.append(f"| {name} | " + " | ".join(_claim_cell(cells.get((name, f))) for f in fractions) + " |")
    if pending:
        lines += ["", f"Pending (a method has not finished): {len(pending)} claims, "
                      f"{len({n.split(' - ')[1] for n in pending})} opponents."]
    return lines


def _claim_cell(c):
    if not c or c.get("pending"):
        return ""
    against = f" vs {c['b'][0]}" if "b" in c else ""
    interval = f" [{c['ci95'][0]:+.3f}, {c['ci95'][1]:+.3f}]" if c["ci95"] else " (one seed)"
    holds = " **holds**" if c["holds"] else ""
    return f"{c['mean']:+.3f}{interval}{holds} ({c['n_pretrain_seeds']}x{c['n_label_draws']}){against}"


def draw_scaling_figure(rows, curve, opponent, fractions, path):
    """The scaling curve's figure when every point of it has rows: macro-F1 against the pretraining windows."""
    points = {fraction: [(windows, mean_score(rows, method, "linear", fraction)) for _, method, windows in curve]
              for fraction in fractions}
    if any(score == float("-inf") for line in points.values() for _, score in line):
        return
    plot_scaling(points, {f: mean_score(rows, *opponent, f) for f in fractions}, opponent[0], path)


def draw_figures(table, curves, folder, seconds=None, weighting_path=None, band="macro_f1_std"):
    """The figures of an aggregated table: {file: (title, the method it needs, [(method, mode, style)])}, each
    drawn when its needed method has rows (band: which spread shades each curve), and the weighting figure
    (seconds: {method: seconds per epoch}) when two of its methods have rows."""
    methods = {r["method"] for r in table}
    bands = [dict(r, label=label_spec(r["method"], r["mode"]), macro_f1_std=r[band]) for r in table]
    for file, (title, needs, specs) in curves.items():
        if needs in methods:
            plot_label_efficiency(bands, [(label_spec(m, mode), style) for m, mode, style in specs], folder / file,
                                  title=title)
    if weighting_path and len(seconds or {}) > 1:
        plot_weighting_study([r for r in table if r["method"] in seconds], seconds, folder / weighting_path)


README_BEGIN, README_END = "<!-- study results: begin (written by studies/har/reproduce.py) -->", \
    "<!-- study results: end -->"
HEADLINE_BEGIN, HEADLINE_END = "<!-- headline results: begin (written by studies/har/reproduce.py) -->", \
    "<!-- headline results: end -->"


def write_readme_block(path, lines, markers=(README_BEGIN, README_END)):
    """Rewrite the block of the markdown file `path` between `markers` with `lines`; an error when the file
    lacks the markers (the report does not guess where results go)."""
    begin, end = markers
    if not path.is_file():
        raise UserError(f"{path}: no such file (the report writes its block into it)")
    text = path.read_text()
    if begin not in text or end not in text:
        raise UserError(f"{path} has no generated block: add the lines {begin!r} and {end!r}")
    head, rest = text.split(begin, 1)
    tail = rest.split(end, 1)[1]
    atomic_write_text(path, head + begin + "\n" + "\n".join(lines) + "\n" + end + tail)


def headline_table(table, rows, columns):
    """The front page's table of an aggregated table: rows [(label, method, mode)] by columns [(title, method
    prefix, fraction)], each cell the mean macro-F1 over pretraining seeds and draws ("-" where not run)."""
    means = {(r["method"], r["mode"], fraction_key(r["fraction"])): r["macro_f1_mean"] for r in table}
    lines = ["| representation, downstream mode | " + " | ".join(title for title, _, _ in columns) + " |",
             "|---|" + "---|" * len(columns)]
    for label, method, mode in rows:
        cells = [means.get((prefix + method, mode, fraction_key(fraction))) for _, prefix, fraction in columns]
        lines.append(f"| {label} | " + " | ".join("-" if c is None else f"{c:.3f}" for c in cells) + " |")
    return lines
