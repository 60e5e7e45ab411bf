"""The user service: accounts and profiles (schema `users`), cache-aside reads in Redis.

Run one replica: `python -m services.user` (env: services.user.settings and
services.platform.settings).

First administrator: nobody becomes admin through a public call. An operator with access to
the database and the auth service promotes an existing account:

    python -m services.user promote-admin ada@example.com

(same environment as the service: DATABASE_URL, AUTH_SERVICE_TARGET, ...). After that,
admins change roles through UpdateUser with `update_mask: "role"`.
"""
