"""The HTTP server that `vas_throughput.py` drives: the VAS service, as in production.

It is configured by `NEXUS_*` environment variables like any Nexus process (database,
bus, Redis, `NEXUS_VAS_PUBLIC_URL` for the providers' callbacks, `NEXUS_RUN_WORKERS`
to run the API without workers), plus `NEXUS_BENCH_ISSUER_KEY`: the path of a private
JWK file written by the benchmark, so the process accepts the tokens of that
`TestIssuer` (there is no IDaaS in this process). One uvicorn process, no reload, JSON
logs at the configured level, no access log. Run it as a script; it serves until
SIGTERM. Migrations are applied by the benchmark before it starts the server.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import uvicorn
from joserfc.jwk import ECKey

from nexus.kernel.config import get_settings
from nexus.kernel.http import create_app
from nexus.kernel.logging import configure_logging
from nexus.kernel.runtime import Runtime
from nexus.services.vas import service as vas_service
from nexus.testing.tokens import TestIssuer


def app_factory() -> Any:
    """The app of the server process (uvicorn `--factory`)."""
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    runtime = Runtime(settings, [vas_service])
    issuer = TestIssuer(issuer=settings.issuer(), audience=settings.jwt_audience)
    key_file = Path(os.environ["NEXUS_BENCH_ISSUER_KEY"])
    issuer.key = ECKey.import_key(json.loads(key_file.read_text()))
    issuer.install(runtime)
    return create_app(settings, runtime=runtime)


def main() -> None:
    settings = get_settings()
    uvicorn.run(
        "vas_app:app_factory",
        factory=True,
        app_dir=str(Path(__file__).resolve().parent),
        host=settings.host,
        port=settings.port,
        workers=1,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=max(1, int(settings.shutdown_timeout_s)),
        lifespan="on",
        server_header=False,
    )


if __name__ == "__main__":
    main()
