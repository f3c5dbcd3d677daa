"""One insider against the federated server: each attack of the campaign rerun on loopback, what happens now.

Usage:
    python benchmarks/federated_attacks.py                 # UCI HAR: 3 honest clients, 4 rounds each run
    python benchmarks/federated_attacks.py --rounds 6 --windows 512
Three honest clients hold the train subjects' UCI HAR windows (--windows each, a small encoder so a run takes
seconds); a fourth connection is the insider, holding a key. Per attack it prints whether the run completed,
the rounds it took, what the server logged, and the relative L2 distance of the final global model from the
honest run's (same seeds, no insider): 0 means the insider changed nothing.
"""
import argparse
import dataclasses
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

from common.classification import load_pretrained_encoder
from ground.errors import UserError
from har_task import HARTask
from data_processing.pretext import PretrainData
from HAR_federated import protocol
from HAR_federated import run as run_module
from HAR_federated.client import FederatedClient
from HAR_federated.config import FederatedConfig
from HAR_federated.run import run_local
from HAR_federated.server import FederatedServer

TASKS = ("augmentation", "reconstruction", "contrastive", "features")
SHARED_KEY = b"benchmark shared key 0123456789abcdef"


def honest_clients(config, windows):
    """The train subjects in 3 clients, `windows` windows each (the first ones: the same every run)."""
    datasets = HARTask(dataclasses.replace(config, num_clients=3)).client_datasets()
    return {c: PretrainData(d.x[:windows], d.features[:windows], d.spec, d.info) for c, d in datasets.items()}


def update(tensors, header, value=None, examples=10, losses=None, integer=None, variance=None):
    body = {k: (torch.full_like(v, value) if value is not None and v.is_floating_point() else v)
            for k, v in tensors.items()}
    if variance is not None:
        body = {k: torch.full_like(v, variance) if k.endswith("running_var") else v for k, v in body.items()}
    if integer is not None:
        body = {k: torch.full_like(v, integer) if not v.is_floating_point() else v for k, v in body.items()}
    return ({"type": "update", "round": header["round"], "num_examples": examples,
             "losses": losses or {t: 1.0 for t in TASKS}}, body)


def insider(port, client_id, key, on_train, claimed_examples):
    """A peer holding `key`: a real handshake as client_id, then on_train(header, tensors) -> frame or None."""
    def run():
        sock = None
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            channel = protocol.client_handshake(sock, key, client_id, claimed_examples, 10)
            sock.settimeout(120)  # not the handshake deadline's remainder: a loaded round takes longer
            while True:
                header, tensors, _ = channel.receive()
                if header["type"] == "ping":
                    continue
                if header["type"] != "train":
                    return
                frame = on_train(header, tensors)
                if frame is not None:
                    channel.send(*frame)
        except (OSError, protocol.ProtocolError):
            pass
        finally:  # a killed process's connection closes
            if sock is not None:
                sock.close()
    threading.Thread(target=run, daemon=True).start()


def stealthy(factor):
    """on_train of an insider that moves the model `factor` times as far as the last round moved it, in a random
    direction (the weights only; batch-norm statistics and counters as received)."""
    previous = {}
    generator = torch.Generator().manual_seed(0)

    def on_train(header, tensors):
        statistics = ("running_mean", "running_var")
        names = [k for k, v in tensors.items() if v.is_floating_point() and not k.endswith(statistics)]
        step = (torch.sqrt(sum(((tensors[k].double() - previous[k].double()) ** 2).sum() for k in names))
                if previous else torch.tensor(0.0))
        previous.update({k: v.clone() for k, v in tensors.items()})
        noise = {k: torch.randn(tensors[k].shape, generator=generator, dtype=torch.float64) for k in names}
        norm = torch.sqrt(sum((n ** 2).sum() for n in noise.values()))
        body = {k: (tensors[k].double() + factor * step * noise[k] / norm).to(tensors[k].dtype) if k in noise
                else tensors[k] for k in tensors}
        return update(body, header, examples=10**6)
    return on_train


def distance(a, b):
    """Relative L2 distance between two encoders' floating weights."""
    keys = [k for k in a if a[k].is_floating_point()]
    diff = torch.sqrt(sum(((a[k].double() - b[k].double()) ** 2).sum() for k in keys))
    return float(diff / torch.sqrt(sum((b[k].double() ** 2).sum() for k in keys)))


def run_beside(config, datasets, key, on_server, on_round_end=None):
    """(completed?, rounds, seconds of its rounds (the server's clock), rejections, final encoder state, log lines)
    of a local run whose server is handed to on_server(server, key) as soon as it listens (to start insiders)."""
    original, lines, servers = run_module.make_server, [], []

    def make(config, key, log=print, task=None):
        server = original(config, key, log, task)
        servers.append(server)
        on_server(server, key)
        return server

    run_module.make_server = make
    start = time.time()
    try:
        server, history = run_local(config, datasets, key, on_round_end=lambda r: on_round_end and on_round_end(
            servers[0], r), log=lines.append)
        completed = len(history) == config.rounds
    except UserError as err:
        lines.append(f"run ended: {err}")
        server, completed, history = servers[0], False, []
    finally:
        run_module.make_server = original
    state = load_pretrained_encoder(config.run_dir() / "encoder.pt")[1] if completed else None
    seconds = sum(r["seconds"] for r in history) if history else time.time() - start
    return completed, len(history), seconds, list(server.rejected), state, lines


def attacked_run(config, datasets, on_train=None, key=SHARED_KEY, insider_key=None, insider_id=3,
                 claimed_examples=100, insiders=1):
    """run_beside's result for a run with the insider (`insiders` of them: ids insider_id, insider_id + 1, ...),
    joining once the honest clients are in. key None: per-client keys (the local role's default), the insider
    holding client insider_key's."""
    def start_insiders(server, key):
        if on_train is not None:
            own = key[insider_key] if isinstance(key, dict) else key
            for offset in range(insiders):
                threading.Thread(target=lambda i=insider_id + offset: server.wait_for_clients(len(datasets), 60)
                                 and insider(server.port, i, own, on_train, claimed_examples), daemon=True).start()

    def let_it_in(server, round_index):
        if round_index == 0 and on_train is not None:
            server.wait_for_clients(len(datasets) + insiders, 10)

    return run_beside(config, datasets, key, start_insiders, let_it_in)


def crash_run(config, datasets):
    """run_beside's result for a run whose client 2 dies after receiving the weights of its first round and is
    restarted (a fresh process, its own data): the round is retried once the restart has rejoined."""
    restarted = []

    def start_the_doomed_client(server, key):
        def crash_then_restart(header, tensors):
            client = FederatedClient(config, datasets[2], 2, SHARED_KEY, f"127.0.0.1:{server.port}",
                                     log=lambda *_: None)
            restarted.append(threading.Thread(target=client.run, daemon=True))
            restarted[-1].start()
            raise OSError("killed")  # the insider's connection closes without an answer

        threading.Thread(target=lambda: server.wait_for_clients(2, 60) and insider(
            server.port, 2, SHARED_KEY, crash_then_restart, len(datasets[2].x)), daemon=True).start()

    result = run_beside(config, {c: datasets[c] for c in (0, 1)}, SHARED_KEY, start_the_doomed_client)
    for thread in restarted:
        thread.join(timeout=60)
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description="Federated insider attacks, rerun")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--windows", type=int, default=256, help="windows per honest client")
    args = parser.parse_args(argv)
    out = Path(tempfile.mkdtemp(prefix="fed_attacks_"))
    counter = iter(range(1000))

    def config(**overrides):
        values = dict(output_dir=str(out / f"run{next(counter)}"), rounds=args.rounds, local_epochs=1, num_clients=4,
                      min_clients=3, batch_size=32, encoder_width=8, embedding_dim=16, n_variants=1, device="cpu",
                      experiment_name="attack", round_grace_s=2.0, max_examples=10**6,
                      # the thesis's tasks on the labelled windows: as measured
                      pretrain_data="labelled", tasks=("augmentation", "reconstruction", "contrastive", "features"))
        values.update(overrides)
        c = FederatedConfig(**values)
        c.validate()
        return c

    datasets = honest_clients(config(), args.windows)
    honest = {}
    print(f"3 honest clients x {args.windows} UCI HAR windows, {args.rounds} rounds; runs under {out}\n")
    print("| attack | aggregation | completed | rounds | round seconds | relative L2 from the honest run "
          "| what the server said |")
    print("|---|---|---|---|---|---|---|")

    def row(attack, aggregation, result, note=None):
        completed, rounds, seconds, rejected, state, lines = result
        key = aggregation
        if key not in honest:
            honest[key] = attacked_run(config(**agg_flags(aggregation)), datasets)[4]
        gap = f"{distance(state, honest[key]):.4f}" if state is not None else "-"
        said = note or (rejected[-1][:90] if rejected else "nothing")
        print(f"| {attack} | {aggregation} | {completed} | {rounds} | {seconds:.0f} | {gap} | {said} |", flush=True)

    def agg_flags(aggregation):
        name, _, clip = aggregation.partition("+clip")
        return {"aggregation": name, "update_clip": float(clip or 0), "update_norm_factor": 10.0}

    for value in (2000.0, 9999.0):
        result = attacked_run(config(), datasets, lambda h, t, v=value: update(t, h, v, examples=100))
        row(f"every float {value:g}, 100 samples", "fedavg", result)
    # the campaign's robust-option case: 9000 everywhere, declaring 10^6 samples; with and without the new screening
    for aggregation in ("fedavg", "median", "trimmed_mean", "fedavg+clip1", "median+clip1"):
        for factor in (10.0, 0.0):
            flags = {**agg_flags(aggregation), "update_norm_factor": factor}
            result = attacked_run(config(**flags), datasets, lambda h, t: update(t, h, 9000.0, examples=10**6),
                                  claimed_examples=10**6)
            row(f"9000 everywhere, 10^6 samples{'' if factor else ' (screening off)'}", aggregation, result)

    # an adaptive insider: a random direction, sized just under the bound (9 x the global's last step, which is
    # no larger than an honest update), declaring 10^6 samples
    for aggregation in ("fedavg", "median", "trimmed_mean", "fedavg+clip1"):
        result = attacked_run(config(**agg_flags(aggregation)), datasets, stealthy(9.0), claimed_examples=10**6)
        row("random direction at 9 x the global's last step, 10^6 samples", aggregation, result)
    result = attacked_run(config(num_clients=3), datasets, lambda h, t: update(t, h), key=None, insider_key=2,
                          insider_id=0)
    row("per-client keys: client 2's key claiming client 0", "fedavg", result,
        f"{sum('bad MAC' in r for r in result[3])} hellos refused (bad MAC)")
    result = attacked_run(config(), datasets, lambda h, t: update(
        t, h, losses={"x\nround 999/999: FORGED": 1.0, **{n: 1.0 for n in TASKS[1:]}}))
    forged = [line for line in result[5] if line.startswith("round 999")]
    row("loss name with a newline", "fedavg", result, f"{len(forged)} forged lines; {result[3][-1][:60]}")
    result = attacked_run(config(), datasets, lambda h, t: update(t, h, losses={n: 1.7e308 for n in TASKS}))
    row("losses of 1.7e308", "fedavg", result)
    # updates that change nothing: the global model echoed (weights' update norm 0), by one and by two insiders
    result = attacked_run(config(), datasets, lambda h, t: update(t, h))
    row("the global model echoed (norm 0), one insider, 3 honest", "fedavg", result)
    result = attacked_run(config(num_clients=5), datasets, lambda h, t: update(t, h), insiders=2)
    row("the global model echoed, two insiders, 3 honest", "fedavg", result)
    two = {c: datasets[c] for c in (0, 1)}
    honest["fedavg, 2 honest"] = attacked_run(config(num_clients=2, min_clients=2), two)[4]
    for count in (1, 2):
        result = attacked_run(config(num_clients=2 + count, min_clients=2), two, lambda h, t: update(t, h),
                              insider_id=2, insiders=count)
        row(f"the global model echoed, {count} insider(s), 2 honest", "fedavg, 2 honest", result)
    result = attacked_run(config(), datasets, lambda h, t: update(t, h, variance=0.0))
    row("running_var set to 0", "fedavg", result)

    # an honest client killed mid-round with --min_clients at the live count; its restart rejoins
    honest["fedavg, 3 honest of 3"] = attacked_run(config(num_clients=3, min_clients=3), datasets)[4]
    result = crash_run(config(num_clients=3, min_clients=3, connect_wait_s=60.0), datasets)
    row("an honest client killed mid-round, --min_clients 3 of 3, restarted", "fedavg, 3 honest of 3", result)

    for integer in (2**63 - 1, -2**62):
        result = attacked_run(config(), datasets, lambda h, t, i=integer: update(t, h, integer=i))
        row(f"num_batches_tracked {integer}", "fedavg", result)
    result = attacked_run(config(round_timeout_s=600.0), datasets, lambda h, t: time.sleep(120))
    row("silent insider (round_timeout 600 s)", "fedavg", result)

    # a truncated newest checkpoint: the server falls back one round, the clients keep that round's state
    straight = config()
    attacked_run(straight, datasets)
    killed, original = config(), FederatedServer._checkpoint

    def die(self, round_index):
        if round_index == 2:
            raise KeyboardInterrupt
        original(self, round_index)

    FederatedServer._checkpoint = die
    try:
        attacked_run(killed, datasets)
    except KeyboardInterrupt:
        pass
    finally:
        FederatedServer._checkpoint = original
    checkpoint = killed.run_dir() / "checkpoint.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:100])
    resumed = attacked_run(dataclasses.replace(killed, resume=1), datasets)
    gap = distance(resumed[4], load_pretrained_encoder(straight.run_dir() / "encoder.pt")[1])
    print(f"| truncated newest checkpoint, resumed | fedavg | {resumed[0]} | {resumed[1]} | {resumed[2]:.0f} | "
          f"{gap:.4f} (vs the uninterrupted run) | "
          f"{sum('not exact' in line for line in resumed[5])} 'not exact' lines |")

    # a black-holed session: the client notices the silence
    listener, held = socket.create_server(("127.0.0.1", 0)), []

    def black_hole():  # completes the handshake, promises pings every second, then holds the socket silently
        sock = listener.accept()[0]
        protocol.server_handshake(sock, SHARED_KEY, 5, 1.0)
        held.append(sock)

    threading.Thread(target=black_hole, daemon=True).start()
    client = FederatedClient(config(io_timeout_s=2.0), datasets[0], 0, SHARED_KEY,
                             f"127.0.0.1:{listener.getsockname()[1]}", log=lambda *_: None)
    start = time.time()
    try:
        client._session()
    except protocol.ProtocolError as err:
        print(f"\nblack-holed session (keep-alive 1 s, io_timeout 2 s): the client gave it up after "
              f"{time.time() - start:.1f} s ({err})")
    listener.close()


if __name__ == "__main__":
    main(sys.argv[1:])
