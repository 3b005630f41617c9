"""Who can reach `workbench serve`: the bound address, decided once, and the Host check.

    bind = decide_bind(host=args.host, share=args.share)   # flag > $GRADIO_SERVER_NAME > 127.0.0.1
    bind.exposed                                           # beyond loopback, or a share link
    demo.launch(server_name=bind.host, share=bind.share,
                app_kwargs=host_check_app_kwargs(bind, allowed_hosts=["wb.lan"]))

Why one decision: Gradio reads its own variables (`GRADIO_SERVER_NAME`, `GRADIO_SHARE`) when
it is handed an empty or missing value, so a guard that looked only at the `--host` flag could
be walked around with `--host "" GRADIO_SERVER_NAME=0.0.0.0` (issue 29, item 7). Every source
is read here, the result is handed to Gradio explicitly (never empty), and the no-password
guard in `main.launch` judges that result.

Why a Host check: a page on `evil.example` can make its name resolve to 127.0.0.1 (DNS
rebinding); the browser then treats the loopback server as same-origin with the page, which
could read files and start jobs through the API (issue 29, item 2). Such requests carry
`Host: evil.example`, so the server answers only Hosts it knows: the bound address,
`localhost`, `127.0.0.1`, `[::1]`, and names the operator lists (`--allowed-hosts`,
`$WORKBENCH_ALLOWED_HOSTS`). Jupyter and Vite defend the same way.
"""
from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass, field

DEFAULT_HOST = "127.0.0.1"
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


@dataclass(frozen=True)
class Bind:
    host: str              # what the server binds, never empty
    share: bool            # a public gradio.live tunnel as well
    source: str            # where `host` came from, for messages: "--host", "GRADIO_SERVER_NAME" or "default"

    @property
    def exposed(self) -> bool:
        return self.share or not is_loopback(self.host)


def _truthy(v: str | None) -> bool:
    return (v or "").strip().lower() in ("1", "true", "yes", "on")


def decide_bind(host: str | None = None, share: bool | None = False) -> Bind:
    """The address and share setting the server will really use, after every source: the
    flag (an empty string counts as not given, as Gradio treats it), then Gradio's own
    `GRADIO_SERVER_NAME` / `GRADIO_SHARE`, then loopback."""
    if host is not None and host.strip():
        h, source = host.strip(), "--host"
    elif os.environ.get("GRADIO_SERVER_NAME", "").strip():
        h, source = os.environ["GRADIO_SERVER_NAME"].strip(), "GRADIO_SERVER_NAME"
    else:
        h, source = DEFAULT_HOST, "default"
    return Bind(host=h, share=bool(share) or _truthy(os.environ.get("GRADIO_SHARE")), source=source)


def _bare(host: str) -> str:
    h = host.strip().lower().rstrip(".")
    return h[1:-1] if h.startswith("[") and h.endswith("]") else h


def is_loopback(host: str) -> bool:
    h = _bare(host)
    if h == "localhost" or h.startswith("127."):
        return True
    if not h:
        return False   # an empty bind address means "whatever Gradio picks": never assume loopback
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        try:
            return all(ipaddress.ip_address(info[4][0]).is_loopback for info in socket.getaddrinfo(h, None))
        except (OSError, ValueError):
            return False


def _is_wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(_bare(host)).is_unspecified
    except ValueError:
        return False


@dataclass(frozen=True)
class HostPolicy:
    names: frozenset[str]                       # exact host names / addresses, lower case, no port
    suffixes: tuple[str, ...] = ()              # ".example.com" admits every sub-domain
    ip_literals: bool = False                   # bound to every interface: any IP address is fine
    off: bool = False                           # "*" listed, or a share link (see host_policy)
    listed: tuple[str, ...] = field(default=())

    def allows(self, host_header: str | None) -> bool:
        if self.off:
            return True
        if not host_header:
            return False
        h = host_header.strip().lower()
        if h.startswith("["):
            h = h[1:h.find("]")] if "]" in h else h
        elif h.count(":") == 1:
            h = h.rsplit(":", 1)[0]
        h = h.rstrip(".")
        if h in self.names or any(h.endswith(s) for s in self.suffixes):
            return True
        if self.ip_literals:
            try:
                ipaddress.ip_address(h)
                return True   # rebinding needs a name; an address typed in the bar is the real one
            except ValueError:
                return False
        return False


def allowed_hosts_from_env() -> list[str]:
    return [h for h in os.environ.get("WORKBENCH_ALLOWED_HOSTS", "").replace(",", " ").split() if h]


def host_policy(bind: Bind, allowed_hosts: list[str] | None = None) -> HostPolicy:
    """The Hosts this server answers. A share link is reached through Gradio's tunnel under a
    name we do not know in advance, and needs a password anyway (rebinding is an attack on
    servers without one), so the check is off there."""
    listed = [*(allowed_hosts or []), *allowed_hosts_from_env()]
    clean = [_bare(h) for h in listed if h.strip()]
    names = set(LOOPBACK_NAMES) | {_bare(bind.host)} | {c for c in clean if not c.startswith(".")}
    if _is_wildcard(bind.host):
        names |= {_bare(socket.gethostname())}
        try:
            names |= {_bare(socket.getfqdn())}
        except OSError:  # pragma: no cover - odd resolver setups
            pass
    return HostPolicy(names=frozenset(names), suffixes=tuple(c for c in clean if c.startswith(".") and c != "."),
                      ip_literals=_is_wildcard(bind.host), off=bind.share or "*" in clean, listed=tuple(clean))


class HostCheckMiddleware:
    """ASGI middleware: refuse a request (HTTP 403, or a closed WebSocket) whose Host header is
    not in the policy, before any route or the login sees it."""

    def __init__(self, app, policy: HostPolicy):
        self.app, self.policy = app, policy

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        host = None
        for k, v in scope.get("headers") or ():
            if k == b"host":
                host = v.decode("latin-1")
                break
        if self.policy.allows(host):
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        body = (f"Host {str(host)[:100]!r} is not allowed. Open the workbench at the address it is served on, "
                "or start it with --allowed-hosts NAME (or $WORKBENCH_ALLOWED_HOSTS).\n").encode()
        await send({"type": "http.response.start", "status": 403,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def host_check_app_kwargs(bind: Bind, allowed_hosts: list[str] | None = None) -> dict:
    """`app_kwargs` for `Blocks.launch`: Gradio builds its FastAPI app with them, so the check is
    in the app's middleware from its first request (middleware cannot be added once it serves)."""
    from starlette.middleware import Middleware

    return {"middleware": [Middleware(HostCheckMiddleware, policy=host_policy(bind, allowed_hosts))]}
