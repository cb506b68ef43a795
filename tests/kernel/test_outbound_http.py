"""The outbound HTTP client: httpx's API on aiohttp's pool, against real loopback servers."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web

from nexus.kernel.outbound_http import outbound_client

LIMITS = httpx.Limits(max_connections=8, max_keepalive_connections=4)


@pytest.fixture
async def server() -> AsyncIterator[str]:
    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        return web.json_response(
            {
                "method": request.method,
                "body": body.decode(),
                "auth": request.headers.get("Authorization"),
                "agent": request.headers.get("User-Agent"),
                "cookie": request.headers.get("Cookie"),
                "query": dict(request.query),
            },
            status=201,
            headers={"Set-Cookie": "session=abc; Path=/"},
        )

    async def zipped(_request: web.Request) -> web.Response:
        return web.Response(
            body=gzip.compress(b'{"ok": true}'),
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        )

    async def slow(_request: web.Request) -> web.Response:
        await asyncio.sleep(1)
        return web.Response(text="late")

    async def moved(_request: web.Request) -> web.Response:
        raise web.HTTPFound("/echo")

    app = web.Application()
    app.router.add_route("*", "/echo", echo)
    app.router.add_get("/zipped", zipped)
    app.router.add_get("/slow", slow)
    app.router.add_get("/moved", moved)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


def client(timeout: float = 5.0) -> httpx.AsyncClient:
    return outbound_client(
        timeout=httpx.Timeout(timeout), limits=LIMITS, headers={"user-agent": "Nexus-Test/1"}
    )


async def test_requests_and_answers_like_httpx(server: str) -> None:
    async with client() as http:
        form = await http.post(
            f"{server}/echo", data={"To": "+1555", "Body": "hé"}, auth=("a", "b")
        )
        assert form.status_code == 201
        seen = form.json()
        assert seen["body"] == "To=%2B1555&Body=h%C3%A9"
        assert seen["auth"] == httpx.BasicAuth("a", "b")._auth_header
        assert seen["agent"] == "Nexus-Test/1"

        sent = await http.post(f"{server}/echo", json={"x": [1, 2]}, params={"q": "1"})
        assert json.loads(sent.json()["body"]) == {"x": [1, 2]}
        assert sent.json()["query"] == {"q": "1"}
        assert (await http.get(f"{server}/zipped")).json() == {"ok": True}


async def test_keeps_no_cookies_between_requests(server: str) -> None:
    async with client() as http:
        await http.get(f"{server}/echo")
        again = await http.get(f"{server}/echo")
    assert again.json()["cookie"] is None


async def test_redirects_are_httpx_s_decision(server: str) -> None:
    async with client() as http:
        assert (await http.get(f"{server}/moved")).status_code == 302
        followed = await http.get(f"{server}/moved", follow_redirects=True)
    assert followed.status_code == 201


async def test_refused_connection_is_a_connect_error() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with client() as http:
        with pytest.raises(httpx.ConnectError):
            await http.post(f"http://127.0.0.1:{port}/", data={"a": "b"})


async def test_slow_answer_is_a_read_timeout(server: str) -> None:
    async with client(timeout=0.2) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.get(f"{server}/slow")


async def test_connection_lost_after_sending_is_not_a_connect_error() -> None:
    """The request left: the provider may have acted on it, so it must not look like a
    request that never reached it (which callers send elsewhere at once)."""

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with client() as http:
            with pytest.raises(httpx.TransportError) as caught:
                await http.post(f"http://127.0.0.1:{port}/", data={"a": "b"})
        assert not isinstance(caught.value, httpx.ConnectError | httpx.ConnectTimeout)
    finally:
        server.close()
        await server.wait_closed()
