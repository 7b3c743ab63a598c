"""A ``requests`` session that reaches a vetted URL at the very address the URL policy checked.

``urlpolicy.check_url`` resolves the host once and vets every address; a plain ``requests.post``
would resolve the name again (a DNS answer can change between the check and the connection).
The adapter here hands ``requests`` a connection pool bound to the checked address, while the
request keeps the URL's Host header and, over https, its TLS server name and certificate check.
Redirects are never followed (the caller sees the 3xx); every socket obeys the current
``Deadline``.
"""

from __future__ import annotations

from typing import Any

import requests
import requests.certs
import urllib3
from requests.adapters import HTTPAdapter

from .deadline import WatchedHTTPConnectionPool, WatchedHTTPSConnectionPool
from .urlpolicy import Target


class PinnedAdapter(HTTPAdapter):
    """Every request through this adapter goes to ``target.address``:``target.port``."""

    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(max_retries=0)
        self.target = target
        pool_timeout = urllib3.Timeout(connect=timeout, read=timeout)
        if target.scheme == "http":
            self.pool: urllib3.HTTPConnectionPool = WatchedHTTPConnectionPool(
                target.address, target.port, timeout=pool_timeout, maxsize=1, retries=False)
        else:
            self.pool = WatchedHTTPSConnectionPool(
                target.address, target.port, timeout=pool_timeout, maxsize=1, retries=False,
                server_hostname=target.host, assert_hostname=target.host, cert_reqs="CERT_REQUIRED",
                ca_certs=requests.certs.where())

    def get_connection_with_tls_context(self, request: Any, verify: Any, proxies: Any = None,
                                        cert: Any = None) -> urllib3.HTTPConnectionPool:
        return self.pool

    def close(self) -> None:
        self.pool.close()
        super().close()


def pinned_session(target: Target, timeout: float) -> requests.Session:
    """A session for one vetted target; send ``Host: target.host_header`` and close it after use."""
    session = requests.Session()
    session.trust_env = False  # no proxy from the environment: the connection goes where it was checked
    session.max_redirects = 0
    adapter = PinnedAdapter(target, timeout)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["Host"] = target.host_header
    return session
