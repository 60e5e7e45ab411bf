"""NotificationService over gRPC: request messages to use-case arguments and back. No SQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

from mesh.notification.v1 import notification_service_pb2 as pb
from mesh.notification.v1 import notification_service_pb2_grpc
from services.platform.identity import require_caller
from services.platform.interceptors import Context

from .service import NotificationService


class NotificationServicer(notification_service_pb2_grpc.NotificationServiceServicer):
    def __init__(self, service: NotificationService) -> None:
        self._service = service

    async def ListNotifications(
        self, request: pb.ListNotificationsRequest, context: Context
    ) -> pb.ListNotificationsResponse:
        notifications, token = await self._service.list_notifications(
            require_caller(),
            page_size=request.page_size,
            page_token=request.page_token,
            unread_only=request.unread_only,
        )
        return pb.ListNotificationsResponse(notifications=notifications, next_page_token=token)

    async def MarkNotificationRead(
        self, request: pb.MarkNotificationReadRequest, context: Context
    ) -> pb.MarkNotificationReadResponse:
        notification = await self._service.mark_read(require_caller(), request.id)
        return pb.MarkNotificationReadResponse(notification=notification)

    async def MarkAllNotificationsRead(
        self, request: pb.MarkAllNotificationsReadRequest, context: Context
    ) -> pb.MarkAllNotificationsReadResponse:
        count = await self._service.mark_all_read(require_caller())
        return pb.MarkAllNotificationsReadResponse(marked_count=count)

    async def GetUnreadCount(
        self, request: pb.GetUnreadCountRequest, context: Context
    ) -> pb.GetUnreadCountResponse:
        return pb.GetUnreadCountResponse(
            unread_count=await self._service.unread_count(require_caller())
        )

    async def SubscribeNotifications(
        self, request: pb.SubscribeNotificationsRequest, context: Context
    ) -> AsyncIterator[pb.SubscribeNotificationsResponse]:
        async for item in self._service.subscribe(require_caller()):
            if item is None:
                yield pb.SubscribeNotificationsResponse(heartbeat=pb.Heartbeat())
            else:
                yield pb.SubscribeNotificationsResponse(notification=item)

    async def GetNotificationSettings(
        self, request: pb.GetNotificationSettingsRequest, context: Context
    ) -> pb.GetNotificationSettingsResponse:
        return pb.GetNotificationSettingsResponse(
            settings=await self._service.get_settings(require_caller())
        )

    async def UpdateNotificationSettings(
        self, request: pb.UpdateNotificationSettingsRequest, context: Context
    ) -> pb.UpdateNotificationSettingsResponse:
        settings = await self._service.update_settings(
            require_caller(), request.settings, list(request.update_mask.paths)
        )
        return pb.UpdateNotificationSettingsResponse(settings=settings)
