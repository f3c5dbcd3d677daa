"""Regenerate the HAR results: the study (studies/har/manifest.py: experiments, choices, claims, figures) in
resumable units, or the quick main job.

Usage:
    python studies/har/reproduce.py --quick 1          # the main job (make demo): the default row, one seed
    python studies/har/reproduce.py --part downstream  # one part: downstream (the default encoder against
                                                           #   the field's baselines), tasks, weighting_loss,
                                                           #   weighting_gradient, data, federated, hapt12,
                                                           #   search (the recipe, on val), tuning
    python studies/har/reproduce.py --only probes      # the probed units (minutes); then --only networks
    python studies/har/reproduce.py --report 1 --partial 1   # the report of what has finished so far
    python studies/har/reproduce.py                    # everything, then the report: resources/ and the
                                                           #   README's results block (days on 2 cores)
A part, --experiments, --methods or --only reports what it ran under <output_dir>/report; only the whole
study (run, or --report 1) writes resources/ and the README's block. Every unit not yet finished runs; a
finished one is reused (studies/har/reuse.py: one rule), a killed pretraining resumes. Scores are macro-F1 on the
test subjects over --pretrain_seeds x --draws label draws, reported with both spreads and nested intervals
(studies/report.py).
"""
import dataclasses
import sys
import time

from common.config import parse_config
from ground.errors import exit_on_user_error
from studies.har.config import StudyConfig
from studies.har.manifest import demo_experiments
from studies.har.runner import Study


def quick(config):
    """The main job: the default row at one pretraining seed and a few label draws: the default MTL encoder
    (probe, self-training, LP-FT, FixMatch, hybrids) against MiniRocket, supervised from scratch (plain and
    FixMatch) and the expert features. To stay near 10 minutes on 2 cores: 1% and 10% labels (the networks
    and self-training at 1%), and one probe for all, ridge, the study's most frequent choice on val at few
    labels, instead of the choice on val."""
    seed = config.pretrain_seeds[0]
    config = dataclasses.replace(config, pretrain_seeds=(seed,), draws=config.demo_draws, full_draws=1,
                                 label_fractions=config.demo_fractions,
                                 network_fractions=config.demo_network_fractions, part="all",
                                 classifier_flags="probe=ridge " + config.classifier_flags)
    study = Study(config, demo_experiments(config.demo_selftrain_fractions))
    study.run()
    study.report(claims=(), title=f"UCI HAR: the main job (pretraining seed {seed}, {config.draws} label draws "
                                  f"per fraction)")
    print(f"figures and results.md in {study.figures}")


@exit_on_user_error
def main(argv=None):
    config = parse_config(StudyConfig, argv, description="Regenerate the HAR results and figures")
    start = time.time()
    if config.quick:
        quick(config)
    else:
        study = Study(config)
        if not config.report:
            study.run()
        study.report()
        if study.whole and not config.partial:
            study.draw_model_figures()
    print(f"total {(time.time() - start) / 60:.1f} min")


if __name__ == "__main__":
    main(sys.argv[1:])
