"""The Models service: list, load, unload, status."""

from __future__ import annotations

import grpc

from pixelkiln.v1 import models_pb2 as models_pb
from pixelkiln.v1 import models_pb2_grpc as models_grpc

from .. import convert
from .identity import Gatekeeper
from .operations import Operations
from .status import unary


class ModelsService(models_grpc.ModelsServicer):
    def __init__(self, ops: Operations, gate: Gatekeeper) -> None:
        self.ops = ops
        self.gate = gate

    @unary
    async def List(  # noqa: N802 - gRPC method name
        self, request: models_pb.ListModelsRequest, context: grpc.aio.ServicerContext
    ) -> models_pb.ListModelsResponse:
        models, default = self.ops.list_models(self.gate.grpc_caller(context))
        return convert.models_to_pb(models, default)

    @unary
    async def Load(  # noqa: N802
        self, request: models_pb.LoadModelRequest, context: grpc.aio.ServicerContext
    ) -> models_pb.ModelInfo:
        info = await self.ops.load(self.gate.grpc_caller(context), request.name)
        return convert.model_info_to_pb(info)

    @unary
    async def Unload(  # noqa: N802
        self, request: models_pb.UnloadModelRequest, context: grpc.aio.ServicerContext
    ) -> models_pb.UnloadModelResponse:
        result = await self.ops.unload(self.gate.grpc_caller(context), request.name)
        return convert.unload_to_pb(result)

    @unary
    async def Status(  # noqa: N802
        self, request: models_pb.StatusRequest, context: grpc.aio.ServicerContext
    ) -> models_pb.StatusResponse:
        return convert.status_to_pb(self.ops.status(self.gate.grpc_caller(context)))
