"""Start and stop the local servers that tests, the drill and the benchmarks need.

Every server runs as its own process on 127.0.0.1, is waited for by polling its port against a deadline,
and is stopped by its PID. Nothing here is imported by product code.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TOOLS = REPO / "tools"

# Azurite's well-known development account (public, documented; not a secret).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen | None = None, timeout: float = 30.0) -> None:
    """Poll until something accepts on 127.0.0.1:port, or fail with the process's output."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listened on 127.0.0.1:{port} within {timeout}s")


@dataclass
class Server:
    name: str
    proc: subprocess.Popen
    ports: dict[str, int]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        """Stop the server and its children by PID (its own process group)."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""


def start_process(name: str, argv: list[str], ports: dict[str, int], workdir: Path,
                  env: dict[str, str] | None = None, timeout: float = 30.0, cwd: Path | None = None) -> Server:
    """Start a server process (in `cwd`, default the repository) and wait for its ports."""
    log_path = workdir / f"{name}.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        cwd=str(cwd or REPO), env={**os.environ, **(env or {})}, start_new_session=True,
    )
    server = Server(name, proc, ports, log_path)
    try:
        for port in ports.values():
            wait_for_port(port, proc, timeout)
    except Exception as exc:
        server.stop()
        raise RuntimeError(f"{name} did not start: {exc}\n{server.log()}") from exc
    return server


def start_python_server(name: str, module: str, args: list[str], port: int, workdir: Path,
                        env: dict[str, str] | None = None) -> Server:
    return start_process(name, [sys.executable, "-m", module, *args], {"http": port}, workdir, env)


# ---------------------------------------------------------------------------------------------- Azurite

@dataclass
class Azurite:
    server: Server

    @property
    def connection_string(self) -> str:
        p = self.server.ports
        return (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint=http://127.0.0.1:{p['blob']}/{AZURITE_ACCOUNT};"
            f"QueueEndpoint=http://127.0.0.1:{p['queue']}/{AZURITE_ACCOUNT};"
            f"TableEndpoint=http://127.0.0.1:{p['table']}/{AZURITE_ACCOUNT};"
        )

    def stop(self) -> None:
        self.server.stop()


def azurite_binary() -> str:
    local = TOOLS / "node_modules" / ".bin" / "azurite"
    if local.exists():
        return str(local)
    found = shutil.which("azurite")
    if not found:
        raise RuntimeError("Azurite is not installed: run scripts/bootstrap.sh")
    return found


def start_azurite(workdir: Path) -> Azurite:
    ports = {"blob": free_port(), "queue": free_port(), "table": free_port()}
    data = workdir / "azurite"
    data.mkdir(parents=True, exist_ok=True)
    argv = [
        azurite_binary(), "--silent", "--disableTelemetry", "--skipApiVersionCheck", "--loose",
        "--location", str(data),
        "--blobHost", "127.0.0.1", "--blobPort", str(ports["blob"]),
        "--queueHost", "127.0.0.1", "--queuePort", str(ports["queue"]),
        "--tableHost", "127.0.0.1", "--tablePort", str(ports["table"]),
    ]
    return Azurite(start_process("azurite", argv, ports, workdir, timeout=60))


# ---------------------------------------------------------------------------------------------- TLS

@dataclass
class TestCA:
    """A throwaway certificate authority and a server certificate for 127.0.0.1 / localhost.

    Stand-ins for Azure endpoints serve HTTPS with this certificate, because the Azure SDKs refuse to send
    bearer tokens over plain HTTP; clients trust it through REQUESTS_CA_BUNDLE / SSL_CERT_FILE.
    """
    ca_path: Path
    cert_path: Path
    key_path: Path
    env: dict[str, str] = field(default_factory=dict)


def make_test_ca(workdir: Path) -> TestCA:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Healer test CA")])
    ca_cert = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    workdir.mkdir(parents=True, exist_ok=True)
    ca_path, cert_path, key_path = workdir / "ca.pem", workdir / "server.pem", workdir / "server.key"
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    env = {"REQUESTS_CA_BUNDLE": str(ca_path), "SSL_CERT_FILE": str(ca_path)}
    return TestCA(ca_path, cert_path, key_path, env)


def scratch_dir(prefix: str = "healer-") -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))
