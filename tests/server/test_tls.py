"""One TLS context for everything: audit() (REST and websockets) honours PREFECT_API_SSL_CERT_FILE.

A real TLS loopback front (asyncio + ``ssl``, a certificate from a private CA made
here) relays to the session's real auth-protected Prefect server.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import ssl
import threading
from pathlib import Path
from typing import Any, Iterator

import pytest
from constants import AUTH_STRING

from prefect_nbauth.testing import free_port

pytestmark = pytest.mark.server


def _private_ca(directory: Path) -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate, server key) for 127.0.0.1, signed by a new CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "prefect-nbauth test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


class TlsFront:
    """TLS on 127.0.0.1:port, relaying the plain bytes to 127.0.0.1:upstream_port."""

    def __init__(self, upstream_port: int, cert: Path, key: Path) -> None:
        self.port = free_port()
        self.upstream_port = upstream_port
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert, key)
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "TlsFront":
        self._thread.start()
        assert self._ready.wait(30)
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(
            asyncio.start_server(self._relay, "127.0.0.1", self.port, ssl=self.context))
        self._ready.set()
        try:
            self.loop.run_forever()
        finally:
            server.close()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, ssl.SSLError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))


@pytest.fixture
def https_api(auth_server: Any, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    ca, cert, key = _private_ca(tmp_path)
    with TlsFront(auth_server.port, cert, key) as front:
        yield f"https://127.0.0.1:{front.port}/api", ca


AUDIT = """
import json
import prefect_nbauth as nb
try:
    report = nb.audit(timeout=30)
except nb.PrefectAuthError as exc:
    print(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
else:
    print(json.dumps({"outcomes": {f.check: f.outcome.value for f in report.findings},
                      "text": str(report)}))
"""


def test_audit_trusts_the_private_ca_named_by_prefect_api_ssl_cert_file(
        https_api: tuple[str, Path], run_scenario: Any) -> None:
    url, ca = https_api
    env = {"PREFECT_API_URL": url, "PREFECT_API_AUTH_STRING": AUTH_STRING}
    trusted = run_scenario(AUDIT, env={**env, "PREFECT_API_SSL_CERT_FILE": str(ca)})
    assert "error" not in trusted, trusted
    outcomes = trusted["outcomes"]
    assert outcomes["transport"] == "pass" and outcomes["tls-verification"] == "pass", trusted["text"]
    # The probes really went through: REST and the event sockets were judged, not skipped.
    assert [check for check, outcome in outcomes.items() if outcome == "error"] == [], trusted["text"]
    assert any(check.startswith("socket") or "events" in check for check in outcomes), outcomes

    untrusted = run_scenario(AUDIT, env=env)
    assert untrusted.get("error") == "ServerUnreachableError", untrusted
