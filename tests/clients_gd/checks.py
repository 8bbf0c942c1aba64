"""What tests/clients_gd/e2e.gd must report, checked the same way on the interpreter (gdvm.py)
and in the real Godot 4.6 (its web build, tools/godot_web)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

GRPC_HINT = ("--ws-port", "50051")


def check_run(report: Any, png_size: Callable[[Any], tuple[int, int]]) -> None:
    """e2e.gd's run(): connect, status, models, load/unload, generate, cancel, live, errors."""
    assert report["connected"] and report["ready"]
    assert report["max_message_bytes"] > 0
    assert "tiny-random" in report["models"] and report["default_model"] == "tiny-random"
    assert list(report["load"]) == ["tiny-random", True] and report["unloaded"] is False

    generated = report["generate"]
    assert generated["seed"] == 42 and generated["recipe_seed"] == 42
    assert list(generated["steps"]) == [1, 2]  # client-wide progress signal, in order
    assert generated["previews"] == 2  # the job's preview signal
    assert generated["images"] == 1 and png_size(generated["png"]) == (64, 64)

    cancel = report["cancel"]
    assert cancel["total"] == 40 and cancel["cancelled"]
    assert cancel["code_name"] == "CANCELLED" and cancel["failed_signal"] == "CANCELLED"
    assert cancel["last_step"] < 40

    live = report["live"]
    assert list(live["seqs"]) == [1, 2, 3] and live["client_signal_frames"] == 3
    assert [png_size(image) for image in live["images"]] == [(64, 64)] * 3
    assert live["end_code"] == "" and not live["active"]

    options = report["live_options"]
    frames = list(options["frames"])
    assert [f["seq"] for f in frames] == [1, 2, 3]
    assert [f["similar"] for f in frames] == [False, True, False]
    assert [f["bytes"] for f in frames] == [64 * 64 * 4, 0, 64 * 64 * 4]  # raw RGBA8
    assert frames[0]["encoding"] == frames[2]["encoding"] == 4  # ENCODING_RAW_RGBA8
    assert list(frames[0]["size"]) == [64, 64]
    if "decoded" in frames[0]:  # the real engine: Image.create_from_data
        assert list(frames[0]["decoded"]) == [64, 64] and frames[0]["pixel"] == 255
    assert options["similar_frames"] == 1
    assert not any(f["stream_batch"] or f["tiny_autoencoder"] for f in frames)
    assert options["stream_batch"] is False and options["tiny_autoencoder"] is False

    errors = report["errors"]
    assert errors["width_code"] == "INVALID_ARGUMENT"
    assert (
        errors["width_message"].startswith("width") and "multiple of 8" in errors["width_message"]
    )
    assert errors["width_failed_signal"] == "INVALID_ARGUMENT"
    assert errors["model_code"] == "NOT_FOUND"
    assert errors["cancel_unknown"] is False
    assert errors["live_code"] == "INVALID_ARGUMENT" and "width" in errors["live_message"]
    assert list(report["disconnect_reason"]) == ["closed by the client"]


def check_faults(out: Any, web: bool) -> None:
    """e2e.gd's run_faults(): a bad URL, a call before connecting, nothing listening, the gRPC
    port, a wrong path, and Godot's default 64 KiB inbound buffer against an image."""
    assert out["bad_url"] == 31 and "not a WebSocket URL" in out["bad_url_error"]  # ERR_INVALID_...
    # A call before connecting fails on the next frame, never inside the call.
    assert out["early_done_in_call"] is False
    assert out["early"].startswith("UNAVAILABLE: not connected")
    # Nothing listening; the gRPC port (no WebSocket there). The web build's WebSocket reports
    # these as close code 1006, native Godot as -1: the same hint either way.
    for case in ("closed", "grpc"):
        reason = out[case]["reason"]
        assert reason.startswith("cannot connect to the PixelKiln daemon at ws://127.0.0.1:"), (
            reason
        )
        assert all(hint in reason for hint in GRPC_HINT), reason
        assert out[case]["job"] == "UNAVAILABLE: " + reason  # the call queued while connecting
        assert out[case]["state"] == 0  # DISCONNECTED: auto_reconnect was off
    wrong = out["wrong_path"]["reason"]
    assert "refused the connection: unknown path; use /v1" in wrong
    # Why the client raises inbound_buffer_size: Godot's 64 KiB default cannot take one image.
    small = out["default_buffer"]
    assert small["frames"] >= 1  # small frames (accepted, progress) got through
    assert small["results"] == 0  # the result never arrives
    if web:  # the browser's WebSocket drops the frame ("Buffer payload full") and stays open
        assert small["last_step_seen"] and small["open"]
    else:  # native Godot closes the connection
        assert small["code"] == 1009 and small["reason"] == "Message too big"


def check_timeouts(out: Any, stalled_port: int) -> None:
    """e2e.gd's run_timeouts(): a server that ignores frames, one that never handshakes."""
    assert out["deadline"] == "DEADLINE_EXCEEDED: no answer within 300 ms"
    assert out["stalled"] == f"no answer from ws://127.0.0.1:{stalled_port}/v1 within 300 ms"
