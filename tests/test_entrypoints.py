"""Every entrypoint's --help works, and every config's help strings pass through argparse."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from common.classification import ClassifierConfig
from common.config import build_parser
from common.pretrain_config import PretrainConfig
from HAR_centralized.config import HARClassifierConfig, HARPretrainConfig
from HAR_federated.config import FederatedConfig
from IR_centralized.config import IRClassifierConfig, IRPretrainConfig
from studies.har.config import StudyConfig

REPO = Path(__file__).resolve().parents[1]
ENTRYPOINTS = sorted(str(p.relative_to(REPO)) for folder in ("HAR_centralized", "IR_centralized", "HAR_federated",
                                                            "studies/har", "data", "benchmarks")
                     for p in (REPO / folder).glob("*.py")
                     if p.name not in ("__init__.py", "config.py") and "__main__" in p.read_text())


def test_every_entrypoint_is_found():
    assert {"HAR_centralized/train_encoder.py", "HAR_centralized/train_classifier.py", "studies/har/reproduce.py",
            "IR_centralized/train_encoder.py", "IR_centralized/train_classifier.py", "HAR_federated/run.py",
            "data/prepare_har.py", "data/download_stl10.py", "benchmarks/pretrain_speed.py"} <= set(ENTRYPOINTS)


def test_every_entrypoint_help_exits_zero():
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # all at once: each start is mostly importing torch
    running = {e: subprocess.Popen([sys.executable, str(REPO / e), "--help"], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, env=env, cwd=REPO) for e in ENTRYPOINTS}
    for entrypoint, process in running.items():
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0 and "Traceback" not in err, (entrypoint, err[-1000:])
        assert "usage" in out.lower(), entrypoint


@pytest.mark.parametrize("config_cls", [PretrainConfig, HARPretrainConfig, HARClassifierConfig, IRPretrainConfig,
                                        IRClassifierConfig, FederatedConfig, StudyConfig, ClassifierConfig])
def test_every_help_string_formats(config_cls):
    text = build_parser(config_cls).format_help()  # argparse reads % in help strings as a format
    assert "--seed" in text or "--seeds" in text or "--pretrain_seeds" in text


def test_a_percent_sign_in_help_is_printed_as_is():
    assert "74-77% linear" in " ".join(build_parser(IRPretrainConfig).format_help().split())
