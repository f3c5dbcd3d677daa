"""Federated multi-task pretraining on UCI HAR: each train subject's windows are one client's private data.

Usage:
    python HAR_federated/run.py                                   # server + clients as threads, real sockets
    python HAR_federated/run.py --rounds 30 --client_fraction 0.5 --proximal_mu 0.01
    MTSSL_FED_KEY=... python HAR_federated/run.py --role server --host 0.0.0.0 --port 8765
    MTSSL_FED_KEY=... python HAR_federated/run.py --role client --server HOST:8765 --client_id 3
    python HAR_federated/run.py --backend flower                  # the same training through Flower
The encoder is saved like a centralized run's: HAR_centralized/train_classifier.py --encoder <run folder>.
"""
import dataclasses
import ssl
import sys
import threading

from common.config import parse_config
from common.errors import UserError, exit_on_user_error
from common.har_task import har_client_datasets, har_model
from common.run_folder import RunFolder
from HAR_federated.client import FederatedClient
from HAR_federated.config import FederatedConfig
from HAR_federated.flower_app import run_flower
from HAR_federated.protocol import ProtocolError, generate_key, load_key
from HAR_federated.server import FederatedServer


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


def make_server(config, key, log=print):
    run = RunFolder(config.run_dir())
    try:
        server = FederatedServer(config, har_model(config), key, run, server_tls(config), log)
    except OSError as err:  # an unknown host, a port in use or not ours to bind
        raise UserError(f"cannot listen on --host {config.host} --port {config.port}: {err.strerror or err}") from None
    resume = bool(config.resume) and run.has_checkpoint()
    if resume:
        server.resume()  # reads the checkpoint, writes nothing
        if server.start_round >= config.rounds and (run / run.SUMMARY).exists() and (run / run.ENCODER).exists():
            log(f"{run.path} has finished all {config.rounds} rounds: nothing to resume "
                f"(--rounds N continues it further, --overwrite 1 replaces it)")
            server.finished = True
            return server
    else:
        run.check_can_start(resume=False, overwrite=config.overwrite)
    run.start(config, resume=resume)  # only once the server can run: a failed start touches no run folder
    if resume:
        run.prune_metrics("round", server.start_round)
    return server


def run_local(config, datasets, key=None, on_round_end=None, log=print):
    """Server and one thread per client in this process, talking over sockets on config.host."""
    key = key or generate_key()
    config = dataclasses.replace(config, port=0)  # threads of one process: any free port
    server = make_server(config, key, log)
    address = f"{config.host}:{server.port}"
    log(f"server on {address}; {len(datasets)} clients; run folder {server.run_folder.path}")
    clients = [FederatedClient(config, data, client_id, key, address, client_tls(config), log)
               for client_id, data in datasets.items()]
    threads = [threading.Thread(target=client.run, daemon=True) for client in clients]
    for thread in threads:
        thread.start()
    try:
        history = server.run(on_round_end)
    finally:
        for client in clients:  # a server that stopped (or died) takes its local clients with it
            client.stop_event.set()
        for thread in threads:
            thread.join(timeout=10)
    return server, history


@exit_on_user_error
def main(argv=None):
    config = parse_config(FederatedConfig, argv, description="Federated multi-task SSL on UCI HAR")
    try:
        if config.backend == "flower":
            run_flower(config)
        elif config.role == "local":
            key = load_key(config.key_file) if config.key_file else None
            run_local(config, har_client_datasets(config), key)
        elif config.role == "server":
            make_server(config, load_key(config.key_file)).run()
        else:
            datasets = har_client_datasets(config)
            if config.client_id not in datasets:
                raise UserError(f"--client_id must be in 0..{config.num_clients - 1}")
            FederatedClient(config, datasets[config.client_id], config.client_id, load_key(config.key_file),
                            config.server, client_tls(config)).run()
    except ProtocolError as err:
        raise UserError(str(err)) from None
    print(f"done; encoder: {config.run_dir() / 'encoder.pt'}" if config.role != "client" else "client done")


if __name__ == "__main__":
    main(sys.argv[1:])
