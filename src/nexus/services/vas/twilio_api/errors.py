"""Twilio's error body and codes, and the route class that answers with them.

Twilio clients read `{"code", "message", "more_info", "status"}` (the SDKs turn it into
`TwilioRestException`), so every failure on the Twilio paths, including a request the
framework refuses, is answered in that shape instead of problem+json.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

MORE_INFO = "https://www.twilio.com/docs/errors/{code}"

# code -> (HTTP status, default message)
CODES: dict[int, tuple[int, str]] = {
    20001: (400, "Invalid parameter."),
    20003: (401, "Authenticate"),
    20009: (400, "Cannot delete or redact the message: delivery has not completed."),
    20404: (404, "The requested resource was not found"),
    20429: (429, "Too Many Requests"),
    20500: (500, "Internal Server Error"),
    21211: (400, "The 'To' number is not a valid phone number."),
    21212: (400, "The 'From' number is not a valid phone number, short code or sender id."),
    21602: (400, "Message body is required."),
    21603: (400, "A 'From' phone number is required."),
    21604: (400, "A 'To' phone number is required."),
    21606: (400, "The 'From' phone number is not a sender of this account for this channel."),
    21609: (400, "The StatusCallback URL is not valid."),
    21610: (400, "Attempt to send to unsubscribed recipient"),
    21612: (400, "The message cannot be sent to this 'To' number: no provider serves it."),
    21617: (400, "The concatenated message body exceeds the 1600 character limit."),
    21620: (400, "Invalid media URL."),
    21623: (400, "Too many media URLs."),
    21656: (400, "The ContentVariables parameter is invalid."),
    21910: (400, "Invalid 'From' and 'To' pair. 'From' and 'To' should be of the same channel."),
    30409: (400, "This message cannot be canceled."),
}


class TwilioError(Exception):
    def __init__(
        self,
        code: int,
        message: str | None = None,
        *,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ):
        default_status, default_message = CODES.get(code, (400, "Bad request"))
        self.code = code
        self.message = message or default_message
        self.status = status or default_status
        self.headers = headers or {}
        super().__init__(self.message)

    def response(self) -> JSONResponse:
        headers = dict(self.headers)
        if self.status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="Twilio API"'
        return JSONResponse(
            {
                "code": self.code,
                "message": self.message,
                "more_info": MORE_INFO.format(code=self.code),
                "status": self.status,
            },
            status_code=self.status,
            headers=headers,
        )


class TwilioRoute(APIRoute):
    """Turns TwilioError and request validation errors into Twilio's error body."""

    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except TwilioError as exc:
                return exc.response()
            except RequestValidationError as exc:
                first = exc.errors()[0] if exc.errors() else {}
                where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("query",))
                return TwilioError(
                    20001, f"Invalid parameter {where}: {first.get('msg')}"
                ).response()

        return handle
