"""Reads, masked updates, roles, soft delete: ownership decided from the verified caller."""

from __future__ import annotations

import asyncio
import uuid

import grpc
from google.protobuf import field_mask_pb2

from mesh.auth.v1 import auth_service_pb2
from mesh.user.v1 import user_pb2
from mesh.user.v1 import user_service_pb2 as pb
from tests.auth.helpers import bad_fields, bearer, error_reason, rpc_error
from tests.user.harness import PASSWORD, RunningUsers, running_users, unique_email


def _update(user: user_pb2.User, *paths: str) -> pb.UpdateUserRequest:
    return pb.UpdateUserRequest(user=user, update_mask=field_mask_pb2.FieldMask(paths=list(paths)))


async def test_get_by_id_and_me(users: RunningUsers) -> None:
    user, auth = await users.member()
    by_id = await users.stub.GetUser(pb.GetUserRequest(id=user.id), metadata=auth, timeout=5)
    me = await users.stub.GetUser(pb.GetUserRequest(id="me"), metadata=auth, timeout=5)
    assert by_id.user == me.user == user


async def test_get_requires_a_token(users: RunningUsers) -> None:
    user = await users.sign_up()
    error = await rpc_error(users.stub.GetUser(pb.GetUserRequest(id=user.id), timeout=5))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_users_cannot_read_others_but_admins_can(users: RunningUsers) -> None:
    ada, ada_auth = await users.member("Ada")
    grace, _ = await users.member("Grace")
    error = await rpc_error(
        users.stub.GetUser(pb.GetUserRequest(id=grace.id), metadata=ada_auth, timeout=5)
    )
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    _, admin_auth = await users.admin()
    read = await users.stub.GetUser(pb.GetUserRequest(id=ada.id), metadata=admin_auth, timeout=5)
    assert read.user == ada


async def test_unknown_id_is_not_found_for_admins(users: RunningUsers) -> None:
    _, admin_auth = await users.admin()
    error = await rpc_error(
        users.stub.GetUser(pb.GetUserRequest(id=str(uuid.uuid4())), metadata=admin_auth, timeout=5)
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND


async def test_update_with_mask_changes_only_masked_fields(users: RunningUsers) -> None:
    user, auth = await users.member("Ada")
    change = user_pb2.User(id="me", display_name="Countess", email=unique_email("ignored"))
    updated = (
        await users.stub.UpdateUser(_update(change, "display_name"), metadata=auth, timeout=5)
    ).user
    assert updated.display_name == "Countess"
    assert updated.email == user.email  # not in the mask: untouched
    assert updated.update_time.ToDatetime() >= user.update_time.ToDatetime()


async def test_update_then_read_returns_the_new_value(users: RunningUsers) -> None:
    user, auth = await users.member("Ada")
    get = pb.GetUserRequest(id=user.id)
    first = await users.stub.GetUser(get, metadata=auth, timeout=5)  # fills the cache
    assert await users.app.users._cache.get(user.id) == first.user
    await users.stub.UpdateUser(
        _update(user_pb2.User(id=user.id, display_name="Lovelace"), "display_name"),
        metadata=auth,
        timeout=5,
    )
    after = await users.stub.GetUser(get, metadata=auth, timeout=5)
    assert after.user.display_name == "Lovelace"


async def test_email_change_rechecks_uniqueness_and_moves_the_login(users: RunningUsers) -> None:
    user, auth = await users.member("Ada")
    other = await users.sign_up()
    taken = await rpc_error(
        users.stub.UpdateUser(
            _update(user_pb2.User(id="me", email=other.email.upper()), "email"),
            metadata=auth,
            timeout=5,
        )
    )
    assert taken.code() == grpc.StatusCode.ALREADY_EXISTS
    assert error_reason(taken) == "EMAIL_TAKEN"

    new_email = unique_email("moved")
    updated = await users.stub.UpdateUser(
        _update(user_pb2.User(id="me", email=new_email), "email"), metadata=auth, timeout=5
    )
    assert updated.user.email == new_email
    assert (await users.auth.login(new_email, PASSWORD)).access_token
    old = await rpc_error(users.auth.login(user.email, PASSWORD))
    assert old.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_bad_update_is_invalid_argument_naming_the_field(users: RunningUsers) -> None:
    _, auth = await users.member()
    cases = [
        (_update(user_pb2.User(id="me", email="nope"), "email"), "user.email"),
        (_update(user_pb2.User(id="me", display_name="  "), "display_name"), "user.display_name"),
        (_update(user_pb2.User(id="me"), "create_time"), "update_mask"),
        (_update(user_pb2.User(id="me")), "update_mask"),
    ]
    for request, field in cases:
        error = await rpc_error(users.stub.UpdateUser(request, metadata=auth, timeout=5))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, field
        assert field in bad_fields(error), (field, bad_fields(error))


async def test_users_cannot_update_or_delete_others(users: RunningUsers) -> None:
    _, ada_auth = await users.member("Ada")
    grace, grace_auth = await users.member("Grace")
    update = await rpc_error(
        users.stub.UpdateUser(
            _update(user_pb2.User(id=grace.id, display_name="Hacked"), "display_name"),
            metadata=ada_auth,
            timeout=5,
        )
    )
    delete = await rpc_error(
        users.stub.DeleteUser(pb.DeleteUserRequest(id=grace.id), metadata=ada_auth, timeout=5)
    )
    assert update.code() == delete.code() == grpc.StatusCode.PERMISSION_DENIED
    unchanged = await users.stub.GetUser(pb.GetUserRequest(id="me"), metadata=grace_auth)
    assert unchanged.user.display_name == "Grace"


async def test_only_admins_change_roles(users: RunningUsers) -> None:
    ada, ada_auth = await users.member("Ada")
    promote = _update(user_pb2.User(id=ada.id, role=user_pb2.ROLE_ADMIN), "role")
    denied = await rpc_error(users.stub.UpdateUser(promote, metadata=ada_auth, timeout=5))
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_reason(denied) == "ROLE_CHANGE_DENIED"

    _, admin_auth = await users.admin()
    promoted = await users.stub.UpdateUser(promote, metadata=admin_auth, timeout=5)
    assert promoted.user.role == user_pb2.ROLE_ADMIN
    # The next token carries the role: Ada can now list users.
    new_auth = bearer(await users.token(ada.email))
    listed = await users.stub.ListUsers(pb.ListUsersRequest(), metadata=new_auth, timeout=5)
    assert ada.id in {u.id for u in listed.users}


async def test_soft_delete_hides_the_user_and_refuses_login(users: RunningUsers) -> None:
    user, auth = await users.member()
    login = await users.auth.login(user.email, PASSWORD)
    await users.stub.GetUser(pb.GetUserRequest(id="me"), metadata=auth, timeout=5)  # cached
    await users.stub.DeleteUser(pb.DeleteUserRequest(id="me"), metadata=auth, timeout=5)

    _, admin_auth = await users.admin()
    gone = await rpc_error(
        users.stub.GetUser(pb.GetUserRequest(id=user.id), metadata=admin_auth, timeout=5)
    )
    assert gone.code() == grpc.StatusCode.NOT_FOUND
    again = await rpc_error(
        users.stub.DeleteUser(pb.DeleteUserRequest(id=user.id), metadata=admin_auth, timeout=5)
    )
    assert again.code() == grpc.StatusCode.NOT_FOUND
    refused = await rpc_error(users.auth.login(user.email, PASSWORD))
    assert refused.code() == grpc.StatusCode.UNAUTHENTICATED
    revoked = await rpc_error(
        users.auth.stub.RefreshToken(
            auth_service_pb2.RefreshTokenRequest(refresh_token=login.refresh_token), timeout=5
        )
    )
    assert revoked.code() == grpc.StatusCode.UNAUTHENTICATED
    listed = await users.stub.ListUsers(pb.ListUsersRequest(), metadata=admin_auth, timeout=5)
    assert user.id not in {u.id for u in listed.users}
    # The email is free again.
    assert (await users.sign_up(email=user.email)).id != user.id


async def test_changes_roll_back_when_the_auth_service_is_unreachable(
    users: RunningUsers, database_url: str, redis_url: str
) -> None:
    user, auth = await users.member("Ada")
    async with running_users(
        database_url,
        redis_url,
        users.schema,
        users.auth,
        auth_target="127.0.0.1:1",
        auth_timeout=0.5,
    ) as broken:
        moved = await rpc_error(
            broken.stub.UpdateUser(
                _update(user_pb2.User(id="me", email=unique_email("moved")), "email"),
                metadata=auth,
                timeout=5,
            )
        )
        deleted = await rpc_error(
            broken.stub.DeleteUser(pb.DeleteUserRequest(id="me"), metadata=auth, timeout=5)
        )
    assert moved.code() == deleted.code() == grpc.StatusCode.UNAVAILABLE
    read = await users.stub.GetUser(pb.GetUserRequest(id="me"), metadata=auth, timeout=5)
    assert read.user == user  # neither the email nor the deletion was half applied
    assert (await users.auth.login(user.email, PASSWORD)).access_token


async def test_the_last_admin_can_be_neither_demoted_nor_deleted(users: RunningUsers) -> None:
    root, root_auth = await users.admin()
    demote = _update(user_pb2.User(id=root.id, role=user_pb2.ROLE_USER), "role")
    for attempt in (
        users.stub.UpdateUser(demote, metadata=root_auth, timeout=5),
        users.stub.DeleteUser(pb.DeleteUserRequest(id="me"), metadata=root_auth, timeout=5),
    ):
        refused = await rpc_error(attempt)
        assert refused.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert error_reason(refused) == "LAST_ADMIN"
    still = await users.stub.GetUser(pb.GetUserRequest(id="me"), metadata=root_auth, timeout=5)
    assert still.user.role == user_pb2.ROLE_ADMIN

    # With a second administrator, the first may step down.
    ada, _ = await users.member("Ada")
    promote = _update(user_pb2.User(id=ada.id, role=user_pb2.ROLE_ADMIN), "role")
    await users.stub.UpdateUser(promote, metadata=root_auth, timeout=5)
    stepped_down = await users.stub.UpdateUser(demote, metadata=root_auth, timeout=5)
    assert stepped_down.user.role == user_pb2.ROLE_USER


async def test_two_admins_demoting_each_other_at_once_leave_one(users: RunningUsers) -> None:
    first, first_auth = await users.admin()
    second, second_auth = await users.admin()
    results = await asyncio.gather(
        users.stub.UpdateUser(
            _update(user_pb2.User(id=second.id, role=user_pb2.ROLE_USER), "role"),
            metadata=first_auth,
            timeout=10,
        ),
        users.stub.UpdateUser(
            _update(user_pb2.User(id=first.id, role=user_pb2.ROLE_USER), "role"),
            metadata=second_auth,
            timeout=10,
        ),
        return_exceptions=True,
    )
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(refused) == 1
    assert refused[0].code() == grpc.StatusCode.FAILED_PRECONDITION
    # Both tokens still say admin (roles change at the next login); the rows are the truth.
    listed = await users.stub.ListUsers(
        pb.ListUsersRequest(role=user_pb2.ROLE_ADMIN), metadata=first_auth, timeout=5
    )
    assert len({u.id for u in listed.users} & {first.id, second.id}) == 1
