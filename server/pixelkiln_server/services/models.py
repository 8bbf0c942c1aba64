"""The Models service: list, load, unload, status."""

from __future__ import annotations

import grpc

from pixelkiln.v1 import models_pb2 as models_pb
from pixelkiln.v1 import models_pb2_grpc as models_grpc

from .. import convert
from ..engine.core import Engine
from ..errors import InvalidArgument
from .status import unary


class ModelsService(models_grpc.ModelsServicer):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @unary
    async def List(  # noqa: N802 - gRPC method name
        self, request: models_pb.ListModelsRequest, context: grpc.aio.ServicerContext
    ) -> models_pb.ListModelsResponse:
        return models_pb.ListModelsResponse(
            models=[convert.model_info_to_pb(m) for m in self.engine.models()],
            default_model=self.engine.config.default_model,
        )

    @unary
    async def Load(  # noqa: N802
        self, request: models_pb.LoadModelRequest, context: grpc.aio.ServicerContext
    ) -> models_pb.ModelInfo:
        if not request.name:
            raise InvalidArgument("name", "must name a model")
        return convert.model_info_to_pb(await self.engine.load(request.name))

    @unary
    async def Unload(  # noqa: N802
        self, request: models_pb.UnloadModelRequest, context: grpc.aio.ServicerContext
    ) -> models_pb.UnloadModelResponse:
        if not request.name:
            raise InvalidArgument("name", "must name a model")
        return convert.unload_to_pb(await self.engine.unload_model(request.name))

    @unary
    async def Status(  # noqa: N802
        self, request: models_pb.StatusRequest, context: grpc.aio.ServicerContext
    ) -> models_pb.StatusResponse:
        return convert.status_to_pb(self.engine.status())
