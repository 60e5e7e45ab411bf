"""Comments: only on published posts, idempotent, one comment.created event each."""

from __future__ import annotations

import uuid

import grpc

from mesh.content.v1 import content_service_pb2 as pb
from mesh.content.v1 import events_pb2, post_pb2
from mesh.events.v1 import envelope_pb2
from tests.content.conftest import ContentMesh, new_user
from tests.content.test_posts import DRAFT, count, create
from tests.platform.test_interceptors import details, rpc_error


async def comment(
    mesh: ContentMesh, post_id: str, author: str, request_id: str = ""
) -> post_pb2.Comment:
    response = await mesh.stub.CreateComment(
        pb.CreateCommentRequest(
            post_id=post_id, comment=post_pb2.Comment(body="nice"), request_id=request_id
        ),
        metadata=mesh.auth(author),
    )
    return response.comment


async def test_comment_emits_exactly_one_event_even_when_retried(content: ContentMesh) -> None:
    author, reader = new_user(), new_user()
    post = await create(content, author)
    request_id = str(uuid.uuid4())
    first = await comment(content, post.id, reader, request_id)
    again = await comment(content, post.id, reader, request_id)
    assert first.id == again.id
    assert await count(content, "comments") == 1
    async with content.database.uow() as tx:
        import sqlalchemy as sa

        rows = (
            await tx.session.execute(
                sa.text(
                    f'SELECT payload FROM "{content.schema}".outbox'  # noqa: S608
                    " WHERE type = 'comment.created'"
                )
            )
        ).all()
    assert len(rows) == 1
    envelope = envelope_pb2.EventEnvelope.FromString(rows[0].payload)
    event = events_pb2.CommentCreatedEvent()
    assert envelope.payload.Unpack(event)
    assert (event.post_author_id, event.comment_author_id, event.comment_id) == (
        author,
        reader,
        first.id,
    )
    got = await content.stub.GetPost(pb.GetPostRequest(id=post.id))
    assert got.post.comment_count == 1


async def test_drafts_cannot_be_commented(content: ContentMesh) -> None:
    author = new_user()
    draft = await create(content, author, state=DRAFT)
    error = await rpc_error(
        content.stub.CreateComment(
            pb.CreateCommentRequest(post_id=draft.id, comment=post_pb2.Comment(body="x")),
            metadata=content.auth(author),
        )
    )
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert details(error)[1]["ErrorInfo"].reason == "POST_NOT_PUBLISHED"
    error = await rpc_error(
        content.stub.CreateComment(
            pb.CreateCommentRequest(post_id=draft.id, comment=post_pb2.Comment(body="x")),
            metadata=content.auth(new_user()),
        )
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND


async def test_comments_list_oldest_first_paginated(content: ContentMesh) -> None:
    author = new_user()
    post = await create(content, author)
    ids = [(await comment(content, post.id, new_user())).id for _ in range(3)]
    page = await content.stub.ListComments(
        pb.ListCommentsRequest(post_id=post.id, page_size=2), metadata=content.auth(author)
    )
    rest = await content.stub.ListComments(
        pb.ListCommentsRequest(post_id=post.id, page_size=2, page_token=page.next_page_token),
        metadata=content.auth(author),
    )
    assert [c.id for c in page.comments] + [c.id for c in rest.comments] == ids
    assert rest.next_page_token == ""
    error = await rpc_error(
        content.stub.CreateComment(
            pb.CreateCommentRequest(post_id=post.id, comment=post_pb2.Comment(body="")),
            metadata=content.auth(author),
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_bad_comment_input_names_the_field(content: ContentMesh) -> None:
    author = new_user()
    post = await create(content, author)
    user = content.auth(author)
    cases = [
        (pb.CreateCommentRequest(post_id="nope", comment=post_pb2.Comment(body="x")), "post_id"),
        (pb.CreateCommentRequest(post_id=post.id, comment=post_pb2.Comment(body=" ")), "comment"),
        (
            pb.CreateCommentRequest(
                post_id=post.id, comment=post_pb2.Comment(body="x"), request_id="x"
            ),
            "request_id",
        ),
    ]
    for request, field in cases:
        error = await rpc_error(content.stub.CreateComment(request, metadata=user))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, field
        fields = [v.field for v in details(error)[1]["BadRequest"].field_violations]
        assert any(f.startswith(field) for f in fields), (field, fields)
    error = await rpc_error(
        content.stub.ListComments(
            pb.ListCommentsRequest(post_id=post.id, page_token="forged"), metadata=user
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in details(error)[1]["BadRequest"].field_violations] == ["page_token"]
    assert await count(content, "comments") == 0
