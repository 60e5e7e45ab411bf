"""`python -m services.notification`: one notification replica, configured from the environment."""

from __future__ import annotations

from services.platform.runtime import start_runtime
from services.platform.server import run
from services.platform.settings import Settings

from .bootstrap import MIGRATIONS, SCHEMA, bootstrap
from .email import SmtpConfig
from .settings import NotificationSettings


async def main() -> None:
    runtime = await start_runtime(Settings.from_env("notification"), SCHEMA, MIGRATIONS)
    extra = NotificationSettings.from_env()
    smtp = (
        SmtpConfig(extra.smtp_host, extra.smtp_port, extra.smtp_from) if extra.smtp_host else None
    )
    app = bootstrap(
        database=runtime.database,
        redis_url=runtime.redis_url,
        page_token_secret=runtime.settings.page_token_secret,
        smtp=smtp,
        heartbeat_interval=extra.heartbeat_seconds,
        claim_min_idle=extra.claim_min_idle_seconds,
    )
    app.start()
    runtime.on_stop(app.close)
    await runtime.serve(
        [app.service], auth_target=extra.auth_service_target, draining=[app.hub.drain]
    )


if __name__ == "__main__":
    run(main())
