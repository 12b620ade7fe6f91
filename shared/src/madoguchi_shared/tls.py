"""TLS off the box: a loopback certificate authority for `make cluster` and the tests, and the
client side of the bus (server verification, client certificates).

`generate(folder)` writes, once (kept between runs):

    ca.pem / ca.key            the authority (keys mode 0600)
    server.pem / server.key    every NATS node: client connections and cluster routes (both EKUs,
                               since a route dials the other nodes with this same certificate)
    <client>.pem / <client>.key  one per client name (a service, a desk laptop)

Real hosts use the operator's own CA instead (deploy/README.md); only the paths change.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LOOPBACK_NAMES = ("127.0.0.1", "localhost")
VALID_DAYS = 825


@dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path


@dataclass(frozen=True)
class Material:
    """Where `generate` put things."""

    ca: Path
    server: Pair
    clients: dict[str, Pair]


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    path.chmod(0o600)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Madoguchi"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _san(names: tuple[str, ...]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def _issue(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    common_name: str,
    names: tuple[str, ...],
    usages: Sequence[x509.ObjectIdentifier],
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_encipherment=False,
                content_commitment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    if names:
        builder = builder.add_extension(_san(names), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def generate(
    folder: Path, *, server_names: tuple[str, ...] = LOOPBACK_NAMES, clients: tuple[str, ...] = ()
) -> Material:
    """A CA, one server certificate and a certificate per client under `folder`; what exists is kept."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    ca_pem, ca_key_path = folder / "ca.pem", folder / "ca.key"
    if ca_pem.exists() and ca_key_path.exists():
        ca_cert = x509.load_pem_x509_certificate(ca_pem.read_bytes())
        ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
        if not isinstance(ca_key, ec.EllipticCurvePrivateKey):  # (what this module writes)
            raise ValueError(f"{ca_key_path}: not an EC private key")
    else:
        ca_key = _key()
        now = datetime.datetime.now(datetime.UTC)
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(_name("Madoguchi loopback CA"))
            .issuer_name(_name("Madoguchi loopback CA"))
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    key_encipherment=False,
                    content_commitment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        _write_key(ca_key_path, ca_key)
        ca_pem.write_bytes(_pem(ca_cert))

    def pair(stem: str, common_name: str, names: tuple[str, ...], usages: Sequence[x509.ObjectIdentifier]) -> Pair:
        out = Pair(folder / f"{stem}.pem", folder / f"{stem}.key")
        if not (out.cert.exists() and out.key.exists()):
            cert, key = _issue(ca_key, ca_cert, common_name, names, usages)
            _write_key(out.key, key)
            out.cert.write_bytes(_pem(cert))
        return out

    both = (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH)
    server = pair("server", "madoguchi-nats", server_names, both)
    issued = {name: pair(name, name, (), (ExtendedKeyUsageOID.CLIENT_AUTH,)) for name in clients}
    return Material(ca=ca_pem, server=server, clients=issued)


def client_context(ca: Path | None, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    """A client context that verifies the server against `ca` (the system's roots when None) and
    presents `cert`/`key` when given (required where the servers verify clients)."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca) if ca else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert is not None:
        context.load_cert_chain(str(cert), str(key) if key else None)
    return context


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """For uvicorn-like servers built in-process (HTTPS for the console and APIs)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert), str(key))
    return context


def nats_tls_block(ca: Path, server: Pair, *, verify_clients: bool, indent: str = "") -> str:
    """A nats-server `tls { }` block (client connections or, inside `cluster { }`, the routes)."""
    lines = [
        "tls {",
        f'  cert_file: "{server.cert}"',
        f'  key_file: "{server.key}"',
        f'  ca_file: "{ca}"',
        f"  verify: {'true' if verify_clients else 'false'}",
        "  timeout: 5",
        "}",
    ]
    return "\n".join(indent + line for line in lines)
