"""Traced graphs for the lean live path's module calls on the CPU.

A small model's live frame on the CPU is bound by Python, not arithmetic: the eager call of
the tiny UNet walks hundreds of modules, and each op's dispatch costs more than its math.
``torch.jit.trace`` records a call once for its input shapes and replays it in TorchScript's
C++ interpreter, parameters shared with the model (no copy). Measured on this 2-core CPU
(benchmarks/live_path.py): the tiny-random UNet call at 64x64 2.2x faster, the VAE's encode
and decode 1.1-1.3x; tiny-flux's transformer 1.5x, its VAE decode 1.4x. Recorded: the UNet,
FLUX's transformer, the KL VAE's encode and decode (every family) and the tiny autoencoder;
not Z-Image's transformer (its input is a list of latents). A large model's call is bound by
its arithmetic and gains nothing: a call that took over :data:`WORTH_MS` eagerly is never
recorded, and a graph is recorded only from the second call of a given shape
(:data:`TRACE_FROM`): a lone request (a live frame's recipe replayed through Generate)
never pays for the recording, a live session pays once, one extra call, per shape (0.4 s
for the tiny UNet here: the second frame of a session comes that much later).

What is recorded is fixed at recording: shapes and dtypes (the key), the padding mode
(tiling: part of the key), LoRA scales (a model with LoRA adapters is never traced). Used on
the CPU only: on CUDA ``--compile`` is the tool, and these graphs are untested there.
``torch.jit.trace`` is deprecated in torch 2.13 in favour of ``torch.export``, whose graphs
run in Python and measured no faster here; a torch without it, or a call that fails to
record, runs eagerly (the failure is logged once and kept, per key). A graph's output equals
the eager call's to float rounding (tests/test_live_traced.py).
"""

from __future__ import annotations

import logging
import time
import warnings
from collections import Counter, OrderedDict
from typing import Any

import torch

log = logging.getLogger(__name__)

TRACE_FROM = 2  # record at the second call of a shape
GRAPHS_KEPT = 16  # per model: an LRU of recorded graphs
CALLS_KEPT = 1024  # keys counted towards TRACE_FROM before the count starts over
# A call slower than this eagerly is bound by arithmetic (a full-size UNet on the CPU: seconds):
# the Python overhead a graph removes is a few ms, and recording costs one more call. Far
# above a small model's first (cold) call, even on a loaded machine.
WORTH_MS = 1000.0


class Unet(torch.nn.Module):
    def __init__(self, unet: Any) -> None:
        super().__init__()
        self.unet = unet

    def forward(self, x: Any, t: Any, embeds: Any) -> Any:
        return self.unet(x, t, encoder_hidden_states=embeds, return_dict=False)[0]


class UnetXL(Unet):
    def forward(self, x: Any, t: Any, embeds: Any, text: Any, time_ids: Any) -> Any:  # type: ignore[override]
        added = {"text_embeds": text, "time_ids": time_ids}
        return self.unet(
            x, t, encoder_hidden_states=embeds, added_cond_kwargs=added, return_dict=False
        )[0]


class Encode(torch.nn.Module):
    """The KL VAE's encode: the posterior's mean and std."""

    def __init__(self, vae: Any) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, x: Any) -> Any:
        dist = self.vae.encode(x).latent_dist
        return dist.mean, dist.std


class Decode(Encode):
    def forward(self, z: Any) -> Any:
        return self.vae.decode(z, return_dict=False)[0]


class TinyEncode(Encode):
    def forward(self, x: Any) -> Any:
        return self.vae.encode(x).latents


class TinyDecode(Encode):
    def forward(self, z: Any) -> Any:
        return self.vae.decode(z).sample


class FluxGuided(Unet):
    """FLUX.1 [dev]'s transformer on packed latents, with its guidance embedding."""

    def forward(  # type: ignore[override]
        self, x: Any, t: Any, guidance: Any, pooled: Any, embeds: Any, text_ids: Any,
        image_ids: Any,
    ) -> Any:  # fmt: skip
        return self.unet(
            hidden_states=x, timestep=t, guidance=guidance, pooled_projections=pooled,
            encoder_hidden_states=embeds, txt_ids=text_ids, img_ids=image_ids,
            joint_attention_kwargs={}, return_dict=False,
        )[0]  # fmt: skip


class Flux(FluxGuided):
    """FLUX.1 [schnell]'s: no guidance embedding (None is no graph input)."""

    def forward(  # type: ignore[override]
        self, x: Any, t: Any, pooled: Any, embeds: Any, text_ids: Any, image_ids: Any
    ) -> Any:
        return super().forward(x, t, None, pooled, embeds, text_ids, image_ids)


KINDS: dict[str, Any] = {"unet": Unet, "unet_xl": UnetXL, "encode": Encode, "decode": Decode,
                         "tiny_encode": TinyEncode, "tiny_decode": TinyDecode, "flux": Flux,
                         "flux_guided": FluxGuided}  # fmt: skip


class Graphs:
    """Recorded graphs of one model's calls, keyed by (call, module, input shapes and dtypes,
    extra key such as the tiling mode). :meth:`run` calls eagerly until a key's
    :data:`TRACE_FROM`-th call, then records and replays."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled and hasattr(torch.jit, "trace")
        self._graphs: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self._failed: set[tuple[Any, ...]] = set()
        self._calls: Counter[tuple[Any, ...]] = Counter()
        self._kinds = KINDS
        self._wrapped: dict[tuple[str, int], Any] = {}
        self.recorded = 0
        self.replays = 0  # calls served by a recorded graph

    def run(
        self, kind: str, module: Any, args: tuple[Any, ...], extra: Any = None, allowed: bool = True
    ) -> Any:
        """``kind``'s call of ``module`` on ``args`` (tensors), replayed from a recorded graph
        when there is one (recorded here at the key's TRACE_FROM-th call). ``allowed=False``
        (or a disabled instance): the eager call."""
        wrapper = self._wrapper(kind, module)
        if not (self.enabled and allowed):
            return wrapper(*args)
        key = self._key(kind, module, args, extra)
        graph = self._graphs.get(key)
        if graph is not None:
            self._graphs.move_to_end(key)
            self.replays += 1
            return graph(*args)
        if len(self._calls) >= CALLS_KEPT:  # shapes seen once, many sizes: start the count over
            self._calls.clear()
        self._calls[key] += 1
        if key in self._failed:
            return wrapper(*args)
        if self._calls[key] < TRACE_FROM:
            started = time.perf_counter()
            out = wrapper(*args)
            if (time.perf_counter() - started) * 1000.0 > WORTH_MS:
                self._failed.add(key)  # bound by arithmetic: a recording would not pay
            return out
        graph = self._record(key, wrapper, args)
        if graph is None:
            return wrapper(*args)
        self.replays += 1
        return graph(*args)

    def _record(self, key: tuple[Any, ...], wrapper: Any, args: tuple[Any, ...]) -> Any:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # TracerWarning per shape check; deprecation
                graph = torch.jit.trace(wrapper, args, check_trace=False)
        except Exception as exc:  # noqa: BLE001 - any failure: this key runs eagerly
            self._failed.add(key)
            log.warning("live path: %s runs eagerly (recording failed: %s)", key[0], exc)
            return None
        self._graphs[key] = graph
        self.recorded += 1
        while len(self._graphs) > GRAPHS_KEPT:
            self._graphs.popitem(last=False)
        return graph

    def _wrapper(self, kind: str, module: Any) -> Any:
        wrapped = self._wrapped.get((kind, id(module)))
        if wrapped is None or wrapped[0] is not module:
            wrapped = (module, self._kinds[kind](module).eval())
            self._wrapped[(kind, id(module))] = wrapped
        return wrapped[1]

    @staticmethod
    def _key(kind: str, module: Any, args: tuple[Any, ...], extra: Any) -> tuple[Any, ...]:
        shapes = tuple((tuple(a.shape), a.dtype, a.device.type) for a in args)
        return (kind, id(module), shapes, extra)
