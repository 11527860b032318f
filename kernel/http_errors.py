"""The HTTP side of the error envelope: one set of handlers for every FastAPI app.

The gateway and the retriever service both install these, so every HTTP error — our own
``RasstError``, request validation, routing's 404/405 — answers with the same
``{"error": {"code", "message", "detail"}}`` body (``kernel.errors.error_body``).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from kernel.errors import ErrorCode, RasstError, error_body, http_status

log = logging.getLogger(__name__)


def install_error_handlers(app: FastAPI) -> None:
    """One envelope for every HTTP error (RasstError and request validation alike)."""

    async def on_rasst_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RasstError)
        return JSONResponse(
            error_body(exc.code, exc.message, exc.detail), status_code=exc.http_status
        )

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = [
            {"loc": ".".join(str(p) for p in err["loc"]), "msg": err["msg"]} for err in exc.errors()
        ]
        code = ErrorCode.VALIDATION_FAILED
        return JSONResponse(
            error_body(code, "the request is invalid", problems), status_code=http_status(code)
        )

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        # Routing's own answers (unknown path, wrong method) in the same envelope.
        assert isinstance(exc, StarletteHTTPException)
        code = _HTTP_STATUS_CODES.get(exc.status_code)
        if code is None:
            code = ErrorCode.INTERNAL_ERROR if exc.status_code >= 500 else ErrorCode.BAD_REQUEST
        return JSONResponse(
            error_body(code, str(exc.detail)),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    async def on_client_disconnect(request: Request, exc: Exception) -> Response:
        # The client hung up while sending its body: nobody hears an answer, so no
        # traceback and no error envelope, one line in the log.
        log.info("client disconnected mid-request: %s %s", request.method, request.url.path)
        return Response(status_code=400)

    app.add_exception_handler(RasstError, on_rasst_error)
    app.add_exception_handler(ClientDisconnect, on_client_disconnect)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)


_HTTP_STATUS_CODES = {
    401: ErrorCode.UNAUTHORIZED,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
    415: ErrorCode.UNSUPPORTED_FORMAT,
    429: ErrorCode.RATE_LIMITED,
}
