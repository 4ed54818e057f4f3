"""Which power sensor a run uses, and on which GPUs.

- ``power: none``, or an in-process run on CPU: the null sensor (energy null, never 0).
- hf runner on CUDA: the one GPU it computes on (the first visible one) unless ``gpus`` names others.
- server runners: the ``gpus`` given, else every visible GPU when the server is on this machine (its URL's
  host is loopback or this host); a remote server gets the null sensor unless ``gpus`` is given.
Samples are delivered on the run's own thread (``delivery="drain"``): the harness drains them into
``power.jsonl`` after every request, and ``stop()`` adds a final sample at the window's end.
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

from capbench.config import RunSpec
from capbench.telemetry import NullSensor, PowerSensor, open_power_sensor


def is_local_url(url: str) -> bool:
    """True when ``url``'s host is this machine (loopback, or one of this host's names or addresses)."""
    host = (urlsplit(url).hostname or "").lower()
    if host in {"localhost", "0.0.0.0", "::", ""} or host.startswith("127.") or host == "::1":
        return True
    names = {socket.gethostname().lower(), socket.getfqdn().lower()}
    if host in names:
        return True
    try:
        local = {info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None)}
        return host in local or any(info[4][0] in local for info in socket.getaddrinfo(host, None))
    except OSError:
        return False


def open_run_sensor(spec: RunSpec, device: str) -> PowerSensor:
    """The power sensor for a run of ``spec`` on ``device`` (``cpu``, ``cuda`` or ``server``)."""
    if spec.power == "none":
        return NullSensor("power sampling turned off (power: none)")
    if device == "cpu":
        return NullSensor("the run computes on the CPU: no GPU power to sample")
    if device == "server" and spec.gpus is None and spec.base_url and not is_local_url(spec.base_url):
        return NullSensor(
            f"the server {spec.base_url} is not on this machine: its GPUs cannot be sampled here "
            "(give gpus to sample this machine's GPUs anyway)"
        )
    sensor = open_power_sensor(spec.power, gpus=spec.gpus, rate_hz=spec.power_rate_hz)
    if device == "cuda" and spec.gpus is None and len(sensor.devices()) > 1:
        first = sensor.devices()[0].index
        sensor.close()
        sensor = open_power_sensor(spec.power, gpus=[first], rate_hz=spec.power_rate_hz)
    return sensor
