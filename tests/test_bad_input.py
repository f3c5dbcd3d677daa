"""Bad input, as a new user types it: one line naming the flag or file, exit code 2, no traceback, and a
previous good run folder left exactly as it was. One row per case (the issue's 28 and their siblings)."""
import socket

import pytest
import torch

from common.checkpoint import save_encoder
from common.encoders import build_encoder
from data import prepare_har
from HAR_centralized import train_classifier, train_encoder
from HAR_federated import run as federated
from IR_centralized import train_encoder as image_train_encoder

# the good run where each entrypoint would write it: the thesis's four tasks (federated, images) and HAR's
# default recipe (rocket alone)
GOOD = ("good_seed42_heads1111", "good_seed42_tasksrocket")


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """An output folder holding a finished good run, and the bad files the cases point at."""
    monkeypatch.setenv("MTSSL_FED_KEY", "k" * 32)
    runs = tmp_path / "runs"
    torch.manual_seed(0)
    encoder = build_encoder("cnn1d", in_channels=9, width=4, depth=2, embedding_dim=8)
    for good in (runs / name for name in GOOD):
        good.mkdir(parents=True)
        for name, text in (("config.json", "{}\n"), ("metrics.jsonl", '{"epoch": 1}\n'), ("summary.json", "{}\n")):
            (good / name).write_text(text)
        save_encoder(encoder, good / "encoder.pt", {"input_shape": [9, 128]})
    good = runs / GOOD[0]
    files = tmp_path / "files"
    files.mkdir()
    (files / "empty.pt").write_bytes(b"")
    (files / "binary.key").write_bytes(bytes(range(256)) * 2)
    huge = dict(encoder.model_args, width=10**7)
    torch.save({"model_args": huge, "state_dict": encoder.state_dict()}, files / "huge_width.pt")
    nan_state = {k: v.clone() for k, v in encoder.state_dict().items()}
    next(v for k, v in nan_state.items() if k.endswith("weight")).fill_(float("nan"))
    torch.save({"model_args": encoder.model_args, "state_dict": nan_state}, files / "nan_weight.pt")
    negative = {k: (-v if k.endswith("running_var") else v) for k, v in encoder.state_dict().items()}
    torch.save({"model_args": encoder.model_args, "state_dict": negative}, files / "negative_variance.pt")
    cache = tmp_path / "cache"
    (cache / "uci_har_hapt_recipe3.npz").mkdir(parents=True)  # a folder where the cache file belongs
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    yield {"runs": runs, "good": good, "files": files, "cache": cache, "busy_port": busy.getsockname()[1]}
    busy.close()


HAR = train_encoder.main
IR = image_train_encoder.main
CLASSIFIER = train_classifier.main
FED = federated.main
SMOKE = ["--preset", "cpu_smoke"]
SERVER = ["--role", "server"]
CASES = [
    # (id, entrypoint, flags ({files}, {runs}, {busy_port} filled in), words the one line must hold)
    ("batch_size_1", HAR, ["--batch_size", "1"], "--batch_size must be at least 2"),
    ("ir_one_image", IR, [*SMOKE, "--max_images", "1"], "--max_images"),
    ("seed_negative", HAR, ["--seed", "-1"], "--seed must be between 0 and"),
    ("seed_too_large", HAR, ["--seed", "4294967296"], "--seed must be between 0 and"),
    ("warmup_nan", HAR, ["--warmup_epochs", "nan"], "--warmup_epochs must be a finite number"),
    ("warmup_inf", HAR, ["--warmup_epochs", "inf"], "--warmup_epochs must be a finite number"),
    ("frame_nan", FED, ["--max_frame_mb", "nan"], "--max_frame_mb must be a finite number"),
    ("frame_inf", FED, ["--max_frame_mb", "inf"], "--max_frame_mb must be a finite number"),
    ("lr_inf", HAR, ["--lr", "inf"], "--lr must be a finite number"),
    ("output_dir_is_a_file", HAR, ["--output_dir", "{files}/empty.pt"], "--output_dir"),
    ("output_dir_forbidden", HAR, ["--output_dir", "/proc/forbidden"], "--output_dir /proc/forbidden"),
    ("classifier_output_dir_is_a_file", CLASSIFIER,
     ["--encoder", "{runs}/" + GOOD[0], "--output_dir", "{files}/empty.pt"], "--output_dir"),
    ("device_mps", HAR, ["--device", "mps"], "--device mps"),
    ("device_cuda", HAR, ["--device", "cuda"], "--device cuda"),
    ("classifier_device_mps", CLASSIFIER, ["--device", "mps"], "--device mps"),
    ("dwa_temperature_0", HAR, ["--weighting", "dwa", "--dwa_temperature", "0"], "--dwa_temperature"),
    ("resnet_depth_9", IR, [*SMOKE, "--encoder_depth", "9"], "depth must be an integer in 1..4"),
    ("cnn_width_0", HAR, ["--encoder_width", "0"], "width must be an integer"),
    ("huge_width_encoder", CLASSIFIER, ["--encoder", "{files}/huge_width.pt"], "width must be an integer"),
    ("nan_weight_encoder", CLASSIFIER, ["--encoder", "{files}/nan_weight.pt"], "NaN or infinite"),
    ("negative_variance_encoder", CLASSIFIER, ["--encoder", "{files}/negative_variance.pt"], "variance"),
    ("not_an_encoder", CLASSIFIER, ["--encoder", "{files}/empty.pt"], "empty.pt"),
    ("binary_key", FED, [*SERVER, "--key_file", "{files}/binary.key"], "is not text"),
    ("port_too_large", FED, ["--port", "70000"], "--port must be in 0..65535"),
    ("port_negative", FED, ["--port", "-1"], "--port must be in 0..65535"),
    ("unknown_host", FED, [*SERVER, "--host", "no-such-host.invalid", "--port", "0"], "cannot listen on --host"),
    ("port_in_use", FED, [*SERVER, "--port", "{busy_port}"], "cannot listen on --host"),
    ("missing_tls_cert", FED, ["--tls_cert", "{files}/missing.pem", "--tls_key", "{files}/empty.pt"], "--tls_cert"),
    ("tls_key_without_cert", FED, ["--tls_key", "{files}/empty.pt"], "--tls_cert and --tls_key go together"),
    ("tls_cert_without_key", FED, ["--tls_cert", "{files}/empty.pt"], "--tls_cert and --tls_key go together"),
    ("missing_tls_ca", FED, ["--tls_ca", "{files}/missing.pem"], "--tls_ca"),
    ("not_a_certificate", FED, [*SERVER, "--port", "0", "--tls_cert", "{files}/empty.pt", "--tls_key",
                                "{files}/empty.pt"], "--tls_cert"),
    ("proximal_mu_nan", FED, ["--proximal_mu", "nan"], "--proximal_mu must be a finite number"),
    ("temperature_inf", HAR, ["--temperature", "inf"], "--temperature must be a finite number"),
    ("probe_c_inf", CLASSIFIER, ["--probe", "logistic:inf"], "write logistic:C (C finite and > 0"),
    ("probe_scaler", CLASSIFIER, ["--probe_scalers", "median"], "--probe_scalers some of all, labelled"),
    ("io_timeout_inf", FED, ["--io_timeout_s", "inf"], "--io_timeout_s must be a finite number"),
    ("server_without_port", FED, ["--role", "client", "--server", "localhost"], "--server takes HOST:PORT"),
    ("server_port_not_a_number", FED, ["--role", "client", "--server", "127.0.0.1:http"], "--server takes HOST:PORT"),
    ("round_timeout_zero", FED, ["--round_timeout_s", "0"], "--round_timeout_s"),
    ("rerun_of_a_finished_run", HAR, ["--overwrite", "0"], "already holds a run: --resume 1 continues it"),
    ("resume_and_overwrite", HAR, ["--resume", "1"], "contradict each other"),
]


@pytest.mark.parametrize("entrypoint, flags, words", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_input_is_one_line_and_touches_nothing(workspace, capsys, entrypoint, flags, words):
    before = {p: p.read_bytes() for p in workspace["runs"].rglob("*") if p.is_file()}
    argv = []
    if entrypoint is not CLASSIFIER:  # aimed at the good run, and allowed to replace it: nothing may reach it
        argv = ["--experiment_name", "good", "--overwrite", "1", "--output_dir", str(workspace["runs"])]
    argv += [f.format(**workspace) for f in flags]  # later flags win
    with pytest.raises(SystemExit) as exit_info:
        entrypoint(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and words in err, err
    assert {p: p.read_bytes() for p in workspace["runs"].rglob("*") if p.is_file()} == before


def test_a_folder_in_place_of_the_data_cache_is_one_line(workspace, monkeypatch, capsys):
    monkeypatch.setattr("data_processing.har.CACHE_DIR", workspace["cache"])
    with pytest.raises(SystemExit) as exit_info:
        prepare_har.main(["--source", "hapt"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "is a folder where the UCI HAR cache file belongs" in err
    assert len(err.strip().splitlines()) == 1
