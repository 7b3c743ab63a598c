"""Fetching a URL that the operator did not configure: a provider answer's image URL today,
account webhooks later. DESIGN.md, "Fetching a URL that the operator did not configure".

Rules: https only, plain http only to hosts listed in ``ALLOWED_HTTP_HOSTS`` (``host`` or
``host:port``); after DNS resolution, never a private, loopback, link-local, CGNAT, multicast,
reserved or unspecified address (IPv4-mapped/6to4/NAT64 forms included) unless the host is
listed; the connection goes to the very address that was checked (resolved once, no DNS
rebinding gap) while the request keeps the original Host header and TLS server name; a
redirect is refused (``max_redirects`` = 0; a caller that raises it gets every hop checked
again); a body above ``max_bytes`` is refused from its Content-Length or while streaming, never
read whole first; the whole fetch ends by its deadline (a watchdog shuts the socket).
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import requests.certs
import urllib3
from urllib3.exceptions import HTTPError as Urllib3Error

from .deadline import Deadline, DeadlineExceeded, WatchedHTTPConnectionPool, WatchedHTTPSConnectionPool

CHUNK_BYTES = 64 * 1024
DEFAULT_PORTS = {"https": 443, "http": 80}
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class URLRefused(Exception):
    """The policy refuses this URL (or its download); the message says why, for writers."""


class DownloadTooLarge(URLRefused):
    """The body is larger than the allowed size."""


class FetchFailed(Exception):
    """The URL was allowed but the fetch did not give a body (HTTP error, network fault)."""


@dataclass(frozen=True)
class Target:
    """A vetted URL: connect to ``address``:``port``, send ``host_header`` and ``path``."""

    scheme: str
    host: str
    port: int
    address: str
    path: str
    host_header: str


def parse_allowed_hosts(value: str | Iterable[str] | None) -> tuple[str, ...]:
    """``"a.test, b.test:8080"`` (or a list of such entries) as normalised entries."""
    items = value.split(",") if isinstance(value, str) else list(value or ())
    return tuple(entry.strip().lower() for entry in items if entry and entry.strip())


def is_blocked_address(address: str | IPAddress) -> bool:
    """True for any address that is not plainly public: private, loopback, link-local
    (169.254/16 and fe80::/10, cloud metadata included), CGNAT 100.64/10, unspecified, multicast,
    reserved, site-local, and IPv4 embedded in IPv6 (mapped, 6to4, NAT64) when the IPv4 is."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (
            ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) if ip in _NAT64 else None)
        if embedded is not None:
            return is_blocked_address(embedded)
        if ip.is_site_local:
            return True
    return (not ip.is_global or ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast
            or ip.is_reserved or ip.is_unspecified)


def _listed(host: str, port: int, allowed: Collection[str]) -> bool:
    name = f"[{host}]" if ":" in host else host
    return bool({host, name, f"{name}:{port}"} & set(allowed))


def _addresses(host: str, port: int) -> list[str]:
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchFailed(f"the host {host} could not be found") from exc
    addresses = list(dict.fromkeys(str(info[4][0]).split("%")[0] for info in infos))
    if not addresses:
        raise FetchFailed(f"the host {host} could not be found")
    return addresses


def check_url(url: str, allowed_http_hosts: Collection[str] | str = ()) -> Target:
    """Vet ``url`` and resolve its host once. Raises ``URLRefused`` (policy) or ``FetchFailed``
    (the host does not resolve). Plain http to an unlisted host is refused before any DNS query."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise URLRefused("the URL is not valid") from exc
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if scheme not in DEFAULT_PORTS:
        raise URLRefused("only https URLs are fetched")
    if not host:
        raise URLRefused("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise URLRefused("URLs with credentials are not fetched")
    port = port or DEFAULT_PORTS[scheme]
    allowed = parse_allowed_hosts(allowed_http_hosts)
    listed = _listed(host, port, allowed)
    if scheme == "http" and not listed:
        raise URLRefused(f"plain http to {host} is not allowed (only https, or a host in ALLOWED_HTTP_HOSTS)")
    addresses = _addresses(host, port)
    blocked = [a for a in addresses if is_blocked_address(a)]
    if blocked and not listed:
        raise URLRefused(f"{host} resolves to a private or local address ({blocked[0]})")
    name = f"[{host}]" if ":" in host else host
    host_header = name if port == DEFAULT_PORTS[scheme] else f"{name}:{port}"
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(scheme=scheme, host=host, port=port, address=addresses[0], path=path, host_header=host_header)


def _pool(target: Target, deadline: Deadline) -> urllib3.HTTPConnectionPool:
    """A one-connection pool that connects to the vetted address, never the name again."""
    timeout = urllib3.Timeout(connect=max(deadline.remaining(), 0.001), read=max(deadline.remaining(), 0.001))
    if target.scheme == "http":
        return WatchedHTTPConnectionPool(target.address, target.port, timeout=timeout, maxsize=1, retries=False)
    return WatchedHTTPSConnectionPool(target.address, target.port, timeout=timeout, maxsize=1, retries=False,
                                      server_hostname=target.host, assert_hostname=target.host,
                                      cert_reqs="CERT_REQUIRED", ca_certs=requests.certs.where())


def fetch(url: str, *, allowed_http_hosts: Collection[str] | str, max_bytes: int, deadline: float) -> bytes:
    """GET ``url`` under the policy; ``deadline`` is a ``time.monotonic()`` value. Raises
    ``URLRefused``, ``FetchFailed`` or ``DeadlineExceeded`` (see ``safe_get``)."""
    with Deadline(max(deadline - time.monotonic(), 0.0)) as watched:
        watched.check()
        return safe_get(url, max_bytes=max_bytes, deadline=watched, allowed_http_hosts=allowed_http_hosts)


def safe_get(url: str, *, max_bytes: int, deadline: Deadline, allowed_http_hosts: Collection[str] | str = (),
             max_redirects: int = 0) -> bytes:
    """GET ``url`` under the policy and return the body (status 200, at most ``max_bytes``).

    Raises ``URLRefused`` (``DownloadTooLarge`` for size), ``FetchFailed`` (HTTP status, network
    fault, empty body) or ``DeadlineExceeded``. Run it inside ``with deadline:`` so a dripping
    server is cut off at the deadline.
    """
    for _hop in range(max_redirects + 1):
        target = check_url(url, allowed_http_hosts=allowed_http_hosts)
        pool = _pool(target, deadline)
        try:
            response = pool.urlopen("GET", target.path, redirect=False, retries=False, preload_content=False,
                                    decode_content=False, assert_same_host=False,
                                    headers={"Host": target.host_header, "Accept": "image/*, */*;q=0.5",
                                             "Accept-Encoding": "identity", "User-Agent": "igny8-images"})
            try:
                location = response.headers.get("Location")
                if 300 <= response.status < 400:
                    if not max_redirects:
                        raise URLRefused(f"it answered with a redirect (HTTP {response.status}), which is not followed")
                    if location:
                        url = urljoin(url, location)
                        continue
                return _read_body(response, max_bytes, deadline)
            finally:
                response.close()  # a refused body is never drained: the connection is dropped
                response.release_conn()
        except (Urllib3Error, http.client.HTTPException, OSError) as exc:
            if deadline.expired:
                raise DeadlineExceeded(f"the download did not finish within {deadline.seconds:g} s") from exc
            raise FetchFailed(f"the connection to {target.host} failed ({type(exc).__name__})") from exc
        finally:
            pool.close()
    raise URLRefused(f"more than {max_redirects} redirects")


def _read_body(response: urllib3.BaseHTTPResponse, max_bytes: int, deadline: Deadline) -> bytes:
    if response.status != 200:
        raise FetchFailed(f"the URL answered HTTP {response.status}")
    too_large = DownloadTooLarge(f"the image is larger than the {max_bytes / 1024 / 1024:g} MB allowed "
                                 "(MAX_DOWNLOAD_MB)")
    length = response.headers.get("Content-Length", "")
    if length.strip().isdigit() and int(length) > max_bytes:
        raise too_large
    chunks: list[bytes] = []
    total = 0
    while chunk := response.read(CHUNK_BYTES):
        total += len(chunk)
        if total > max_bytes:
            raise too_large
        deadline.check()
        chunks.append(chunk)
    deadline.check()  # a watchdog shutdown looks like the end of a close-delimited body
    if not total:
        raise FetchFailed("the URL sent an empty body")
    return b"".join(chunks)
