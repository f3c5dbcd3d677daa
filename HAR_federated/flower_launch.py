"""Flower's processes for a run on this machine: a SuperLink and one SuperNode per client over gRPC, then
`flwr run` of the app folder HAR_federated/flower/ (whose ServerApp and ClientApp are
HAR_federated/flower_app.py). On a real fleet, start the SuperNodes on the devices (`flower-supernode
--superlink HOST:9092 --node-config "partition-id=K num-partitions=N"`) and submit the app folder to your
SuperLink instead.
"""
import importlib.util
import ipaddress
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common.config import config_to_dict
from ground.errors import UserError

APP_DIR = Path(__file__).resolve().parent / "flower"
# the socket backend works without Flower; the flower backend checks for it here, once
FLOWER_INSTALLED = importlib.util.find_spec("flwr") is not None


def _free_port(host="127.0.0.1"):
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _wait_for_port(host, port, processes, logs, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if any(p.poll() is not None for p in processes):
            raise UserError(f"a Flower process exited early; logs in {logs}")
        with socket.socket() as s:
            if s.connect_ex((host, port)) == 0:
                return
        time.sleep(0.2)
    raise UserError(f"a Flower process did not open port {port} within {timeout} s")


def toml_string(text):
    """A TOML basic string holding `text` exactly: JSON's escapes are TOML's, plus DEL, which TOML forbids raw."""
    return json.dumps(text).replace("\x7f", "\\u007f")


def _node_keys(folder, count):
    """One P-384 key pair per SuperNode, in OpenSSH format (what Flower's node authentication reads)."""
    from cryptography.hazmat.primitives import serialization  # Flower's dependency: there when Flower is
    from cryptography.hazmat.primitives.asymmetric import ec

    keys = []
    for node in range(count):
        private = ec.generate_private_key(ec.SECP384R1())
        private_path, public_path = folder / f"node{node}", folder / f"node{node}.pub"
        private_path.write_bytes(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                                       serialization.NoEncryption()))
        private_path.chmod(0o600)
        public_path.write_bytes(private.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                                  serialization.PublicFormat.OpenSSH))
        keys.append((private_path, public_path))
    return keys


def run_flower(config, timeout_s=1800, app_dir=APP_DIR):
    """SuperLink + one SuperNode per client (gRPC), then `flwr run` of the app (app_dir: a Flower app folder,
    HAR_federated/flower/ unless a test names another); blocks.

    With --tls_cert/--tls_key/--tls_ca every Flower connection is TLS; --flower_node_auth 1 also registers
    each SuperNode's public key with the SuperLink, which then refuses any node it does not know. Without
    TLS the processes talk in plaintext, which is only safe on loopback: any other --host gets a warning.
    """
    if not FLOWER_INSTALLED:
        raise UserError("the flower backend needs Flower: pip install -e .[flower]")
    bin_dir = Path(sys.executable).parent
    tool = {name: str(bin_dir / name) if (bin_dir / name).exists() else shutil.which(name)
            for name in ("flower-superlink", "flower-supernode", "flwr")}
    home = Path(tempfile.mkdtemp(prefix="flwr_home_"))
    # Flower's processes start further Flower executables by name: this environment's come first
    env = {**os.environ, "FLWR_HOME": str(home), "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    tls = bool(config.tls_cert)
    if not tls and not ipaddress.ip_address(socket.gethostbyname(config.host)).is_loopback:
        print(f"warning: the Flower processes talk in plaintext on {config.host}: give --tls_cert, --tls_key and "
              f"--tls_ca (and --flower_node_auth 1) for anything beyond this machine")
    link = _free_port(config.host)  # the SuperLink serves its Fleet, Control and runtime APIs on one port
    address = f"{config.host}:{link}"
    certificates = toml_string(str(Path(config.tls_ca).resolve())) if tls else ""
    security = f"root-certificates = {certificates}\n" if tls else "insecure = true\n"
    (home / "config.toml").write_text(f'[superlink]\ndefault = "loopback"\n\n[superlink.loopback]\n'
                                      f"address = {toml_string(address)}\n{security}")
    run_config = home / "run_config.toml"
    run_config.write_text(f"config-json = {toml_string(json.dumps(config_to_dict(config)))}\n")
    logs = home / "logs"
    logs.mkdir()
    processes = []

    def start(name, args):
        log = open(logs / f"{name}.log", "w")
        processes.append(subprocess.Popen([tool[args[0]], *args[1:]], env=env, stdout=log, stderr=subprocess.STDOUT,
                                          cwd=home))

    def flwr(*args, timeout=120):
        result = subprocess.run([tool["flwr"], *args], env=env, cwd=home, capture_output=True, text=True,
                                timeout=timeout)
        (logs / f"flwr_{args[0]}.log").open("a").write(result.stdout + result.stderr)
        return result

    link_security = (["--ssl-certfile", config.tls_cert, "--ssl-keyfile", config.tls_key, "--ssl-ca-certfile",
                      config.tls_ca] if tls else ["--insecure"])
    node_security = ["--root-certificates", config.tls_ca] if tls else ["--insecure"]
    try:
        start("superlink", ["flower-superlink", *link_security, "--host", config.host, "--port", str(link),
                            "--database", str(home / "state.db"),
                            *(["--enable-supernode-auth"] if config.flower_node_auth else []),
                            # the app's dependencies are this environment's; never fetch them at run time
                            "--disable-runtime-dependency-installation"])
        _wait_for_port(config.host, link, processes, logs)
        keys = _node_keys(home, config.num_clients) if config.flower_node_auth else []
        for private, public in keys:
            if flwr("supernode", "register", str(public), "loopback").returncode != 0:
                raise UserError(f"registering a SuperNode's key failed; logs in {logs}")
        for client_id in range(config.num_clients):
            auth = ["--auth-supernode-private-key", str(keys[client_id][0])] if keys else []
            start(f"supernode{client_id}", [
                "flower-supernode", *node_security, *auth, "--superlink", address,
                "--host", "127.0.0.1", "--port", str(_free_port()),
                "--node-config", f"partition-id={client_id} num-partitions={config.num_clients}"])
        result = flwr("run", str(app_dir), "loopback", "--run-config", str(run_config), "--stream", timeout=timeout_s)
        if result.returncode != 0 or not (config.run_dir() / "encoder.pt").exists():
            raise UserError(f"the Flower run failed; logs in {logs}")
        print(result.stdout[-2000:])
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
    return config.run_dir()
