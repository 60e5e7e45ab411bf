"""UserService over gRPC: request messages to use-case arguments and back. No SQL here."""

from __future__ import annotations

from mesh.user.v1 import user_service_pb2 as pb
from mesh.user.v1 import user_service_pb2_grpc
from services.platform.identity import require_caller
from services.platform.interceptors import Context

from .service import UserService


class UserServicer(user_service_pb2_grpc.UserServiceServicer):
    def __init__(self, service: UserService) -> None:
        self._service = service

    async def CreateUser(
        self, request: pb.CreateUserRequest, context: Context
    ) -> pb.CreateUserResponse:
        user = await self._service.create_user(
            email=request.email,
            password=request.password,
            display_name=request.display_name,
            request_id=request.request_id,
        )
        return pb.CreateUserResponse(user=user)

    async def GetUser(self, request: pb.GetUserRequest, context: Context) -> pb.GetUserResponse:
        return pb.GetUserResponse(user=await self._service.get_user(require_caller(), request.id))

    async def UpdateUser(
        self, request: pb.UpdateUserRequest, context: Context
    ) -> pb.UpdateUserResponse:
        user = await self._service.update_user(
            require_caller(), request.user, list(request.update_mask.paths)
        )
        return pb.UpdateUserResponse(user=user)

    async def DeleteUser(
        self, request: pb.DeleteUserRequest, context: Context
    ) -> pb.DeleteUserResponse:
        await self._service.delete_user(require_caller(), request.id)
        return pb.DeleteUserResponse()

    async def ListUsers(
        self, request: pb.ListUsersRequest, context: Context
    ) -> pb.ListUsersResponse:
        users, token = await self._service.list_users(
            require_caller(),
            page_size=request.page_size,
            page_token=request.page_token,
            role=request.role,
            email_prefix=request.email_prefix,
        )
        return pb.ListUsersResponse(users=users, next_page_token=token)
