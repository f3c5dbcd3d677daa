"""Federated client: connects, says hello, answers each "train" with its local update, rejoins if cut off."""
import threading

from common.federated import LocalTrainer
from HAR_federated.protocol import ProtocolError, check_tensors, connect, read_frame, send_frame


class FederatedClient:
    def __init__(self, config, data, client_id, key, server_address, tls_context=None, log=print):
        self.config, self.client_id, self.key, self.address = config, client_id, key, server_address
        self.tls_context, self.log = tls_context, log
        self.local = LocalTrainer(config, data, client_id)
        self.template = {k: v.detach().cpu() for k, v in self.local.model.state_dict().items()}
        self.max_payload = int(config.max_frame_mb * 2**20)
        self.rounds_done = 0
        self.stop_event = threading.Event()  # set by whoever runs the client in a thread, to end its rejoin loop

    def _session(self):
        """One connection: hello, then train/update until "done". Returns True when the server is done."""
        sock = connect(self.address, self.config.io_timeout_s, self.tls_context)
        try:
            send_frame(sock, self.key, {"type": "hello", "client_id": self.client_id,
                                        "num_examples": self.local.num_examples})
            while True:
                sock.settimeout(None)  # between rounds the server may be busy with other clients
                header, tensors, _ = read_frame(sock, self.key, self.max_payload)
                sock.settimeout(self.config.io_timeout_s)
                if header["type"] == "done":
                    return True
                if header["type"] != "train":
                    raise ProtocolError(f"unexpected message {header['type']!r}")
                check_tensors(tensors, self.template)
                state, count, losses = self.local.local_update(tensors, header["round"], header["rounds"],
                                                               header["local_epochs"], header.get("proximal_mu", 0.0))
                send_frame(sock, self.key, {"type": "update", "round": header["round"], "num_examples": count,
                                            "losses": losses}, state)
                self.rounds_done += 1
        finally:
            sock.close()

    def run(self, max_reconnects=20, backoff_s=0.5):
        """Serve rounds until the server says done; reconnect (rejoin) after a dropped connection."""
        for attempt in range(max_reconnects + 1):
            if self.stop_event.is_set():
                return self.rounds_done
            try:
                if self._session():
                    return self.rounds_done
            except (OSError, ProtocolError) as err:
                if self.stop_event.is_set():
                    return self.rounds_done
                self.log(f"client {self.client_id}: connection lost ({err}); rejoining")
            self.stop_event.wait(backoff_s * min(2**attempt, 8))
        raise ProtocolError(f"client {self.client_id}: gave up after {max_reconnects} reconnects")
