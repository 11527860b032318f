"""Wait until a service answers its health probe: one loop for every process we start."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable

import httpx


class NotHealthy(RuntimeError):
    """The service exited, or did not answer 200 in time."""


def wait_until_healthy(
    url: str,
    timeout: float,
    *,
    process: subprocess.Popen[bytes] | None = None,
    describe_exit: Callable[[int], str] | None = None,
    interval: float = 0.2,
    request_timeout: float = 2.0,
) -> None:
    """Poll ``url`` until it answers 200; fail early when ``process`` exits.

    ``describe_exit`` turns the exit status into the error's message (e.g. with the tail of
    the process's log).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            code = process.returncode
            raise NotHealthy(describe_exit(code) if describe_exit else f"exited with {code}")
        try:
            if httpx.get(url, timeout=request_timeout).status_code == 200:
                return
        except httpx.HTTPError:  # not listening yet, or a slow first answer
            pass
        time.sleep(interval)
    raise NotHealthy(f"{url} did not answer 200 within {timeout:g} s")
