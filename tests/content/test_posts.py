"""Posts over a real channel: idempotent create, etags, ownership, drafts, pagination, cache."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import sqlalchemy as sa
from google.protobuf.field_mask_pb2 import FieldMask

from mesh.content.v1 import content_service_pb2 as pb
from mesh.content.v1 import post_pb2
from services.content.users import GrpcUserDirectory
from tests.content.conftest import ContentMesh, new_user
from tests.platform.test_interceptors import details, rpc_error

PUBLISHED = post_pb2.POST_STATE_PUBLISHED
DRAFT = post_pb2.POST_STATE_DRAFT


async def create(
    mesh: ContentMesh,
    author: str,
    title: str = "hello",
    state: post_pb2.PostState.ValueType = PUBLISHED,
    **kw: str,
) -> post_pb2.Post:
    request = pb.CreatePostRequest(post=post_pb2.Post(title=title, body="b", state=state), **kw)
    response = await mesh.stub.CreatePost(request, metadata=mesh.auth(author))
    return response.post


async def count(mesh: ContentMesh, table: str, where: str = "true") -> int:
    async with mesh.database.uow() as tx:
        result = await tx.session.execute(
            sa.text(f'SELECT count(*) FROM "{mesh.schema}".{table} WHERE {where}')  # noqa: S608
        )
        return int(result.scalar_one())


async def test_retried_create_returns_the_first_post(content: ContentMesh) -> None:
    author, request_id = new_user(), str(uuid.uuid4())
    first = await create(content, author, request_id=request_id)
    again, concurrent = await asyncio.gather(
        create(content, author, title="other", request_id=request_id),
        create(content, author, request_id=request_id),
    )
    assert first.id == again.id == concurrent.id
    assert again.title == "hello"
    assert await count(content, "posts") == 1
    assert await count(content, "outbox", "type = 'post.published'") == 1


async def test_stale_etag_is_aborted(content: ContentMesh) -> None:
    author = new_user()
    post = await create(content, author)
    mask = FieldMask(paths=["title"])
    fresh = await content.stub.UpdatePost(
        pb.UpdatePostRequest(
            post=post_pb2.Post(id=post.id, title="one", etag=post.etag), update_mask=mask
        ),
        metadata=content.auth(author),
    )
    assert fresh.post.title == "one"
    assert fresh.post.etag != post.etag
    error = await rpc_error(
        content.stub.UpdatePost(
            pb.UpdatePostRequest(
                post=post_pb2.Post(id=post.id, title="two", etag=post.etag), update_mask=mask
            ),
            metadata=content.auth(author),
        )
    )
    assert error.code() == grpc.StatusCode.ABORTED
    assert details(error)[1]["ErrorInfo"].reason == "ETAG_MISMATCH"
    got = await content.stub.GetPost(pb.GetPostRequest(id=post.id))
    assert got.post.title == "one"


async def test_non_owner_edit_and_delete_are_denied_admin_allowed(content: ContentMesh) -> None:
    author, other = new_user(), new_user()
    post = await create(content, author)
    request = pb.UpdatePostRequest(
        post=post_pb2.Post(id=post.id, title="mine now"), update_mask=FieldMask(paths=["title"])
    )
    error = await rpc_error(content.stub.UpdatePost(request, metadata=content.auth(other)))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    error = await rpc_error(
        content.stub.DeletePost(pb.DeletePostRequest(id=post.id), metadata=content.auth(other))
    )
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    admin = await content.stub.UpdatePost(request, metadata=content.auth(other, "user", "admin"))
    assert admin.post.title == "mine now"


async def test_drafts_are_visible_to_their_author_only(content: ContentMesh) -> None:
    author, other = new_user(), new_user()
    draft = await create(content, author, state=DRAFT)
    assert (
        await content.stub.GetPost(pb.GetPostRequest(id=draft.id), metadata=content.auth(author))
    ).post.id == draft.id
    for metadata in (content.auth(other), ()):
        error = await rpc_error(
            content.stub.GetPost(pb.GetPostRequest(id=draft.id), metadata=metadata)
        )
        assert error.code() == grpc.StatusCode.NOT_FOUND
    admin = content.auth(other, "user", "admin")
    assert (await content.stub.GetPost(pb.GetPostRequest(id=draft.id), metadata=admin)).post.id
    listed = await content.stub.ListPosts(
        pb.ListPostsRequest(author_id=author), metadata=content.auth(other)
    )
    assert list(listed.posts) == []
    own = await content.stub.ListPosts(
        pb.ListPostsRequest(state=DRAFT), metadata=content.auth(author)
    )
    assert [p.id for p in own.posts] == [draft.id]
    error = await rpc_error(
        content.stub.UpdatePost(
            pb.UpdatePostRequest(
                post=post_pb2.Post(id=draft.id, title="x"), update_mask=FieldMask(paths=["title"])
            ),
            metadata=content.auth(other),
        )
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND


async def test_list_pages_newest_first_with_author_filter(content: ContentMesh) -> None:
    author = new_user()
    ids = [(await create(content, author, title=f"p{i}")).id for i in range(5)]
    await create(content, new_user())  # someone else's
    seen: list[str] = []
    token = ""
    for _ in range(5):
        page = await content.stub.ListPosts(
            pb.ListPostsRequest(author_id=author, page_size=2, page_token=token)
        )
        seen += [p.id for p in page.posts]
        token = page.next_page_token
        if not token:
            break
    assert seen == list(reversed(ids))
    error = await rpc_error(
        content.stub.ListPosts(pb.ListPostsRequest(author_id=new_user(), page_token="forged"))
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_first_publish_emits_one_event_and_soft_delete_hides(content: ContentMesh) -> None:
    author = new_user()
    draft = await create(content, author, state=DRAFT)
    mask = FieldMask(paths=["state"])
    for state in (PUBLISHED, DRAFT, PUBLISHED):
        await content.stub.UpdatePost(
            pb.UpdatePostRequest(post=post_pb2.Post(id=draft.id, state=state), update_mask=mask),
            metadata=content.auth(author),
        )
    assert await count(content, "outbox", "type = 'post.published'") == 1
    got = await content.stub.GetPost(pb.GetPostRequest(id=draft.id))  # cached now
    await content.stub.DeletePost(
        pb.DeletePostRequest(id=draft.id, etag=got.post.etag), metadata=content.auth(author)
    )
    error = await rpc_error(content.stub.GetPost(pb.GetPostRequest(id=draft.id)))
    assert error.code() == grpc.StatusCode.NOT_FOUND


async def test_cache_is_invalidated_on_write(content: ContentMesh) -> None:
    author = new_user()
    post = await create(content, author)
    await content.stub.GetPost(pb.GetPostRequest(id=post.id))
    await content.stub.UpdatePost(
        pb.UpdatePostRequest(
            post=post_pb2.Post(id=post.id, body="new body"), update_mask=FieldMask(paths=["body"])
        ),
        metadata=content.auth(author),
    )
    assert (await content.stub.GetPost(pb.GetPostRequest(id=post.id))).post.body == "new body"


async def test_user_service_down_is_unavailable_and_writes_nothing(content: ContentMesh) -> None:
    # Point the author check at a port nobody listens on.
    content.app.service.servicer._service._authors = GrpcUserDirectory("127.0.0.1:1", timeout=1.0)  # type: ignore[attr-defined]
    error = await rpc_error(
        content.stub.CreatePost(
            pb.CreatePostRequest(post=post_pb2.Post(title="t")), metadata=content.auth(new_user())
        )
    )
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert details(error)[1]["ErrorInfo"].reason == "USER_SERVICE_UNAVAILABLE"
    assert await count(content, "posts") == 0
    assert await count(content, "outbox") == 0


async def test_bad_input_names_the_field(content: ContentMesh) -> None:
    user = content.auth(new_user())
    cases = [
        (content.stub.GetPost(pb.GetPostRequest(id="nope")), "id"),
        (content.stub.ListPosts(pb.ListPostsRequest(page_size=-1)), "page_size"),
        (
            content.stub.CreatePost(
                pb.CreatePostRequest(post=post_pb2.Post(title="")), metadata=user
            ),
            "post",
        ),
        (
            content.stub.CreatePost(
                pb.CreatePostRequest(post=post_pb2.Post(title="t"), request_id="x"), metadata=user
            ),
            "request_id",
        ),
        (
            content.stub.UpdatePost(
                pb.UpdatePostRequest(
                    post=post_pb2.Post(id="bad", title="t"), update_mask=FieldMask(paths=["title"])
                ),
                metadata=user,
            ),
            "post.id",
        ),
    ]
    for call, field in cases:
        error = await rpc_error(call)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, field
        fields = [v.field for v in details(error)[1]["BadRequest"].field_violations]
        assert any(f.startswith(field) for f in fields), (field, fields)
