"""TLS to a registry: its certificate checked against the CA stored on the record, held in
memory only (nothing written to disk), the system's CAs otherwise; an https registry answering
/v2/ with a certificate from a CA made for the test."""
import datetime
import http.server
import ipaddress
import os
import ssl
import sys
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from apps.registries.oci import OCIClient, Unreachable

_watching = threading.Event()
_writes: list[str] = []


def _audit(event, args):
    # Records every file opened for writing while a test watches (audit hooks cannot be removed).
    if _watching.is_set() and event == "open" and args[0] is not None:
        mode, flags = args[1] or "", args[2] or 0
        if any(c in str(mode) for c in "wax+") or flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            _writes.append(str(args[0]))


sys.addaudithook(_audit)


def make_ca(name: str):
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert


def pem(cert) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture(scope="module")
def tls_registry(tmp_path_factory):
    """An https server on loopback answering 200 on /v2/, its certificate signed by a test CA."""
    ca_key, ca = make_ca("registry test CA")
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(
                ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    folder = tmp_path_factory.mktemp("tls")  # the test server's own key, not the client's
    (folder / "cert.pem").write_text(pem(cert))
    (folder / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}", pem(ca)
    server.shutdown()
    server.server_close()


def test_the_stored_ca_is_trusted_from_memory(tls_registry):
    url, ca = tls_registry
    _writes.clear()
    _watching.set()
    try:
        with OCIClient(url, "u", "p", ca_pem=ca, timeout=5) as client:
            client.ping()
    finally:
        _watching.clear()
    assert _writes == []  # the CA reached TLS without a file


def test_without_the_ca_or_with_another_one_the_server_is_refused(tls_registry):
    url, _ = tls_registry
    _, other = make_ca("someone else")
    for ca in ("", pem(other)):
        with OCIClient(url, "u", "p", ca_pem=ca, timeout=5) as client:
            with pytest.raises(Unreachable, match="CERTIFICATE_VERIFY_FAILED"):
                client.ping()


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")  # asked for
def test_turning_verification_off_accepts_any_certificate(tls_registry):
    url, _ = tls_registry
    with OCIClient(url, "u", "p", verify=False, timeout=5) as client:
        client.ping()
