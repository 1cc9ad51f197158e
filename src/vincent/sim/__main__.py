"""``python -m vincent.sim --host 127.0.0.1 --port 8765``: serve the local exchange."""

from __future__ import annotations

import argparse

from vincent.sim.server import DEFAULT_WS_BATCH_MAX, run


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m vincent.sim")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--ws-batch-max",
        type=int,
        default=DEFAULT_WS_BATCH_MAX,
        help="most events per WS frame when a subscriber falls behind (1: never batch)",
    )
    parser.add_argument("--ws-compression", action="store_true", help="permessage-deflate")
    parser.add_argument(
        "--loop", choices=["uvloop", "asyncio"], default="uvloop", help="the event loop"
    )
    args = parser.parse_args()
    run(args.host, args.port, args.ws_batch_max, args.ws_compression, args.loop)


if __name__ == "__main__":
    main()
