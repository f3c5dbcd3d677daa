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

from common.errors import UserError


def _key(fraction):
    return round(float(fraction), 6)


def by_seed(rows, method, mode, fraction):
    """{pretraining seed: {draw: macro-F1}} of one method, mode and fraction."""
    out = {}
    for r in rows:
        if (r["method"], r["mode"]) == (method, mode) and _key(r["fraction"]) == _key(fraction):
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


def aggregate(rows):
    """One entry per (method, mode, fraction): mean, sd over pretraining seeds (of per-seed means), pooled sd
    over draws within a seed, the nested 95% interval, and the counts."""
    table = []
    for method, mode, fraction in sorted({(r["method"], r["mode"], _key(r["fraction"])) for r in rows}):
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


def paired_difference(rows, a, b, fraction):
    """a minus b ((method, mode) each) at `fraction`, paired by pretraining seed and draw: the per-seed mean
    difference, its t-interval over seeds, n seeds and draws; None when the two share no seed and draw."""
    first, second = by_seed(rows, *a, fraction), by_seed(rows, *b, fraction)
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


def evaluate_claims(rows, claims, partial=False):
    """Each claim {"a": (method, mode), "b": (method, mode), "fractions": [...]} as paired differences. A claim
    naming a method the rows do not have is an error (partial: listed as pending instead)."""
    present = {(r["method"], r["mode"]) for r in rows}
    results = []
    for claim in claims:
        missing = [m for m in (tuple(claim["a"]), tuple(claim["b"])) if m not in present]
        name = f"{claim['a'][0]} ({claim['a'][1]}) - {claim['b'][0]} ({claim['b'][1]})"
        if missing and not partial:
            raise UserError(f"claim {name}: no results for {', '.join(f'{m} ({mode})' for m, mode in missing)}: "
                            f"run its part first (or --partial 1 for a report of what has finished)")
        for fraction in claim["fractions"]:
            result = None if missing else paired_difference(rows, tuple(claim["a"]), tuple(claim["b"]), fraction)
            results.append({"claim": name, "fraction": fraction, **(result or {"pending": True})})
    return results


def label_spec(method, mode):
    return f"{method} ({mode})"


def score_table(table, fractions=None):
    """Markdown rows (method, mode) x fractions: mean ± sd over seeds [sd over draws] (seeds x draws)."""
    fractions = fractions or sorted({r["fraction"] for r in table})
    lines = ["| method | mode | " + " | ".join(f"{100 * f:g}%" for f in fractions) + " |",
             "|---|---|" + "---|" * len(fractions)]
    cells = {(r["method"], r["mode"], r["fraction"]): r for r in table}
    for method, mode in dict.fromkeys((r["method"], r["mode"]) for r in table):
        values = [cells.get((method, mode, _key(f))) for f in fractions]
        lines.append(f"| {method} | {mode} | " + " | ".join(_cell(v) for v in values) + " |")
    return lines


def _cell(v):
    """mean ± sd over seeds [sd over draws] (seeds x draws); one seed has no spread over seeds to show."""
    if not v:
        return ""
    seeds = f" ± {v['macro_f1_std']:.3f}" if v["n_pretrain_seeds"] > 1 else ""
    return f"{v['macro_f1_mean']:.3f}{seeds} [{v['macro_f1_sd_draws']:.3f}] ({v['n_pretrain_seeds']}x{v['n_label_draws']})"


def claims_table(claims):
    lines = ["| claim | labels | difference | 95% interval | seeds x draws | holds |", "|---|---|---|---|---|---|"]
    for c in claims:
        if c.get("pending"):
            lines.append(f"| {c['claim']} | {100 * c['fraction']:g}% | pending | | | |")
            continue
        interval = f"[{c['ci95'][0]:+.3f}, {c['ci95'][1]:+.3f}]" if c["ci95"] else "one seed: none"
        lines.append(f"| {c['claim']} | {100 * c['fraction']:g}% | {c['mean']:+.3f} | {interval} | "
                     f"{c['n_pretrain_seeds']}x{c['n_label_draws']} | "
                     f"{'yes' if c['holds'] else 'no'} |")
    return lines
