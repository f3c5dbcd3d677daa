"""The federated server under a connection flood, in figures (loopback only, bounded in count and time).

Usage: python benchmarks/federated_flood.py [--idle 1000] [--big 12] [--rounds 3]
Starts the socket server and two honest clients in this process (tiny model), and a second process that
opens --idle idle connections and --big connections each announcing a 60 MiB frame and then sending it
slowly, and holds them. Prints the server's peak open connections, connections refused, peak memory of
this process, its CPU use during the flood, and the rounds the honest clients completed.
"""
import argparse
import dataclasses
import resource
import subprocess
import sys
import tempfile
import threading
import time

from common.config import parse_config
from har_task import HARTask
from HAR_federated import run as run_module
from HAR_federated.config import FederatedConfig
from HAR_federated.protocol import MAGIC, PREFIX, VERSION, generate_key

FLOOD = """
import socket, sys, time
port, idle, big, prefix = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), bytes.fromhex(sys.argv[4])
held = []
for i in range(idle + big):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=2)
        if i >= idle:
            s.sendall(prefix)  # announces a 60 MiB payload, then dribbles it
        held.append(s)
    except OSError:
        pass
print(len(held), flush=True)
end = time.time() + float(sys.argv[5])
while time.time() < end:
    for s in held[idle:]:
        try:
            s.send(b"x")
        except OSError:
            pass
    time.sleep(0.5)
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle", type=int, default=1000)
    parser.add_argument("--big", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hold_s", type=float, default=60.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = parse_config(FederatedConfig, ["--output_dir", tmp, "--rounds", str(args.rounds), "--num_clients", "2",
                                                "--min_clients", "2", "--encoder_width", "8", "--embedding_dim", "16",
                                                "--n_variants", "1", "--io_timeout_s", "5", "--device", "cpu",
                                                "--pretrain_data", "labelled", "--tasks", "augmentation",
                                                "reconstruction", "contrastive", "features"])  # as measured
        datasets = HARTask(config).client_datasets()
        original, peak, flood = run_module.make_server, {"open": 0}, {}
        prefix = PREFIX.pack(MAGIC, VERSION, 100, 60 * 2**20).hex()

        def make_server(config, key, log=print):
            server = original(config, key, log)
            flood["process"] = subprocess.Popen([sys.executable, "-c", FLOOD, str(server.port), str(args.idle),
                                                 str(args.big), prefix, str(args.hold_s)], stdout=subprocess.PIPE,
                                                text=True)

            def watch():
                while flood["process"].poll() is None:
                    peak["open"] = max(peak["open"], server.open_connections)
                    time.sleep(0.05)

            threading.Thread(target=watch, daemon=True).start()
            flood["server"] = server
            return server

        run_module.make_server = make_server
        start, cpu_start = time.time(), time.process_time()
        server, history = run_module.run_local(dataclasses.replace(config), datasets, generate_key(),
                                               log=lambda *a: None)
        wall, cpu = time.time() - start, time.process_time() - cpu_start
        process = flood["process"]
        held = process.stdout.readline().strip()
        process.terminate()
        process.wait()
    print(f"flood: {args.idle} idle + {args.big} slow 60 MiB-frame connections from another process ({held} opened)")
    print(f"server: peak open connections {peak['open']} (cap {config.max_connections}), refused "
          f"{server.refused_connections}, rejections logged {len(server.rejected)}")
    print(f"honest clients: {len(history)} of {args.rounds} rounds completed in {wall:.1f} s")
    print(f"this process: CPU {cpu / wall:.0%} of one core over the run, peak RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10:.0f} MiB")


if __name__ == "__main__":
    main()
