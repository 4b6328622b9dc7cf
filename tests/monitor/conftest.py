"""Real receivers for the alert channels: a Slack webhook stand-in over HTTP, and aiosmtpd SMTP servers."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

#: What a Slack incoming webhook's path looks like; the last part is the secret.
SLACK_PATH = "/services/T0001/B0002/s3cr3tW3bh00kT0k3n"


class SlackReceiver:
    """Stands in for a Slack incoming webhook: checks and records payloads; answers queued faults first.

    Like Slack, it answers `200 ok`, `400 invalid_payload` (not JSON, or neither `text` nor `blocks`),
    `400 invalid_blocks` (a header over 150 characters, more than 10 fields in a section, more than 50
    blocks, a button whose URL is not http(s)) and `404 no_service` (an unknown webhook path).
    """

    def __init__(self) -> None:
        self.payloads: list[dict[str, Any]] = []
        self.requests = 0
        self._faults: list[tuple[int, dict[str, str], str]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{SLACK_PATH}"

    def fail(self, status: int, times: int = 1, body: str = "rollup_error", headers: dict[str, str] | None = None):
        """Answer the next `times` requests with `status` (and `body`, `headers`) instead of taking them."""
        with self._lock:
            self._faults += [(status, headers or {}, body)] * times

    def __enter__(self) -> SlackReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _answer(self, path: str, raw: bytes) -> tuple[int, dict[str, str], str]:
        with self._lock:
            self.requests += 1
            if self._faults:
                return self._faults.pop(0)
            if path != SLACK_PATH:
                return 404, {}, "no_service"
            try:
                payload = json.loads(raw)
            except ValueError:
                return 400, {}, "invalid_payload"
            if not isinstance(payload, dict) or not (payload.get("text") or payload.get("blocks")):
                return 400, {}, "invalid_payload"
            if _invalid_blocks(payload.get("blocks") or []):
                return 400, {}, "invalid_blocks"
            self.payloads.append(payload)
            return 200, {}, "ok"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, headers, body = receiver._answer(self.path, raw)
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        return Handler


def _invalid_blocks(blocks: list[dict[str, Any]]) -> bool:
    if len(blocks) > 50:
        return True
    for block in blocks:
        if block.get("type") == "header" and len(block["text"]["text"]) > 150:
            return True
        if block.get("type") == "section" and (
            len(block.get("fields", [])) > 10 or any(not f.get("text") for f in block.get("fields", []))
        ):
            return True
        if block.get("type") == "actions":
            for element in block["elements"]:
                if "url" in element and not element["url"].startswith(("http://", "https://")):
                    return True
    return False


@pytest.fixture
def slack() -> Iterator[SlackReceiver]:
    with SlackReceiver() as receiver:
        yield receiver


# -- SMTP -----------------------------------------------------------------------------------


@dataclass
class Inbox:
    """An aiosmtpd handler: keeps what it accepts; queued SMTP replies refuse the next messages first."""

    messages: list[Any] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)
    refuse_rcpt: dict[str, str] = field(default_factory=dict)
    logins: list[str] = field(default_factory=list)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 - aiosmtpd's name
        if address in self.refuse_rcpt:
            return self.refuse_rcpt[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        if self.replies:
            return self.replies.pop(0)
        self.messages.append(envelope)
        return "250 Message accepted for delivery"


@dataclass
class SmtpServer:
    host: str
    port: int
    inbox: Inbox
    #: What a client must trust to verify the server's certificate (TLS servers only).
    client_context: ssl.SSLContext | None = None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    """A plain SMTP relay on localhost (no TLS, no login), as `starttls: false` is for."""
    from aiosmtpd.controller import Controller

    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield SmtpServer("127.0.0.1", controller.port, inbox)
    finally:
        controller.stop()


USER, PASSWORD = "alerts@example.com", "correct horse battery staple"


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by its own key (PEM files: certificate, key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "llmci test SMTP")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@pytest.fixture
def tls_smtp(tmp_path: Path) -> Iterator[SmtpServer]:
    """A submission server: STARTTLS required, then AUTH (PLAIN/LOGIN) with USER and PASSWORD."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    inbox = Inbox()

    def authenticate(server, session, envelope, mechanism, auth_data) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
            USER.encode(),
            PASSWORD.encode(),
        )
        if ok:
            inbox.logins.append(auth_data.login.decode())
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 235 or 535 itself

    cert, key = self_signed(tmp_path)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=free_port(),
        tls_context=server_context,
        require_starttls=True,
        auth_require_tls=True,
        authenticator=authenticate,
    )
    controller.start()
    try:
        yield SmtpServer("127.0.0.1", controller.port, inbox, ssl.create_default_context(cafile=str(cert)))
    finally:
        controller.stop()


# -- GitHub ---------------------------------------------------------------------------------


@pytest.fixture
def github_api() -> Iterator[Any]:
    """The local GitHub REST server of tests/report, with an Actions token (`ghs_actions`) that may write issues."""
    from tests.report.github_server import GitHubServer, Token

    with GitHubServer(pulls=(7,)) as server:
        server.tokens["ghs_actions"] = Token(login=None)
        yield server


def github_client(server: Any, token: str = "ghs_actions") -> Any:
    from llmci.report.github import GitHub, GitHubRetryPolicy

    return GitHub(
        api_url=server.api_url,
        token=token,
        repository=server.repository,
        policy=GitHubRetryPolicy(retries=3, backoff_s=0.05, max_wait_s=5),
    )
