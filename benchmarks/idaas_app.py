"""The HTTP server that `idaas_auth.py` drives: IDaaS as it runs in production.

The app is the production factory (`nexus.kernel.http:app_factory`, which loads the
services `NEXUS_SERVICES` names and configures JSON logs); this script only runs it under
uvicorn with `NEXUS_BENCH_WORKERS` worker processes, no reload, no access log of
uvicorn's own (the Nexus middleware writes one). Configured by `NEXUS_*` variables like
any Nexus process; migrations are applied by the benchmark before it starts the server.
It serves until SIGTERM.
"""

from __future__ import annotations

import os

import uvicorn

from nexus.kernel.config import get_settings


def main() -> None:
    settings = get_settings()
    uvicorn.run(
        "nexus.kernel.http:app_factory",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=int(os.environ.get("NEXUS_BENCH_WORKERS", "1")),
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=max(1, int(settings.shutdown_timeout_s)),
        lifespan="on",
        server_header=False,
    )


if __name__ == "__main__":
    main()
