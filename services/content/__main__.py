"""`python -m services.content`: one content replica, configured from the environment."""

from __future__ import annotations

from services.platform.runtime import start_runtime
from services.platform.server import run
from services.platform.settings import Settings

from .bootstrap import MIGRATIONS, SCHEMA, bootstrap
from .settings import ContentSettings
from .users import GrpcUserDirectory


async def main() -> None:
    runtime = await start_runtime(Settings.from_env("content"), SCHEMA, MIGRATIONS)
    extra = ContentSettings.from_env()
    authors = GrpcUserDirectory(extra.user_service_target, timeout=extra.user_service_timeout)
    runtime.on_stop(authors.close)
    app = bootstrap(
        database=runtime.database,
        redis=runtime.redis(),
        authors=authors,
        page_token_secret=runtime.settings.page_token_secret,
    )
    app.relay.start()
    runtime.on_stop(app.relay.stop)
    await runtime.serve([app.service], auth_target=extra.auth_service_target)


if __name__ == "__main__":
    run(main())
