"""``python -m capbench.testing.mock_server``: serve until SIGINT/SIGTERM, printing the URL first."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from orjson import dumps

from capbench.testing.mock_server.server import MockServer
from capbench.testing.mock_server.settings import MockSettings


def build_parser() -> argparse.ArgumentParser:
    """The command's parser (also rendered into docs/cli.md by scripts/cli_reference.py)."""
    p = argparse.ArgumentParser(
        prog="python -m capbench.testing.mock_server",
        description="A tiny OpenAI-compatible streaming server for tests and demos; prints its URL first.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="0 = any free port (default)")
    p.add_argument("--ttft-s", type=float, default=0.0, help="time to first token, seconds")
    p.add_argument("--itl-s", type=float, default=0.0, help="inter-token delay, seconds")
    p.add_argument(
        "--ttft-per-stream-s",
        type=float,
        default=0.0,
        help="load model: TTFT = ttft_s + this x streams in flight when the request arrives (itself included)",
    )
    p.add_argument(
        "--itl-per-stream-s",
        type=float,
        default=0.0,
        help="load model: each inter-token delay = itl_s + this x streams in flight when the previous token was sent",
    )
    p.add_argument(
        "--ttft-jitter-s", type=float, default=0.0, help="noise: extra TTFT drawn uniformly from [0, this), seeded"
    )
    p.add_argument("--output-tokens", type=int, default=64, help="tokens per response when max_tokens is absent")
    p.add_argument(
        "--no-honor-max-tokens",
        "--no-honour-max-tokens",
        action="store_true",
        help="always send --output-tokens, whatever max_tokens says",
    )
    p.add_argument("--fail-rate", type=float, default=0.0, help="fraction of requests answered with HTTP 500")
    p.add_argument("--hang-rate", type=float, default=0.0, help="fraction of requests that hang after the headers")
    p.add_argument("--seed", type=int, default=0, help="seed of the fail and hang draws (default 0)")
    p.add_argument("--model", default="capbench-mock", help="the model name /v1/models lists (default capbench-mock)")
    p.add_argument("--no-record", action="store_true", help="do not record send times")
    p.add_argument(
        "--record-limit",
        type=int,
        default=100_000,
        help="send records kept, the most recent (older ones are dropped and counted; default 100000)",
    )
    p.add_argument(
        "--coalesce", action="store_true", help="write every chunk that is due in one write (default: one per chunk)"
    )
    p.add_argument("--no-usage", action="store_true", help="never report usage, even when the client asks")
    p.add_argument("--sent-log", type=Path, help="write the send records here (JSONL) on exit")
    p.add_argument("--uvloop", action="store_true", help="run on uvloop (must be installed)")
    p.add_argument("--cpu", type=int, action="append", help="pin to this CPU (repeatable)")
    return p


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    settings = MockSettings(
        ttft_s=args.ttft_s,
        itl_s=args.itl_s,
        ttft_per_stream_s=args.ttft_per_stream_s,
        itl_per_stream_s=args.itl_per_stream_s,
        ttft_jitter_s=args.ttft_jitter_s,
        output_tokens=args.output_tokens,
        honor_max_tokens=not args.no_honor_max_tokens,
        fail_rate=args.fail_rate,
        hang_rate=args.hang_rate,
        seed=args.seed,
        model=args.model,
        record=not args.no_record,
        record_limit=args.record_limit,
        coalesce=args.coalesce,
        send_usage=not args.no_usage,
    )
    server = MockServer(settings, host=args.host, port=args.port)
    url = await server.start()
    sys.stdout.write(url + "\n")
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        records = list(server.records)
        await server.stop()
        if args.sent_log is not None:
            with args.sent_log.open("wb") as f:
                for rec in records:
                    f.write(dumps(rec.as_dict()) + b"\n")


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.cpu:
        os.sched_setaffinity(0, args.cpu)
    if args.uvloop:
        import uvloop

        factory = uvloop.new_event_loop
    else:
        factory = asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner, contextlib.suppress(KeyboardInterrupt):
        runner.run(serve(args))
