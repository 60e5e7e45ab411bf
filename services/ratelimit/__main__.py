"""`python -m services.ratelimit`: one ratelimit replica, configured from the environment."""

from __future__ import annotations

import sys

from services.platform.embedded import ensure_redis
from services.platform.logging import configure_logging
from services.platform.server import run
from services.platform.settings import ConfigError
from services.ratelimit.server import serve
from services.ratelimit.settings import RateLimitSettings


def main() -> int:
    try:
        settings = RateLimitSettings.from_env()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    configure_logging(settings.log_level, service_name="ratelimit")
    redis_url = settings.redis_url or ensure_redis(settings.data_dir.resolve() / "redis").url
    run(serve(settings, redis_url))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
