"""ContentService over gRPC: request messages to use-case arguments and back. No SQL here."""

from __future__ import annotations

from mesh.content.v1 import content_service_pb2 as pb
from mesh.content.v1 import content_service_pb2_grpc
from services.platform.identity import bearer_token, current_caller, require_caller
from services.platform.interceptors import Context

from .service import ContentService


def _credentials(context: Context) -> str | None:
    return bearer_token(context.invocation_metadata())


class ContentServicer(content_service_pb2_grpc.ContentServiceServicer):
    def __init__(self, service: ContentService) -> None:
        self._service = service

    async def CreatePost(
        self, request: pb.CreatePostRequest, context: Context
    ) -> pb.CreatePostResponse:
        post = await self._service.create_post(
            require_caller(),
            _credentials(context),
            title=request.post.title,
            body=request.post.body,
            state=request.post.state,
            request_id=request.request_id,
        )
        return pb.CreatePostResponse(post=post)

    async def GetPost(self, request: pb.GetPostRequest, context: Context) -> pb.GetPostResponse:
        return pb.GetPostResponse(post=await self._service.get_post(current_caller(), request.id))

    async def ListPosts(
        self, request: pb.ListPostsRequest, context: Context
    ) -> pb.ListPostsResponse:
        posts, token = await self._service.list_posts(
            current_caller(),
            page_size=request.page_size,
            page_token=request.page_token,
            author_id=request.author_id,
            state=request.state,
        )
        return pb.ListPostsResponse(posts=posts, next_page_token=token)

    async def UpdatePost(
        self, request: pb.UpdatePostRequest, context: Context
    ) -> pb.UpdatePostResponse:
        post = await self._service.update_post(
            require_caller(), request.post, list(request.update_mask.paths)
        )
        return pb.UpdatePostResponse(post=post)

    async def DeletePost(
        self, request: pb.DeletePostRequest, context: Context
    ) -> pb.DeletePostResponse:
        await self._service.delete_post(require_caller(), request.id, request.etag)
        return pb.DeletePostResponse()

    async def CreateComment(
        self, request: pb.CreateCommentRequest, context: Context
    ) -> pb.CreateCommentResponse:
        comment = await self._service.create_comment(
            require_caller(),
            _credentials(context),
            post_id=request.post_id,
            body=request.comment.body,
            request_id=request.request_id,
        )
        return pb.CreateCommentResponse(comment=comment)

    async def ListComments(
        self, request: pb.ListCommentsRequest, context: Context
    ) -> pb.ListCommentsResponse:
        comments, token = await self._service.list_comments(
            current_caller(),
            post_id=request.post_id,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return pb.ListCommentsResponse(comments=comments, next_page_token=token)
