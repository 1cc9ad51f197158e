"""``python -m vincent.sim --host 127.0.0.1 --port 8765``: serve the local exchange."""

from __future__ import annotations

import argparse

from vincent.sim.server import run


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m vincent.sim")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    run(host=args.host, port=args.port)


if __name__ == "__main__":
    main()
