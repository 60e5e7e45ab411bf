"""ListUsers: admins only, AIP-158 pages, filters on role and email prefix, forged tokens."""

from __future__ import annotations

import grpc

from mesh.user.v1 import user_pb2
from mesh.user.v1 import user_service_pb2 as pb
from tests.auth.helpers import bad_fields, rpc_error
from tests.user.harness import RunningUsers, unique_email


async def test_non_admins_cannot_list(users: RunningUsers) -> None:
    _, auth = await users.member()
    error = await rpc_error(users.stub.ListUsers(pb.ListUsersRequest(), metadata=auth, timeout=5))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_pages_cover_every_user_once_oldest_first(users: RunningUsers) -> None:
    admin, auth = await users.admin()
    created = [admin] + [await users.sign_up(name=f"n{i}") for i in range(6)]

    seen: list[user_pb2.User] = []
    token = ""
    pages = 0
    while True:
        page = await users.stub.ListUsers(
            pb.ListUsersRequest(page_size=3, page_token=token), metadata=auth, timeout=5
        )
        pages += 1
        assert len(page.users) <= 3
        seen.extend(page.users)
        token = page.next_page_token
        if not token:
            break
    assert pages == 3
    assert [u.id for u in seen] == [u.id for u in created]


async def test_filters_by_role_and_email_prefix(users: RunningUsers) -> None:
    admin, auth = await users.admin()
    prefix = unique_email("pfx").split("@")[0]
    tagged = [await users.sign_up(email=f"{prefix}-{i}@example.com") for i in range(3)]
    await users.sign_up()

    by_prefix = await users.stub.ListUsers(
        pb.ListUsersRequest(email_prefix=prefix.upper()), metadata=auth, timeout=5
    )
    assert [u.id for u in by_prefix.users] == [u.id for u in tagged]
    admins = await users.stub.ListUsers(
        pb.ListUsersRequest(role=user_pb2.ROLE_ADMIN), metadata=auth, timeout=5
    )
    assert [u.id for u in admins.users] == [admin.id]
    # LIKE wildcards in the prefix are literal characters.
    wild = await users.stub.ListUsers(
        pb.ListUsersRequest(email_prefix="%"), metadata=auth, timeout=5
    )
    assert list(wild.users) == []


async def test_forged_or_reused_page_tokens_are_invalid_argument(users: RunningUsers) -> None:
    _, auth = await users.admin()
    for _ in range(3):
        await users.sign_up(email=unique_email("pg"))
    page = await users.stub.ListUsers(pb.ListUsersRequest(page_size=1), metadata=auth, timeout=5)
    token = page.next_page_token
    assert token

    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    for request in (
        pb.ListUsersRequest(page_size=1, page_token="forged-token"),
        pb.ListUsersRequest(page_size=1, page_token=tampered),
        # Same token, different filter: refused rather than silently mixing listings.
        pb.ListUsersRequest(page_size=1, page_token=token, email_prefix="pg"),
    ):
        error = await rpc_error(users.stub.ListUsers(request, metadata=auth, timeout=5))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert bad_fields(error) == {"page_token"}
    negative = await rpc_error(
        users.stub.ListUsers(pb.ListUsersRequest(page_size=-1), metadata=auth, timeout=5)
    )
    assert negative.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_fields(negative) == {"page_size"}
