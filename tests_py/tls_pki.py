"""Throwaway certificates for the TLS tests, made with the openssl command
for each test session: a CA, server certificates for two names, and a
client certificate. No private key is committed.

The Windows run under Wine has no openssl command: make test-windows-python
makes them first (python tests_py/tls_pki.py DIR) and names DIR in
PYIOCP_TEST_PKI."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class PKI:
    ca: str  # the CA's certificate (PEM)
    server: str  # certificate and key for "pyiocp.test" (one PEM file each: .pem, .key)
    server_key: str
    other: str  # for "other.test"
    other_key: str
    client: str  # a client certificate, signed by the CA
    client_key: str


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def _signed(d: pathlib.Path, name: str, ca: pathlib.Path, ca_key: pathlib.Path, ext: str) -> None:
    key, csr, pem, extfile = (d / f"{name}.key", d / f"{name}.csr", d / f"{name}.pem", d / f"{name}.ext")
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key),
             "-out", str(csr), "-subj", f"/CN={name}")
    extfile.write_text(ext + "\nbasicConstraints=CA:FALSE\nauthorityKeyIdentifier=keyid\n"
                       "subjectKeyIdentifier=hash\n")
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
             "-out", str(pem), "-days", "2", "-extfile", str(extfile))


def make_pki(d: pathlib.Path) -> PKI:
    made = os.environ.get("PYIOCP_TEST_PKI")
    if made:
        return _files(pathlib.Path(made))
    ca, ca_key = d / "ca.pem", d / "ca.key"
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", str(ca_key), "-out", str(ca), "-days", "2", "-subj", "/CN=pyiocp test CA",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    _signed(d, "pyiocp.test", ca, ca_key, "subjectAltName=DNS:pyiocp.test\nextendedKeyUsage=serverAuth")
    _signed(d, "other.test", ca, ca_key, "subjectAltName=DNS:other.test\nextendedKeyUsage=serverAuth")
    _signed(d, "client", ca, ca_key, "extendedKeyUsage=clientAuth")
    return _files(d)


def _files(d: pathlib.Path) -> PKI:
    def p(name: str) -> str:
        return str(d / name)

    return PKI(ca=p("ca.pem"), server=p("pyiocp.test.pem"), server_key=p("pyiocp.test.key"),
               other=p("other.test.pem"), other_key=p("other.test.key"),
               client=p("client.pem"), client_key=p("client.key"))


if __name__ == "__main__":
    out = pathlib.Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    make_pki(out)
