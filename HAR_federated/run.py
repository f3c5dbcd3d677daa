"""Federated multi-task pretraining on UCI HAR: each train subject's windows are one client's private data.

Usage:
    python HAR_federated/run.py                                   # server + clients as threads, real sockets
    python HAR_federated/run.py --rounds 30 --client_fraction 0.5 --proximal_mu 0.01
    python HAR_federated/run.py --role enrol --client_keys keys/enrolment.json      # one key per client
    python HAR_federated/run.py --role server --client_keys keys/enrolment.json --host 0.0.0.0 --port 8765
    python HAR_federated/run.py --role client --key_file keys/enrolment.json.client3.key --server HOST:8765 \
        --client_id 3
    (MTSSL_FED_KEY=... with --role server / client and no --client_keys: one key shared by all, weaker)
    python HAR_federated/run.py --backend flower                  # the same training through Flower
The encoder is saved like a centralized run's: HAR_centralized/train_classifier.py --encoder <run folder>.
"""
import dataclasses
import ssl
import sys
import threading

from common.config import parse_config
from ground.errors import UserError, exit_on_user_error
from common.run_folder import RunFolder
from HAR_federated.client import FederatedClient
from HAR_federated.config import FederatedConfig
from HAR_federated.flower_launch import run_flower
from HAR_federated.protocol import (LineLog, ProtocolError, generate_key, line_log, load_client_keys, load_key,
                                   write_enrolment)
from HAR_federated.server import FederatedServer
from har_task import HARTask


def server_tls(config):
    if not config.tls_cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(config.tls_cert, config.tls_key or None)
    except (ssl.SSLError, OSError) as err:
        raise UserError(f"--tls_cert {config.tls_cert} / --tls_key: not a usable certificate and key ({err})") from None
    return context


def client_tls(config):
    if not config.tls_ca:
        return None
    try:
        return ssl.create_default_context(cafile=config.tls_ca)
    except (ssl.SSLError, OSError) as err:
        raise UserError(f"--tls_ca {config.tls_ca}: not a usable CA certificate ({err})") from None


def make_server(config, key, log=print, task=None):
    run = RunFolder(config.run_dir())
    try:
        server = FederatedServer(config, task or HARTask(config), key, run, server_tls(config), log)
    except OSError as err:  # an unknown host, a port in use or not ours to bind
        raise UserError(f"cannot listen on --host {config.host} --port {config.port}: {err.strerror or err}") from None

    def restore():
        server.resume()  # reads the checkpoint, writes nothing
        return server.start_round

    server.finished = run.open(config, config.rounds, "round", restore, log) is None
    return server


def run_local(config, datasets, key=None, on_round_end=None, log=print, task=None):
    """Server and one thread per client in this process, talking over sockets on config.host. key: one shared
    key (bytes); None: a fresh key per client (the server holds them all, each client only its own). task: the
    HARTask the model and the encoder's data record come from (default: one of `config`)."""
    log = line_log(log)
    keys = {client_id: generate_key() for client_id in datasets} if key is None else None
    config = dataclasses.replace(config, port=0)  # threads of one process: any free port
    server = make_server(config, keys if key is None else key, log, task)
    address = f"{config.host}:{server.port}"
    log(f"server on {address}; {len(datasets)} clients ({'one key each' if key is None else 'a shared key'}); "
        f"run folder {server.run_folder.path}")
    clients = [FederatedClient(config, data, client_id, key or keys[client_id], address, client_tls(config), log)
               for client_id, data in datasets.items()]
    threads = [threading.Thread(target=client.run) for client in clients]
    for thread in threads:
        thread.start()
    try:
        history = server.run(on_round_end)
    finally:
        for client in clients:  # a server that stopped (or died) takes its local clients with it
            client.stop_event.set()
        for thread in threads:  # joined, not abandoned: a thread inside torch at exit aborts the interpreter
            thread.join(timeout=max(60.0, config.round_timeout_s))
            if thread.is_alive():
                log("warning: a client thread did not stop in time")
    return server, history


@exit_on_user_error
def main(argv=None):
    config = parse_config(FederatedConfig, argv, description="Federated multi-task SSL on UCI HAR")
    try:
        if config.backend == "flower":
            run_flower(config)
        elif config.role == "local":
            key = load_key(config.key_file) if config.key_file else None
            task = HARTask(config)
            run_local(config, task.client_datasets(), key, task=task)
        elif config.role == "enrol":
            write_enrolment(config.client_keys, config.num_clients)
            print(f"{config.num_clients} client keys: the server's file {config.client_keys}, and "
                  f"{config.client_keys}.client<id>.key for each client (give each client only its own)")
            return
        elif config.role == "server":
            key = load_client_keys(config.client_keys) if config.client_keys else load_key(config.key_file)
            make_server(config, key, LineLog()).run()
        else:
            datasets = HARTask(config).client_datasets()
            if config.client_id not in datasets:
                raise UserError(f"--client_id must be in 0..{config.num_clients - 1}")
            FederatedClient(config, datasets[config.client_id], config.client_id, load_key(config.key_file),
                            config.server, client_tls(config)).run()
    except ProtocolError as err:
        raise UserError(str(err)) from None
    print(f"done; encoder: {config.run_dir() / 'encoder.pt'}" if config.role != "client" else "client done")


if __name__ == "__main__":
    main(sys.argv[1:])
