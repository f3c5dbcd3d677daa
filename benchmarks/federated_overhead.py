"""Federated rounds in figures: per-round time and bytes for the default model, and the protocol's cost.

Usage: python benchmarks/federated_overhead.py [--rounds 2] [--repeats 5]
Prints, for the default HAR federated config (18 clients, the default multi-task model):
- the model's state size; per round: wall time, clients asked/answered, bytes sent and received;
- the wire's own cost for one client state: frame encoding (safetensors + HMAC-SHA256), a loopback socket
  transfer and decoding with verification, against an in-process FedAvg of the round's states, and the
  session handshake (medians over repeats).
"""
import argparse
import dataclasses
import socket
import statistics
import tempfile
import threading
import time

from common.config import parse_config
from common.federated import fedavg
from har_task import HARTask
from HAR_federated.config import FederatedConfig
from HAR_federated.protocol import (check_tensors, client_handshake, encode_frame, generate_key, read_frame,
                                    server_handshake)
from HAR_federated.run import run_local


def median_seconds(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    config = parse_config(FederatedConfig, [])
    state = {k: v.detach().clone() for k, v in HARTask(config).model().state_dict().items()}
    state_bytes = sum(v.numel() * v.element_size() for v in state.values())
    print(f"default model state: {len(state)} tensors, {state_bytes / 2**20:.2f} MiB; {config.num_clients} clients")

    key = generate_key()
    frame = encode_frame(key, {"type": "update", "round": 0, "num_examples": 1}, state)
    encode_s = median_seconds(lambda: encode_frame(key, {"type": "update"}, state), args.repeats)

    def transfer():
        left, right = socket.socketpair()
        with left, right:
            sender = threading.Thread(target=left.sendall, args=(frame,))
            sender.start()
            _, tensors, _ = read_frame(right, key)
            check_tensors(tensors, state)
            sender.join()

    transfer_s = median_seconds(transfer, args.repeats)
    states = [state] * config.num_clients
    average_s = median_seconds(lambda: fedavg(states, [1] * len(states)), args.repeats)
    print(f"one frame: {len(frame) / 2**20:.2f} MiB ({len(frame) - state_bytes} bytes of framing, header and MAC)")
    print(f"encode (safetensors + HMAC): {1000 * encode_s:.1f} ms; loopback transfer + verify + decode + check: "
          f"{1000 * transfer_s:.1f} ms (medians of {args.repeats})")
    def handshake():
        left, right = socket.socketpair()
        with left, right:
            server = threading.Thread(target=server_handshake, args=(right, key, 10))
            server.start()
            client_handshake(left, key, 0, 100, 10)
            server.join()

    handshake_s = median_seconds(handshake, args.repeats)
    session_fields = len(b',"session":"' + b"0" * 32 + b'","dir":"c2s","seq":1')
    print(f"session framing: a handshake (hello, challenge, proof, welcome) {1000 * handshake_s:.2f} ms once per "
          f"connection; {session_fields} more header bytes per frame (session id, direction, sequence number)")
    per_round_wire = 2 * config.num_clients * (encode_s + transfer_s)
    print(f"wire cost per round ({config.num_clients} clients, both directions, serial): {per_round_wire:.2f} s; "
          f"in-process FedAvg of {config.num_clients} states: {1000 * average_s:.1f} ms")

    with tempfile.TemporaryDirectory() as tmp:
        run_config = dataclasses.replace(config, rounds=args.rounds, output_dir=tmp, experiment_name="bench")
        start = time.perf_counter()
        server, history = run_local(run_config, HARTask(run_config).client_datasets(), log=lambda *_: None)
        total = time.perf_counter() - start
    if server.rocket_setup:  # the rocket task's shared MiniRocket PCA, once before round 1
        setup = server.rocket_setup
        print(f"rocket task's shared PCA: {setup['components']} components of {setup['features']} features from "
              f"{setup['windows']} windows of {setup['clients']['rotate']} clients; sent "
              f"{setup['bytes_sent'] / 2**20:.1f} MiB, received {setup['bytes_received'] / 2**20:.1f} MiB, "
              f"{setup['seconds']:.1f} s")
    for row in history:
        print(f"round {row['round']}: {row['seconds']:.1f} s, asked {row['asked']}, answered {row['answered']}, "
              f"sent {row['bytes_sent'] / 2**20:.1f} MiB, received {row['bytes_received'] / 2**20:.1f} MiB")
    median_round = statistics.median(r["seconds"] for r in history)
    print(f"median round {median_round:.1f} s; wire share of a round ~{100 * per_round_wire / median_round:.1f}% "
          f"(upper bound: the server sends to clients in parallel threads); run incl. start-up {total:.0f} s")


if __name__ == "__main__":
    main()
