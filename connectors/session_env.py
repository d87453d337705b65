"""What a ``requests`` session takes from the environment, read once per origin in a run.

Contract:
- ``requests`` reads the proxy variables (``http_proxy``, ``https_proxy``, ``no_proxy``,
  ...) and the CA-bundle ones (``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``) on every
  request (``Session.merge_environment_settings``), about 0.2 ms each time with an
  ordinary environment, for an answer that depends only on the environment and the
  request's origin (scheme, host, port) and ``no_proxy`` setting.
- :func:`remember_environment` makes one session work that answer out once per origin
  and ``no_proxy`` setting and reuse it; what the request and the session themselves
  set (their proxies, ``stream``, ``verify``, ``cert``) is merged per request exactly as
  ``requests`` merges it, and a session with ``trust_env`` off is left to ``requests``.
- The connectors install it when they open, afresh, so what is remembered lives for
  one run: an environment changed between runs is read again by the next.
"""

from __future__ import annotations

import os
import threading
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.sessions import merge_setting
from requests.utils import get_environ_proxies


def remember_environment(session: requests.Session) -> None:
    """Have ``session`` read the environment once per origin from now on (see above)."""
    session.__dict__.pop("merge_environment_settings", None)   # a previous run's
    plain = session.merge_environment_settings   # requests' own, for trust_env off
    remembered: dict[tuple[str, str, str | None], tuple[dict[str, str], str | None]] = {}
    lock = threading.Lock()

    def merge_environment_settings(url: str, proxies: dict[str, str] | None, stream: Any,
                                   verify: Any, cert: Any) -> dict[str, Any]:
        if not session.trust_env:
            return plain(url, proxies, stream, verify, cert)
        no_proxy = proxies.get("no_proxy") if proxies is not None else None
        parts = urlsplit(url)
        # What get_environ_proxies looks at: the host and port (the netloc), no_proxy.
        key = (parts.scheme, parts.netloc, no_proxy)
        known = remembered.get(key)
        if known is None:
            known = (dict(get_environ_proxies(url, no_proxy=no_proxy)),
                     os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE"))
            with lock:
                remembered[key] = known
        env_proxies, bundle = known
        # From here on, requests' merge_environment_settings step by step.
        if proxies is not None:
            for name, value in env_proxies.items():
                proxies.setdefault(name, value)
        if verify is True or verify is None:
            verify = bundle or verify
        return {
            "proxies": merge_setting(proxies, session.proxies),
            "stream": merge_setting(stream, session.stream),
            "verify": merge_setting(verify, session.verify),
            "cert": merge_setting(cert, session.cert),
        }

    # An instance attribute: Session.request calls self.merge_environment_settings.
    session.merge_environment_settings = merge_environment_settings  # type: ignore[method-assign]
