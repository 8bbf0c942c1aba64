"""Main-thread side: starts jobs and, in ``tick`` (a ``bpy.app.timers`` callback), applies
what their threads posted to Blender data and polls the image being painted in live mode.

In a normal Blender session the timer runs by itself. Blender in background mode (``-b``,
or ``bpy`` as a module) has no event loop, so timers never fire there: call ``tick()``
yourself, or ``pump()`` to run it until the jobs are done (what the tests do).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import bpy
import numpy as np

from pixelkiln import Accepted, Preview, Progress, Queued, Result
from pixelkiln.v1 import image_pb2

from . import images, materials, props
from .bridge import Bridge, GenerateJob, HealthJob, Job, LiveJob, Post
from .pixels import pixel_hash, pixels_to_rgba8

BRIDGE = Bridge()
TICK_BUSY_S = 0.05
TICK_IDLE_S = 0.5
# Main-thread time one tick may spend applying posts before it yields to the UI.
TICK_BUDGET_S = 0.02


def state() -> Any:
    return bpy.data.window_managers[0].pixelkiln_state


def set_status(text: str, level: str = "INFO") -> None:
    st = state()
    st.status = text
    st.level = level
    if level == "ERROR":
        print(f"PixelKiln: {text}")


# --- starting jobs (called by operators) ------------------------------------------------


def request_options(settings: Any, **overrides: Any) -> dict[str, Any]:
    """Keyword arguments for ``Client.stream`` from the panel's settings; ValueError (a
    message to show) when the seed is not one."""
    options: dict[str, Any] = {
        "prompt": settings.prompt,
        "width": settings.width,
        "height": settings.height,
        "steps": settings.steps,
        "num_images": settings.count,
        "tiling": settings.tiling,
        "transparent": settings.transparent,
        "maps": props.selected_maps(settings),
        "preview_every": 1,
        "preview_encoding": "raw",  # straight into Image.pixels: no decoder needed
        # Previews no larger than the image (the daemon scales them up to max_side).
        "preview_max_side": min(256, max(settings.width, settings.height, 8)),
    }
    if not settings.random_seed:
        options["seed"] = props.seed_value(settings)  # ValueError: the message to show
    options.update(overrides)
    return options


def start_generate(
    scene: bpy.types.Scene, options: dict[str, Any], after: Any = None
) -> tuple[GenerateJob, bpy.types.Image]:
    """Create the target image now (the editor can show it at once), then generate into it.

    ``after``: None, ``"material"``, or ``("assign", [object names])``. ValueError (a
    message to show, nothing started) when Save To cannot be resolved."""
    output_dir = scene.pixelkiln.output_dir.strip()
    folder = str(images.output_folder(output_dir)) if output_dir else ""
    name = images.name_from_prompt(options.get("prompt", ""))
    width = options.get("width") or 512
    height = options.get("height") or 512
    target = images.new_image(name, width, height)
    job = GenerateJob(BRIDGE, props.daemon_address(bpy.context), options)
    job.security = props.client_security(bpy.context)
    job.context.update(
        image=target.name,
        after=after,
        output_dir=folder,
        transparent=bool(options.get("transparent")),
    )
    st = state()
    job.context["previous_image"] = st.last_image
    st.busy = True
    st.progress = 0.0
    st.last_image = target.name
    set_status(f"Connecting to {job.address} ...")
    job.start()
    ensure_timer()
    return job, target


def start_health(address: str) -> HealthJob:
    state().health = f"checking {address} ..."
    job = HealthJob(BRIDGE, address)
    job.security = props.client_security(bpy.context)
    job.start()
    ensure_timer()
    return job


def cancel_generation() -> bool:
    jobs = BRIDGE.active("generate")
    for job in jobs:
        job.cancel()
    if jobs:
        set_status("Cancelling ...")
    return bool(jobs)


def start_live(scene: bpy.types.Scene, source: bpy.types.Image) -> LiveJob:
    settings = scene.pixelkiln
    live_settings: dict[str, Any] = {
        "prompt": settings.prompt,
        "strength": settings.live_strength,
        "output_encoding": "raw",
    }
    if settings.steps:
        live_settings["steps"] = settings.steps
    if not settings.random_seed:
        live_settings["seed"] = props.seed_value(settings)
    job = LiveJob(BRIDGE, props.daemon_address(bpy.context), live_settings)
    job.security = props.client_security(bpy.context)
    result_name = f"{source.name} (live)"
    result = bpy.data.images.get(result_name) or images.new_image(
        result_name, *source.size, role="live"
    )
    job.context.update(
        scene=scene.name,
        sent_settings=_live_tweaks(settings),
        source=source.name,
        result=result.name,
        hash=None,
        next_poll=0.0,
        interval=settings.live_interval,
    )
    st = state()
    st.live_running = True
    st.live_frames = 0
    st.live_result = result.name
    set_status(f"Live: connecting to {job.address} ...")
    job.start()
    poll_live(job, force=True)  # the first frame goes out as soon as the session opens
    ensure_timer()
    return job


def _live_tweaks(settings: Any) -> dict[str, Any]:
    """The settings a painter may change while live; sent again when they change."""
    return {"prompt": settings.prompt, "strength": settings.live_strength}


def stop_live() -> bool:
    jobs = BRIDGE.active("live")
    for job in jobs:
        job.cancel()
    state().live_running = False
    return bool(jobs)


# --- the timer ----------------------------------------------------------------------------


def tick() -> float:
    """Apply posted events (within a small time budget) and poll live sources."""
    deadline = time.perf_counter() + TICK_BUDGET_S
    changed = False
    while time.perf_counter() < deadline:
        posts = BRIDGE.drain(limit=8)
        if not posts:
            break
        for post in posts:
            _apply(post)
        changed = True
    for job in BRIDGE.active("live"):
        changed |= poll_live(job)
    if changed:
        _redraw()
    return TICK_BUSY_S if BRIDGE.jobs else TICK_IDLE_S


def ensure_timer() -> None:
    if not bpy.app.timers.is_registered(tick):
        bpy.app.timers.register(tick, first_interval=TICK_BUSY_S, persistent=True)


def pump(until: Any = None, timeout: float = 30.0) -> bool:
    """Run ``tick`` until ``until()`` is true (default: no jobs left) or ``timeout``.
    For background mode and tests, where timers do not fire."""
    done = until or (lambda: not BRIDGE.jobs)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        tick()
        if done():
            return True
        time.sleep(0.01)
    return False


def _redraw() -> None:
    for wm in bpy.data.window_managers:
        for window in wm.windows:
            for area in window.screen.areas:
                if area.type in {"IMAGE_EDITOR", "NODE_EDITOR"}:
                    area.tag_redraw()


def _apply(post: Post) -> None:
    job = BRIDGE.jobs.get(post.job_id)
    if job is None:
        return
    handler = _HANDLERS.get((job.kind, post.kind))
    if handler is not None:
        handler(job, post.payload)
    if post.kind == "done":
        BRIDGE.forget(job.id)
        if job.kind == "generate":
            _drop_placeholder(job)
            if not BRIDGE.active("generate"):
                state().busy = False
        if job.kind == "live" and not BRIDGE.active("live"):
            state().live_running = False


def _drop_placeholder(job: Job) -> None:
    """A failed or cancelled generation leaves no black image behind."""
    if job.context.get("got_result"):
        return
    img = bpy.data.images.get(job.context["image"])
    if img is not None and img.packed_file is None and img.get(images.PROP_ROLE) == "albedo":
        bpy.data.images.remove(img)
    st = state()
    if st.last_image == job.context["image"]:
        st.last_image = job.context.get("previous_image", "")


def _on_error(job: Job, message: str) -> None:
    if job.kind == "health":
        state().health = message
    set_status(message, "ERROR")


def _on_cancelled(job: Job, _payload: Any) -> None:
    set_status("Cancelled.")
    state().progress = 0.0


def _on_health(job: Job, info: dict[str, Any]) -> None:
    if info["state"] != "SERVING":
        state().health = f"{info['state']} (warming up) at {job.address}"
        return
    state().health = (
        f"SERVING {info['model']} on {info['device']} {info['dtype']}"
        f" (queue {info['queue']}, running {info['running']}), daemon {info['version']}"
    )


def _on_event(job: Job, event: Any) -> None:
    st = state()
    target = bpy.data.images.get(job.context["image"])
    if isinstance(event, Accepted):
        job.context["seed"] = event.seed
        st.last_seed = str(event.seed)
        set_status(
            f"Generating {event.width}x{event.height}, seed {event.seed}, {event.steps} steps"
        )
        if target is not None and tuple(target.size) != (event.width, event.height):
            target.scale(event.width, event.height)
    elif isinstance(event, Queued):
        set_status(f"Queued: position {event.position} of {event.queue_depth}")
    elif isinstance(event, Progress):
        st.progress = event.step / max(1, event.total)
        set_status(f"Step {event.step}/{event.total}")
    elif isinstance(event, Preview):
        if target is not None and event.images and event.images[0].encoding == "raw_rgba8":
            p = event.images[0]
            images.write_rgba8(target, p.data, p.width, p.height)
    elif isinstance(event, Result):
        _apply_result(job, event)


def _apply_result(job: Job, result: Any) -> None:
    job.context["got_result"] = True
    st = state()
    base = job.context["image"]
    written: list[str] = []
    saved: list[str] = []
    problems: list[str] = []
    for i, res in enumerate(result.images):
        # The first image fills the placeholder; the others are new datablocks (Blender
        # adds .001 when a name is taken: an earlier result is never overwritten).
        img = bpy.data.images.get(base) if i == 0 else None
        if img is None:
            img = images.new_image(base if i == 0 else f"{base} {i + 1}", res.width, res.height)
        name = img.name
        images.load_encoded(img, res.data)
        img[images.PROP_ROLE] = "albedo"
        img[images.PROP_SEED] = str(res.seed)
        img[images.PROP_RECIPE] = result.recipe_json
        img[materials.PROP_TRANSPARENT] = bool(job.context.get("transparent"))
        _apply_maps(img, res.maps)
        if job.context.get("output_dir"):
            try:
                files = images.save_result(res, Path(job.context["output_dir"]), name)
                img.filepath_raw = str(files[0])
                saved.append(files[0].name)
            except OSError as exc:
                problems.append(f"could not save to disk: {exc}")
        written.append(name)
    st.progress = 1.0
    st.last_image = written[0] if written else ""
    summary = f"Done: {', '.join(written)}"
    if result.images:
        first = result.images[0]
        summary += f" {first.width}x{first.height}, seed {first.seed}"
        if first.maps:
            summary += f", maps {', '.join(sorted(first.maps))}"
    summary += f" in {result.timings.get('total_ms', 0):.0f} ms"
    after = job.context.get("after")
    if after and written:
        summary += "; " + _after_result(after, bpy.data.images[written[0]])
    if saved:
        maps = " and maps" if result.images and result.images[0].maps else ""
        summary += f"; saved {', '.join(saved)}{maps} in {job.context['output_dir']}"
    if problems:
        set_status(f"{summary}; but {'; '.join(problems)}", "WARNING")
    else:
        set_status(summary)


def _apply_maps(albedo: bpy.types.Image, maps: dict[str, Any]) -> None:
    existing = images.maps_of(albedo)
    for kind, old in existing.items():
        if kind not in maps:
            del old[images.PROP_BASE]  # a map of an earlier result under the same name
    for kind, m in maps.items():
        img = existing.get(kind) or images.new_image(
            f"{albedo.name}_{kind}", m.width, m.height, role=kind
        )
        images.load_encoded(img, m.data)
        img.colorspace_settings.name = "Non-Color"
        img[images.PROP_BASE] = albedo.name


def _after_result(after: Any, albedo: bpy.types.Image) -> str:
    mat, missing = materials.make_material(albedo)
    note = f"material '{mat.name}'"
    if missing:
        note += f" (no {' or '.join(missing)} map)"
    if isinstance(after, tuple) and after[0] == "assign":
        objects = [bpy.data.objects[n] for n in after[1] if n in bpy.data.objects]
        on = materials.assign(mat, objects)
        note += f" on {', '.join(on)}" if on else " (no selected object can hold a material)"
    return note


def _on_live_started(job: Job, _payload: Any) -> None:
    set_status(f"Live: painting on '{job.context['source']}' -> '{job.context['result']}'")


def _on_live_frame(job: Job, frame: Any) -> None:
    st = state()
    if frame.image is None or frame.unchanged:
        return
    result = bpy.data.images.get(job.context["result"])
    if result is None:
        result = images.new_image(
            job.context["result"], frame.image.width, frame.image.height, role="live"
        )
        job.context["result"] = result.name
    if frame.image.encoding == "raw_rgba8":
        images.write_rgba8(result, frame.image.data, frame.image.width, frame.image.height)
    else:
        images.load_encoded(result, frame.image.data)
    st.live_frames += 1
    set_status(f"Live: frame {frame.seq} in {frame.timings.get('total_ms', 0):.0f} ms")


def poll_live(job: LiveJob, force: bool = False) -> bool:
    """Send the painted image when its pixels changed since the last check (hashed here on
    the CPU: painting gives no change event a Python add-on can subscribe to), and the
    prompt or strength when they were edited."""
    now = time.monotonic()
    if not force and now < job.context["next_poll"]:
        return False
    job.context["next_poll"] = now + job.context["interval"]
    changes: dict[str, Any] = {}
    scene = bpy.data.scenes.get(job.context["scene"])
    if scene is not None:
        tweaks = _live_tweaks(scene.pixelkiln)
        changes = {k: v for k, v in tweaks.items() if job.context["sent_settings"].get(k) != v}
        job.context["sent_settings"] = tweaks
    frame = _changed_frame(job)
    if frame is None and not changes:
        return False
    job.submit(frame, **changes)
    return True


def _changed_frame(job: LiveJob) -> image_pb2.Image | None:
    source = bpy.data.images.get(job.context["source"])
    # len(pixels) loads an image file not yet in memory; then size is known.
    if source is None or len(source.pixels) == 0:
        return None
    width, height = int(source.size[0]), int(source.size[1])
    flat = np.empty(width * height * 4, dtype=np.float32)
    source.pixels.foreach_get(flat)
    digest = pixel_hash(flat)
    if digest == job.context["hash"]:
        return None
    job.context["hash"] = digest
    linear = source.is_float and source.colorspace_settings.name != "Non-Color"
    return image_pb2.Image(
        data=pixels_to_rgba8(flat, width, height, linear=linear),
        encoding=image_pb2.ENCODING_RAW_RGBA8,
        width=width,
        height=height,
    )


_HANDLERS: dict[tuple[str, str], Any] = {
    ("health", "health"): _on_health,
    ("generate", "event"): _on_event,
    ("live", "live_started"): _on_live_started,
    ("live", "live_frame"): _on_live_frame,
}
for _kind in ("health", "generate", "live"):
    _HANDLERS[(_kind, "error")] = _on_error
    _HANDLERS[(_kind, "cancelled")] = _on_cancelled


def shutdown() -> None:
    BRIDGE.shutdown()
    if bpy.app.timers.is_registered(tick):
        bpy.app.timers.unregister(tick)
