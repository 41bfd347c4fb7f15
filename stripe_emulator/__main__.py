"""``python -m stripe_emulator [--host 127.0.0.1] [--port 0] [--rate-limit N]``."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from .server import StripeEmulator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stripe_emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--rate-limit", type=float, default=None, help="requests per second over /v1")
    args = parser.parse_args(argv)

    emu = StripeEmulator(host=args.host, port=args.port, rate_limit=args.rate_limit)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    emu.start()
    print(f"stripe-emulator listening on {emu.url}", flush=True)
    stop.wait()
    emu.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
