"""``pixelkiln live``: follow an image file as it changes and write each frame the daemon makes
of it (split from cli.py, which dispatches to it)."""

from __future__ import annotations

import argparse
import functools
import signal
import threading
import time
from typing import Any

from ._cli_args import EXIT_INTERRUPTED
from ._cli_parts import UsageError, input_image, output_path, positive, unsigned, written
from .client import Client

# The daemon ends a live session silent for --live-idle-timeout (30 s by default): while the
# watched file does not change, the CLI re-sends it this often (an unchanged input is free).
LIVE_KEEPALIVE_S = 5.0
# How often a still input is sent again while stream batch holds the frame of its last change.
FLUSH_EVERY_S = 0.1


def cmd_live(args: argparse.Namespace) -> int:
    """Re-send --watch whenever it changes (and every LIVE_KEEPALIVE_S while it does not);
    write the newest frame to -o (atomically)."""
    watch = input_image("--watch", args.watch)
    out, encoding = output_path("-o/--output", args.output)
    positive("--interval", args.interval)
    positive("--frames", args.frames, zero_ok=True)
    unsigned([("--steps", args.steps), ("--size", args.size)])
    unsigned([("--seed", args.seed)], bits=64)
    unsigned([("--similar-skip-max", args.similar_skip_max)])
    if not 0.0 <= args.similar_skip <= 1.0:
        raise UsageError(f"--similar-skip: must be between 0 and 1; got {args.similar_skip:g}")
    settings: dict[str, Any] = {
        "prompt": args.prompt,
        "strength": args.strength,
        "seed": args.seed,
        "output_encoding": encoding,
    }
    if args.stream_batch:
        settings["stream_batch"] = True
    if args.tiny_autoencoder:
        settings["tiny_autoencoder"] = True
    if args.similar_skip:
        settings["similar_skip_threshold"] = args.similar_skip
    if args.similar_skip_max is not None:
        settings["similar_skip_max"] = args.similar_skip_max
    if args.steps:
        settings["steps"] = args.steps
    if args.size:
        settings["size"] = args.size
    if args.model:
        settings["model"] = args.model
    received = 0  # frames, whatever they carry: --frames counts them all
    with Client(args.address) as client, client.live(**settings) as session:
        stop = threading.Event()
        # Stream batch answers N - 1 inputs late (N denoising steps) and sends no frame for an
        # input it holds: after a change the same input is sent again at each look (the newest
        # waiting input replaces the one before, so each frame's run takes one) until the frame
        # answering the change has come.
        latest = {"seq": 0, "answered": 0}

        def watcher() -> None:
            last, data, sent_at = None, b"", 0.0
            while not stop.is_set():
                try:
                    info = watch.stat()
                    stamp = info.st_mtime_ns, info.st_size
                    if stamp != last:
                        data = watch.read_bytes()
                        last = stamp
                        latest["seq"] = session.send(data)
                        sent_at = time.monotonic()
                    elif (
                        args.stream_batch
                        and latest["answered"] < latest["seq"]
                        and time.monotonic() - sent_at >= FLUSH_EVERY_S
                    ):
                        session.send(data)
                        sent_at = time.monotonic()
                    elif last is not None and time.monotonic() - sent_at >= LIVE_KEEPALIVE_S:
                        session.send(data)  # the same input: the daemon answers "unchanged"
                        sent_at = time.monotonic()
                except OSError:
                    pass  # being replaced (or gone for a moment): look again next time
                stop.wait(args.interval)

        thread = threading.Thread(target=watcher, daemon=True)
        thread.start()
        interrupted = threading.Event()

        def on_interrupt(signum: int, frame: Any) -> None:
            # Ctrl+C ends the stream from another thread, and the loop below then ends as the
            # stream does: a KeyboardInterrupt raised inside gRPC's blocking iterator could
            # stop it while it holds its lock, and exiting then hung (seen under load).
            interrupted.set()
            signal.signal(signal.SIGINT, previous)  # a second Ctrl+C interrupts at once
            threading.Thread(target=session.cancel, daemon=True).start()

        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, on_interrupt) if main else None
        try:
            for frame in session:
                received += 1
                ms = frame.timings["total_ms"]
                if frame.image is not None:
                    latest["answered"] = max(latest["answered"], frame.seq)
                    # Each frame replaces the last: no flush to disk.
                    written(out, functools.partial(frame.image.save, durable=False))
                    print(f"frame {frame.seq}: {out} ({ms:.0f} ms, {frame.skipped} skipped)")
                else:
                    what = "similar" if frame.similar else "unchanged"
                    print(f"frame {frame.seq}: {what}, {out} kept ({ms:.0f} ms)")
                if interrupted.is_set() or (args.frames and received >= args.frames):
                    break
        finally:
            stop.set()
            if main:
                signal.signal(signal.SIGINT, previous)
    return EXIT_INTERRUPTED if interrupted.is_set() else 0
