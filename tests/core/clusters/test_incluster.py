"""In-cluster configuration (a pod's service account) against the fake API server over HTTPS.

The library's loader reads KUBERNETES_SERVICE_HOST/PORT and the token and CA a pod gets mounted;
here the token and a CA of our own live in tmp_path and the fake serves a certificate that CA
signed, so the real client verifies TLS and sends the token exactly as in a pod.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from modeldeck.core.clusters import kubeclient
from modeldeck.core.clusters.backend import ClusterUnreachable, Release, Running, Target
from modeldeck.core.clusters.k8s import KubernetesBackend
from modeldeck.core.config import ClusterConfig
from modeldeck.core.errors import BackendUnavailable
from tests.utils.fake_k8s import FakeKubernetes

TOKEN = "service-account-token"  # noqa: S105 - a test credential for the fake
CLUSTER = ClusterConfig(name="here", backend="kubernetes", in_cluster=True, api_timeout_seconds=2)
TARGET = Target(cluster="here", namespace="ml", name="fraud", model="fraud", environment="prod")


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _certificate(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[str, ec.EllipticCurvePrivateKey]
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer[0])]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
    )
    if subject == issuer[0]:  # the CA
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
    else:  # the API server, reached by IP as KUBERNETES_SERVICE_HOST names it
        san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
        builder = builder.add_extension(san, False)
    return builder.sign(issuer[1], hashes.SHA256())


def _authority(directory: Path, name: str) -> tuple[Path, ssl.SSLContext]:
    """A CA (its certificate written to directory/ca.crt) and a server context it signed."""
    directory.mkdir()
    ca_key, server_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca = _certificate(name, ca_key, (name, ca_key))
    server = _certificate("kubernetes", server_key, (name, ca_key))
    (directory / "ca.crt").write_bytes(_pem(ca))
    key_pem = server_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    (directory / "server.pem").write_bytes(_pem(server) + key_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(directory / "server.pem")
    return directory / "ca.crt", context


@pytest.fixture
def account(tmp_path: Path) -> Path:
    """The folder a pod gets mounted at /var/run/secrets/kubernetes.io/serviceaccount."""
    folder = tmp_path / "serviceaccount"
    folder.mkdir()
    (folder / "token").write_text(TOKEN)
    return folder


@pytest.fixture
def https_fake(
    tmp_path: Path, account: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeKubernetes]:
    ca, context = _authority(tmp_path / "ca", "cluster-ca")
    (account / "ca.crt").write_bytes(ca.read_bytes())
    with FakeKubernetes(token=TOKEN, tls=context) as fake:
        fake.add_deployment("ml", "fraud", image="ghcr.io/acme/fraud:1.0.0", version="1.0.0")
        # What the kubelet sets in every pod.
        monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(fake.port))
        yield fake


def test_in_cluster_config_speaks_https_with_the_service_account(
    https_fake: FakeKubernetes, account: Path
) -> None:
    client = kubeclient.api_client(CLUSTER, service_account=account)
    assert client.configuration.host == f"https://127.0.0.1:{https_fake.port}"
    backend = KubernetesBackend(CLUSTER, api_client=client)
    assert backend.running(TARGET) == Running(
        version="1.0.0", image="ghcr.io/acme/fraud:1.0.0", ready=True
    )
    release = Release("fraud", "1.1.0", "ghcr.io/acme/fraud:1.1.0", "", deployment_id=7)
    backend.apply(TARGET, release)
    running = backend.running(TARGET)
    assert running is not None and (running.version, running.deployment_id) == ("1.1.0", 7)


def test_a_certificate_from_another_ca_is_refused(
    https_fake: FakeKubernetes, account: Path, tmp_path: Path
) -> None:
    other, _ = _authority(tmp_path / "other", "someone-else")
    (account / "ca.crt").write_bytes(other.read_bytes())
    backend = KubernetesBackend(
        CLUSTER, api_client=kubeclient.api_client(CLUSTER, service_account=account)
    )
    with pytest.raises(ClusterUnreachable, match="CERTIFICATE_VERIFY_FAILED"):
        backend.running(TARGET)
    assert https_fake.requests == []  # the token never left the client


def test_a_missing_service_account_or_service_env_is_a_clear_error(
    https_fake: FakeKubernetes, account: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (account / "token").unlink()
    with pytest.raises(BackendUnavailable, match="cluster here: cannot load in-cluster service"):
        kubeclient.api_client(CLUSTER, service_account=account)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST")
    with pytest.raises(BackendUnavailable, match="Service host/port is not set"):
        kubeclient.api_client(CLUSTER, service_account=account)
