"""OAuth 2.0 errors (RFC 6749 §5.2): `{error, error_description}` as JSON, never cached."""

from __future__ import annotations

from fastapi.responses import JSONResponse

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class OAuthError(Exception):
    """An error of the token, introspection or revocation endpoint."""

    def __init__(
        self,
        error: str,
        description: str,
        *,
        status: int = 400,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        return JSONResponse(
            {"error": self.error, "error_description": self.description},
            status_code=self.status,
            headers={**NO_STORE, **self.headers},
        )


def invalid_client(description: str, *, basic: bool = False) -> OAuthError:
    """401; with `WWW-Authenticate: Basic` when the client tried HTTP Basic (§5.2)."""
    headers = {"WWW-Authenticate": 'Basic realm="nexus"'} if basic else {}
    return OAuthError("invalid_client", description, status=401, headers=headers)


def invalid_request(description: str) -> OAuthError:
    return OAuthError("invalid_request", description)


def invalid_grant(description: str) -> OAuthError:
    return OAuthError("invalid_grant", description)
