"""A client of the OCI distribution API (any registry, Harbor included): ping, basic and
bearer-token auth, tag lists, manifests and digests. Plain Python on requests, no Django.

Errors are RegistryError subclasses whose messages name the registry and what failed, never a
password or a token (they end up on records, pages and logs).
"""
from __future__ import annotations

import hashlib
import http.cookiejar
import re
import ssl
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import requests
import requests.adapters

MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
# Every type at once: a registry asked for fewer may convert the manifest, giving another digest.
MANIFEST_ACCEPT = ", ".join(MANIFEST_TYPES)

# The distribution spec's grammar for repository names, tags and digests.
REPOSITORY = re.compile(r"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
                        r"(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$")
TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")


class RegistryError(Exception):
    """A registry could not do what was asked; the message says why, without credentials."""


class Unauthorized(RegistryError):
    """The registry refused the credentials (or their absence)."""


class NotFound(RegistryError):
    """No such repository, tag or manifest."""


class Unreachable(RegistryError):
    """No answer: connection refused, DNS, TLS failure, timeout."""


class InvalidReference(RegistryError):
    """A repository name, tag or digest the distribution grammar does not allow."""


def check_repository(name: str) -> str:
    if not isinstance(name, str) or len(name) > 255 or not REPOSITORY.match(name):
        raise InvalidReference("a repository name is lower-case letters and digits, separated by "
                               "'.', '_', '-' or '/', e.g. team/web")
    return name


def check_reference(reference: str) -> str:
    if isinstance(reference, str) and (TAG.match(reference) or DIGEST.match(reference)):
        return reference
    raise InvalidReference("a tag is up to 128 letters, digits, '_', '.' or '-' (not starting "
                           "with '.' or '-'); a digest is sha256: and 64 hex digits")


class _NoCookies(http.cookiejar.DefaultCookiePolicy):
    # Harbor answers writes from a cookie session with CSRF errors; basic auth needs none.
    def set_ok(self, cookie, request):
        return False


class _TLSAdapter(requests.adapters.HTTPAdapter):
    """Checks servers against a CA held in memory (an SSLContext), never a file on disk."""

    def __init__(self, context: ssl.SSLContext | None, **kwargs):
        self._context = context  # read by init_poolmanager, called from super().__init__
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs):
        if self._context is not None:
            kwargs["ssl_context"] = self._context
        super().init_poolmanager(*args, **kwargs)

    def cert_verify(self, conn, url, verify, cert):
        super().cert_verify(conn, url, verify, cert)
        if self._context is not None and verify:
            # requests would add its default bundle to our context, trusting every public CA.
            conn.ca_certs = conn.ca_cert_dir = None


def ca_context(ca_pem: str) -> ssl.SSLContext:
    """An SSLContext trusting only the CA certificates of `ca_pem`; ValueError if it holds none."""
    if "-----BEGIN CERTIFICATE-----" not in (ca_pem or ""):
        raise ValueError("not a PEM certificate (-----BEGIN CERTIFICATE----- ...)")
    try:
        return ssl.create_default_context(cadata=ca_pem)
    except (ssl.SSLError, ValueError) as exc:
        raise ValueError(f"not a readable PEM certificate: {type(exc).__name__}") from None


def session(verify: bool = True, ca_pem: str = "") -> requests.Session:
    """A requests session that reads nothing from the environment (.netrc, proxies, CA bundles)
    and keeps no cookies; TLS checked against `ca_pem` if given, else the system's CAs."""
    result = requests.Session()
    result.trust_env = False
    result.cookies.set_policy(_NoCookies())
    adapter = _TLSAdapter(ca_context(ca_pem) if (verify and ca_pem) else None)
    result.mount("https://", adapter)
    result.mount("http://", adapter)
    result.verify = bool(verify)
    return result


def base_url(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RegistryError("a registry URL is http:// or https:// and a host")
    if parts.username or parts.password:
        raise RegistryError("credentials do not belong in the registry URL")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """`Bearer realm="...",service="...",scope="..."` -> ("bearer", {realm, service, scope})."""
    scheme, _, rest = (header or "").strip().partition(" ")
    params = {key.lower(): value for key, value in
              re.findall(r'([A-Za-z_]+)\s*=\s*"([^"]*)"', rest)}
    return scheme.lower(), params


def next_link(header: str | None) -> str | None:
    """The target of `Link: <...>; rel="next"`, if any."""
    for part in (header or "").split(","):
        match = re.match(r'\s*<([^>]*)>\s*;.*rel="?next"?', part)
        if match:
            return match.group(1)
    return None


@dataclass(frozen=True)
class Manifest:
    digest: str
    media_type: str
    body: bytes


class HTTPClient:
    """A registry's address and its own HTTP session (TLS as configured), closed after use."""

    def __init__(self, url: str, *, verify: bool = True, ca_pem: str = "", timeout: float = 10,
                 name: str = ""):
        self.url = base_url(url)
        self.name = name or urlsplit(self.url).netloc
        self.timeout = timeout
        self.session = session(verify, ca_pem)

    def close(self) -> None:
        self.session.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class OCIClient(HTTPClient):
    """One registry, one set of credentials. Bearer tokens are kept per scope for the client's
    lifetime (short: one service call)."""

    def __init__(self, url: str, username: str = "", password: str = "", **options):
        super().__init__(url, **options)
        self._credentials = (username, password) if username else None
        self._tokens: dict[str, str] = {}
        self._basic = False  # the registry asked for basic auth: send it up front from now on

    # --- the API --------------------------------------------------------------------------
    def ping(self) -> None:
        """GET /v2/ with the credentials; raises unless the registry accepts them."""
        self._request("GET", "/v2/", scope="", what="the API root /v2/")

    def tags(self, repository: str, page_size: int | None = None) -> list[str]:
        """Every tag of `repository`, following the registry's pages (`n` per page; a registry
        that does not paginate tags, as distribution 2.x, answers all at once)."""
        check_repository(repository)
        return self._paged(f"/v2/{repository}/tags/list", "tags", page_size,
                           f"repository:{repository}:pull", f"the tags of {repository}")

    def repositories(self, page_size: int | None = None) -> list[str]:
        """Every repository the credentials may see (`/v2/_catalog`), page by page."""
        return self._paged("/v2/_catalog", "repositories", page_size, "registry:catalog:*",
                           "the catalog")

    def _paged(self, path: str, key: str, page_size: int | None, scope: str,
               what: str) -> list[str]:
        found: list[str] = []
        url: str | None = path
        params = {"n": str(page_size)} if page_size else None
        seen = set()
        while url and url not in seen:  # a Link back to a page already read ends the loop
            seen.add(url)
            response = self._request("GET", url, params=params, scope=scope, what=what)
            try:
                found.extend(response.json().get(key) or [])
            except (ValueError, AttributeError):
                raise RegistryError(f"{self.name} answered {what} with something other than "
                                    "the expected JSON") from None
            url, params = next_link(response.headers.get("Link")), None
        return found

    def manifest_digest(self, repository: str, reference: str) -> str:
        """The digest of the manifest (or index) `reference` names, from a HEAD when the
        registry sends Docker-Content-Digest, else from the body."""
        check_repository(repository)
        check_reference(reference)
        response = self._request("HEAD", f"/v2/{repository}/manifests/{reference}",
                                 headers={"Accept": MANIFEST_ACCEPT},
                                 scope=f"repository:{repository}:pull",
                                 what=f"manifest {repository}:{reference}")
        digest = response.headers.get("Docker-Content-Digest", "")
        return digest if DIGEST.match(digest) else self.manifest(repository, reference).digest

    def manifest(self, repository: str, reference: str) -> Manifest:
        check_repository(repository)
        check_reference(reference)
        response = self._request("GET", f"/v2/{repository}/manifests/{reference}",
                                 headers={"Accept": MANIFEST_ACCEPT},
                                 scope=f"repository:{repository}:pull",
                                 what=f"manifest {repository}:{reference}")
        body = response.content
        computed = "sha256:" + hashlib.sha256(body).hexdigest()
        sent = response.headers.get("Docker-Content-Digest", "")
        if DIGEST.match(reference) and computed != reference:
            raise RegistryError(f"{self.name}: manifest {repository}@{reference} does not match "
                                "its digest")
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        return Manifest(digest=sent if DIGEST.match(sent) else computed, media_type=media_type,
                        body=body)

    # --- HTTP and auth ----------------------------------------------------------------------
    def _request(self, method: str, path: str, *, scope: str, what: str,
                 params: dict | None = None, headers: dict | None = None) -> requests.Response:
        url = urljoin(self.url + "/", path.lstrip("/")) if not path.startswith("http") else path
        if urlsplit(url).netloc != urlsplit(self.url).netloc:
            # A Link header pointing elsewhere must not take our credentials along.
            raise RegistryError(f"{self.name}: the next page of {what} is on another host")
        response = self._send(method, url, params, headers, scope, what)
        if response.status_code == 401:
            scheme, challenge = parse_challenge(response.headers.get("WWW-Authenticate", ""))
            if self._credentials is None and scheme != "bearer":
                raise Unauthorized(f"{self.name} requires credentials for {what}")
            if scheme == "bearer":
                self._tokens[scope] = self._fetch_token(challenge, scope)
            elif scheme == "basic":
                self._basic = True
            else:
                raise Unauthorized(f"{self.name} asks for an unsupported authentication "
                                   f"scheme ({scheme or 'none'}) for {what}")
            response = self._send(method, url, params, headers, scope, what)
        if response.status_code == 401:
            raise Unauthorized(f"{self.name} refused the credentials for {what} (401)")
        if response.status_code == 403:
            raise Unauthorized(f"{self.name} denied access to {what} (403)")
        if response.status_code == 404:
            raise NotFound(f"{self.name}: {what} not found")
        if response.status_code >= 400:
            raise RegistryError(f"{self.name} answered {response.status_code} for {what}"
                                f"{_error_codes(response)}")
        return response

    def _send(self, method, url, params, headers, scope, what) -> requests.Response:
        headers = dict(headers or {})
        auth = None
        if scope in self._tokens:
            headers["Authorization"] = f"Bearer {self._tokens[scope]}"
        elif self._basic and self._credentials:
            auth = self._credentials
        try:
            return self.session.request(method, url, params=params, headers=headers, auth=auth,
                                        timeout=self.timeout, allow_redirects=method != "HEAD")
        except requests.exceptions.SSLError as exc:
            raise Unreachable(f"TLS handshake with {self.name} failed ({what}): "
                              f"{_ssl_reason(exc)}") from None
        except requests.RequestException as exc:
            raise Unreachable(f"cannot reach {self.name} ({what}): {type(exc).__name__}") from None

    def _fetch_token(self, challenge: dict[str, str], scope: str) -> str:
        realm = challenge.get("realm", "")
        if urlsplit(realm).scheme not in ("http", "https"):
            raise RegistryError(f"{self.name} named no usable token service in its challenge")
        params = {key: challenge[key] for key in ("service",) if challenge.get(key)}
        wanted = challenge.get("scope") or scope
        if wanted:
            params["scope"] = wanted
        try:
            response = self.session.get(realm, params=params, auth=self._credentials,
                                        timeout=self.timeout)
        except requests.RequestException as exc:
            raise Unreachable(f"cannot reach the token service of {self.name}: "
                              f"{type(exc).__name__}") from None
        if response.status_code in (401, 403):
            raise Unauthorized(f"the token service of {self.name} refused the credentials "
                               f"({response.status_code})")
        if response.status_code >= 400:
            raise RegistryError(f"the token service of {self.name} answered "
                                f"{response.status_code}")
        try:
            body = response.json()
        except ValueError:
            body = {}
        token = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
        if not token:
            raise RegistryError(f"the token service of {self.name} returned no token")
        return token


def _error_codes(response: requests.Response) -> str:
    """The distribution error codes of a reply (`MANIFEST_UNKNOWN`), never free text."""
    try:
        codes = [e.get("code") for e in response.json().get("errors", []) if e.get("code")]
    except (ValueError, AttributeError):
        return ""
    return f": {', '.join(str(c)[:40] for c in codes[:3])}" if codes else ""


def _ssl_reason(exc: Exception) -> str:
    text = str(exc)
    for reason in ("CERTIFICATE_VERIFY_FAILED", "WRONG_VERSION_NUMBER", "hostname mismatch"):
        if reason in text:
            return reason
    return type(exc).__name__
