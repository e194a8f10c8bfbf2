"""Certificate authority operations with the `cryptography` library (no file I/O).

Keys are ECDSA P-256. Client certificates follow Kubernetes' x509 convention: the subject's
CommonName is the user name and each Organization is a group. The serving certificate carries
the DNS names and IP addresses clients use as subjectAltNames.
"""
from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_VALIDITY = datetime.timedelta(days=3650)
LEAF_VALIDITY = datetime.timedelta(days=365)
CLOCK_SKEW = datetime.timedelta(minutes=5)  # backdate so a slightly slow peer clock accepts it


class PKIError(ValueError):
    """A certificate or key cannot be loaded or does not fit (one-line message)."""


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its private key, both PEM."""
    cert_pem: bytes
    key_pem: bytes

    @property
    def cert(self) -> x509.Certificate:
        return load_cert(self.cert_pem)


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def load_key(pem: bytes) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise PKIError(f"private key cannot be loaded: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PKIError("private key is not an ECDSA key")
    return key


def load_cert(pem: bytes) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise PKIError(f"certificate cannot be loaded: {exc}") from None


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def create_ca(common_name: str = "kproxy-ca", *, not_before: datetime.datetime | None = None,
              validity: datetime.timedelta = CA_VALIDITY) -> KeyPair:
    """A self-signed CA certificate (pathlen 0) and its key."""
    key = new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    start = (not_before or _now()) - CLOCK_SKEW
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + validity)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return KeyPair(cert.public_bytes(serialization.Encoding.PEM), key_pem(key))


def _issue(ca: KeyPair, subject: x509.Name, usage: x509.ObjectIdentifier,
           sans: list[x509.GeneralName], not_before: datetime.datetime | None,
           validity: datetime.timedelta) -> KeyPair:
    ca_cert, ca_key = ca.cert, load_key(ca.key_pem)
    key = new_key()
    start = (not_before or _now()) - CLOCK_SKEW
    builder = (x509.CertificateBuilder()
               .subject_name(subject).issuer_name(ca_cert.subject)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(start).not_valid_after(start + validity)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False, key_cert_sign=False,
                                            crl_sign=False, content_commitment=False, data_encipherment=False,
                                            key_agreement=False, encipher_only=False, decipher_only=False),
                              critical=True)
               .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                              critical=False))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return KeyPair(cert.public_bytes(serialization.Encoding.PEM), key_pem(key))


def issue_client(ca: KeyPair, user: str, groups: tuple[str, ...] = (), *,
                 not_before: datetime.datetime | None = None,
                 validity: datetime.timedelta = LEAF_VALIDITY) -> KeyPair:
    """A client certificate for `user` (CN) in `groups` (one O each)."""
    if not user:
        raise PKIError("a client certificate needs a user name")
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in groups]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, user))
    return _issue(ca, x509.Name(attrs), ExtendedKeyUsageOID.CLIENT_AUTH, [], not_before, validity)


def issue_serving(ca: KeyPair, hosts: list[str], *, not_before: datetime.datetime | None = None,
                  validity: datetime.timedelta = LEAF_VALIDITY, common_name: str = "kube-apiserver") -> KeyPair:
    """A serving certificate valid for every IP address and DNS name in `hosts`."""
    sans: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    return _issue(ca, subject, ExtendedKeyUsageOID.SERVER_AUTH, sans, not_before, validity)


def serving_hosts(cert: x509.Certificate) -> set[str]:
    """The IP addresses and DNS names a serving certificate covers."""
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return {str(ip) for ip in ext.get_values_for_type(x509.IPAddress)} | set(ext.get_values_for_type(x509.DNSName))


def is_current(cert: x509.Certificate, margin: datetime.timedelta = datetime.timedelta(days=1)) -> bool:
    """True while the certificate is valid now and for at least `margin` more."""
    now = _now()
    return cert.not_valid_before_utc <= now and cert.not_valid_after_utc - margin > now


def signed_by(cert: x509.Certificate, ca_cert: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca_cert)
        return True
    except (ValueError, TypeError, Exception):  # InvalidSignature is not a ValueError
        return False
