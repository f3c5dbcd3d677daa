"""Ship the default recipe's HAR encoder: resources/pretrained/<name>.{safetensors,json,md}.

Usage:
    python HAR_centralized/ship_encoder.py                      # pretrain the default recipe (seed 42), probe, ship
    python HAR_centralized/ship_encoder.py --encoder RUN_FOLDER  # ship a finished run of the default recipe
Pretrains with HAR_centralized/config.py's defaults (a finished run is reused), scores the frozen encoder with
the linear probe on the test subjects (label fractions x label seeds), and writes the weights (safetensors),
their description (model_args, input shape, recipe, scores, commit, sha256) and a model card. Then:
    from common.pretrained import load_pretrained; encoder = load_pretrained("har_mtl")
"""
import dataclasses
import json
import sys
from pathlib import Path

from common.checkpoint import safe_torch_load
from common.classification import load_pretrained_encoder, run_classification
from common.config import Config, config_to_dict, field, parse_config
from ground.errors import UserError, exit_on_user_error
from common.evaluation import markdown_table
from ground.paths import REPO_ROOT
from common.pretrain_config import RUN_ONLY_FIELDS, recipe_differences, with_trained_tasks
from common.pretrained import PRETRAINED_DIR, export_encoder
from common.run_folder import RunFolder
from common.training import pretrain
from HAR_centralized.config import HARClassifierConfig, HARPretrainConfig
from har_task import HARDataConfig, HARTask




@dataclasses.dataclass
class ShipConfig(Config):
    name: str = field("har_mtl", "the shipped encoder's name (load_pretrained(name), --encoder name)")
    encoder: str = field("", "a finished run folder of the default recipe; empty: pretrain it (reused when finished)")
    seed: int = field(42, "pretraining seed when pretraining here")
    seeds: int = field(3, "label subsets per fraction for the card's scores")
    label_fractions: tuple[float, ...] = field((0.01, 0.1, 1.0), "shares of the train labels for the card's scores")
    output_dir: str = field(str(PRETRAINED_DIR.relative_to(REPO_ROOT)), "where the shipped files go")
    runs_dir: str = field("HAR_centralized/outputs/ship", "where the pretraining run goes")

    def check_values(self):
        if not self.name.replace("_", "").isalnum():
            raise UserError(f"--name takes letters, digits and _, got {self.name!r}")


def default_recipe():
    """train_encoder.py's defaults as config.json holds them (tuples as lists)."""
    return with_trained_tasks(json.loads(json.dumps(config_to_dict(HARPretrainConfig()))),
                              HARPretrainConfig.DEFAULT_TASKS)


def default_recipe_run(config):
    """The run folder: --encoder after checking it is the default recipe, else pretrained (or reused) here."""
    if config.encoder:
        run = Path(config.encoder)
        if not (run / "config.json").is_file() or not (run / "encoder.pt").is_file():
            raise UserError(f"--encoder {run} is not a finished run folder (config.json, encoder.pt)")
        # the one rule of "the same recipe" (a resume's too), any pretraining seed
        differs = {k: then for k, (then, _) in recipe_differences(
            json.loads((run / "config.json").read_text()), HARPretrainConfig(), allowed=("seed",)).items()}
        if differs:
            raise UserError(f"--encoder {run} is not the default recipe: it differs in {differs}")
        return run
    pretrain_config = parse_config(HARPretrainConfig, ["--seed", str(config.seed), "--experiment_name", config.name,
                                                       "--output_dir", config.runs_dir, "--resume", "1"])
    run = pretrain_config.run_dir()
    if not (run / RunFolder.SUMMARY).is_file():
        pretrain(pretrain_config, HARTask(pretrain_config).pretrain_data())
    return run


def study_scores(label):
    """The study's rows of the default recipe (resources/study_summary.json), as card text, or ""."""
    path = REPO_ROOT / "resources" / "study_summary.json"
    if not path.is_file():
        return ""
    rows = [r for r in json.loads(path.read_text())["rows"] if r["method"] == label]
    if not rows:
        return ""
    lines = [f"- {r['mode']} at {100 * r['fraction']:g}% labels: {r['macro_f1_mean']:.3f} ± {r['macro_f1_std']:.3f}"
             f" ({r['n_pretrain_seeds']} seeds)" for r in sorted(rows, key=lambda r: (r["mode"], r["fraction"]))]
    n = "-".join(map(str, sorted({r["n_pretrain_seeds"] for r in rows})))
    few, full = ({r.get("n_label_draws", 3) for r in rows if (r["fraction"] < 1) == below} for below in (True, False))
    draws = f"{min(few)}+ label draws inside each below 100% labels" + (f", {min(full)}+ at 100%" if full else "")
    return (f"\nThe same recipe over {n} pretraining seeds (resources/results.md; mean ± std over seeds, {draws}):\n\n"
            + "\n".join(lines) + "\n")


# what the default recipe's task is, for the card (HAR_centralized/config.py; the recipe search in the README)
def task_notes(recipe):
    return (f"rocket: the encoder regresses {recipe['rocket_dim']} principal components of the window's MiniRocket "
            f"features, fit on the pretraining windows; the recipe search's winner on the val subjects")


def probe_notes(description):
    """The card's words for the probe the scores used (train_classifier.py's settings, recorded in the .json)."""
    probe = description.get("probe", "logistic:1")
    candidates = ", ".join(description.get("probe_candidates", ()))
    chosen = f"the classifier chosen on the val subjects per fraction among {candidates}" if probe == "auto" else probe
    norm = {"none": "", "zscore": "; each subject's embedding standardised on its own windows",
            "adabn": "; each subject embedded with BatchNorm statistics of its own windows"}
    return chosen + norm.get(description.get("subject_norm", "none"), "")


def model_card(name, description, table):
    data, recipe = description["pretraining_data"], description["recipe"]
    study = study_scores("mtl_default")  # the study's name of the default recipe (studies/har/manifest.py)
    return f"""# {name}: self-supervised HAR encoder (the default recipe)

One line: `from common.pretrained import load_pretrained; encoder = load_pretrained("{name}")`, or
`torch.hub.load("<this repository's folder>", "{name}", source="local")`. It maps float32 windows
(N, {description['input_shape'][0]}, {description['input_shape'][1]}) to \
(N, {description['model_args']['embedding_dim']}) embeddings, in eval mode.

## Inputs
UCI HAR windows: 9 channels in this order: body_acc x y z (g, gravity removed), body_gyro x y z (rad/s),
total_acc x y z (g); 128 samples at 50 Hz (2.56 s), median + 20 Hz low-pass filtered, gravity split off by a
0.3 Hz low-pass (the UCI HAR recipe; data_processing/hapt.py). Other rates or channel layouts: pretrain your
own encoder (`--dataset npz:PATH` or `csv:DIR`, README).

## What it was pretrained on
{data['windows']} unlabelled windows ({data['split']}) of the UCI HAR train subjects ({len(data['subjects'])} subjects:
{', '.join(map(str, data['subjects']))}; source: {data['data_source']}); the validation subjects
(7, 19, 28) and the 9 official test subjects were never seen.

## Recipe
Self-supervised, task(s) {', '.join(description['tasks'])} ({task_notes(recipe)}); encoder
{description['model_args']['name']} (width {description['model_args']['width']}, depth \
{description['model_args']['depth']}, {description['encoder_parameters']:,} parameters); {recipe['epochs']} epochs, \
batch {recipe['batch_size']}, lr {recipe['lr']},
pretraining seed {recipe['seed']}; {description['train_seconds']:.0f} s of pretraining on {description['device']}, \
code at commit
{description['commit'][:12]}. Full config: {name}.json. `python HAR_centralized/ship_encoder.py` pretrains this recipe
again and ships it; `--encoder RUN_FOLDER` ships a finished run of it (this one: the study's seed-42 run).

## Scores
Linear probe on the frozen embeddings ({probe_notes(description)}) trained on a stratified share of the train
subjects' labels, macro-F1 on the 9 official test subjects, mean ± std over {description['label_seeds']} label subsets:

{table}{study}
## Files
- `{name}.safetensors`: the weights (safetensors: loading runs no code), sha256 {description['sha256'][:16]}...
- `{name}.json`: model_args, input shape, the recipe, the pretraining data, the scores
- `{name}.md`: this card
"""


@exit_on_user_error
def main(argv=None):
    config = parse_config(ShipConfig, argv, description="Ship the default recipe's HAR encoder")
    run = default_recipe_run(config)
    summary = json.loads((run / RunFolder.SUMMARY).read_text())
    # fields newer than the run take their defaults: they reproduce what the run did (default_recipe_run checks)
    recipe = {**default_recipe(), **json.loads((run / "config.json").read_text())}
    classifier = parse_config(HARClassifierConfig, [
        "--encoder", str(run), "--methods", "encoder", "--modes", "linear", "--seeds", str(config.seeds),
        "--label_fractions", *map(str, config.label_fractions), "--output_dir", str(run / "classifier_ship")])
    _, scores, _ = run_classification(classifier, HARTask(HARDataConfig()).labelled_splits())
    model_args, state_dict = load_pretrained_encoder(run / "encoder.pt")
    description = {
        "recipe": {k: v for k, v in recipe.items() if k not in RUN_ONLY_FIELDS},
        "tasks": summary["tasks"], "encoder_parameters": summary["encoder_parameters"],
        "train_seconds": summary["train_seconds"], "device": summary["device"], "commit": summary["git_commit"],
        "pretraining_data": {k: summary[k] for k in ("data_source", "split", "windows", "subjects")},
        "label_seeds": config.seeds, "subject_norm": classifier.subject_norm, "probe": classifier.probe,
        "probe_candidates": list(classifier.probe_candidates),
        # the split and input standardisation the encoder was pretrained with (load_pretrained applies the latter)
        **({"data": record} if (record := safe_torch_load(run / "encoder.pt").get("data")) else {}),
        "scores": [{**{k: s[k] for k in ("mode", "macro_f1_mean", "macro_f1_std", "accuracy_mean")},
                    "fraction": round(s["fraction"], 6)} for s in scores],
    }
    out = Path(config.output_dir)
    weights = export_encoder(model_args, state_dict, safe_torch_load(run / "encoder.pt")["input_shape"], config.name,
                             description, lambda meta: model_card(config.name, meta, markdown_table(scores)),
                             out if out.is_absolute() else REPO_ROOT / out)
    print((weights.with_suffix(".md")).read_text())
    print(f"shipped: {weights} (+ .json, .md)")


if __name__ == "__main__":
    main(sys.argv[1:])
