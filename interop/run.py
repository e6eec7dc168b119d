#!/usr/bin/env python3
"""Interop matrix: tokengate's CLI against real JOSE libraries (the peers in peers/).

Standard library only. Run through `interop/run`, which installs the pinned peers and builds
tokengate; or directly with the venv's python once they are installed:

    interop/.venv/bin/python interop/run.py [--spawn] [--list] [--peer NAME]... [--alg ALG]...

The tokengate binary is $TOKENGATE_BIN (default: target/debug/tokengate under the repo root).
Every row of the table is a real check; a case a peer cannot run (its library lacks the
algorithm or the operation) is left out of the matrix and named in a note, never counted.
Exit status: 0 all passed, 1 a check failed, 2 the harness itself could not start.

How the matrix is built: `case_templates` lists what is checked against each peer (a Case per
row and column of the table); KINDS says, per kind of token, how each side produces and
consumes one, how the result is checked and how to tamper with it. JWE is added by a "jwe" and
a "nested" entry in KINDS and templates using them (interop/README.md walks through it).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import selectors
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OP_TIMEOUT = 120  # seconds for any single operation (RSA key generation included)

ISS = "https://issuer.example"
AUD = "https://api.example"

# Every JWS algorithm tokengate implements; the universe the peers are matched against.
JWS_ALGS = ["HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
            "ES256", "ES384", "ES512", "EdDSA"]
SYMMETRIC = {"HS256", "HS384", "HS512"}

# PEM forms: name -> (holds the private key?, label, first line). tokengate exports PKCS#8 and
# SPKI and imports all of them; what a peer writes is its caps "pem" list.
PEM_FORMATS = {
    "pkcs8": (True, "PKCS#8", "-----BEGIN PRIVATE KEY-----"),
    "spki": (False, "SPKI", "-----BEGIN PUBLIC KEY-----"),
    "pkcs1": (True, "PKCS#1", "-----BEGIN RSA PRIVATE KEY-----"),
    "pkcs1-public": (False, "PKCS#1", "-----BEGIN RSA PUBLIC KEY-----"),
    "sec1": (True, "SEC1", "-----BEGIN EC PRIVATE KEY-----"),
}

# Members that carry key material (compared when a key crosses a format boundary); "alg",
# "kid", "use", "key_ops", "ext" are metadata each library fills in its own way.
KEY_MEMBERS = ("kty", "crv", "x", "y", "n", "e", "d", "p", "q", "dp", "dq", "qi", "k")

TG = "tokengate"


# --------------------------------------------------------------------------------------------
# Processes


@dataclass
class Proc:
    status: int
    stdout: bytes
    stderr: str

    def text(self) -> str:
        return self.stdout.decode("utf-8", "replace").strip()

    def brief(self) -> str:
        err = " ".join(self.stderr.split())
        return f"exit {self.status}" + (f": {err[:300]}" if err else "")


class Failure(Exception):
    """A check (or something it needed) failed; the message says what and why."""


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Tokengate:
    """The CLI under test. Inputs go through files, as a user would pass them."""

    name = TG

    def __init__(self, binary: Path):
        self.binary = binary

    def run(self, args: list[str], stdin: bytes = b"") -> Proc:
        try:
            p = subprocess.run([str(self.binary), *args], input=stdin, capture_output=True,
                               timeout=OP_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            return Proc(-1, b"", f"timed out after {OP_TIMEOUT}s")
        return Proc(p.returncode, p.stdout, p.stderr.decode("utf-8", "replace"))

    def op(self, what: str, args: list[str], stdin: bytes = b"") -> Proc:
        p = self.run(args, stdin)
        if p.status != 0:
            raise Failure(f"tokengate {what} failed ({p.brief()}): tokengate {' '.join(args)}")
        return p


class Peer:
    """A peer script. In serve mode one long-lived process answers every request (same
    dispatcher as the CLI, without a process start per operation); --spawn runs each
    operation as `<command> <op> <args...>` with the input on stdin."""

    def __init__(self, name: str, command: list[str], spawn: bool):
        self.name = name
        self.command = command
        self.spawn = spawn
        self.proc: subprocess.Popen | None = None
        self.caps: dict = {}

    def start(self) -> None:
        if self.spawn:
            return
        self.proc = subprocess.Popen([*self.command, "serve"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     cwd=ROOT)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def run(self, argv: list[str], stdin: bytes = b"") -> Proc:
        if self.spawn:
            try:
                p = subprocess.run([*self.command, *argv], input=stdin, capture_output=True,
                                   timeout=OP_TIMEOUT, check=False, cwd=ROOT)
            except subprocess.TimeoutExpired:
                return Proc(-1, b"", f"timed out after {OP_TIMEOUT}s")
            return Proc(p.returncode, p.stdout, p.stderr.decode("utf-8", "replace"))
        if self.proc is None or self.proc.poll() is not None:
            self.stop()
            self.start()
        assert self.proc is not None
        request = json.dumps({"argv": argv, "stdin": base64.b64encode(stdin).decode()})
        self.proc.stdin.write(request.encode() + b"\n")
        self.proc.stdin.flush()
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            if not sel.select(OP_TIMEOUT):
                self.proc.kill()
                self.stop()
                return Proc(-1, b"", f"timed out after {OP_TIMEOUT}s")
        line = self.proc.stdout.readline()
        if not line:
            self.stop()
            return Proc(-1, b"", "the peer process died")
        reply = json.loads(line)
        return Proc(reply["status"], base64.b64decode(reply["stdout"]), reply["stderr"])

    def op(self, what: str, argv: list[str], stdin: bytes = b"") -> Proc:
        p = self.run(argv, stdin)
        if p.status != 0:
            raise Failure(f"{self.name} {what} failed ({p.brief()}): {self.name} {' '.join(argv)}")
        return p


# --------------------------------------------------------------------------------------------
# Kinds of token: how each side produces and consumes one, and how to tamper with it.
#
# tokengate argv builders get (case, key file, input file); peer argv builders get (case, key
# file) and the input on stdin. Both print the token (produce) or the payload (consume).


def flip_segment(index: int) -> Callable[[str], str]:
    """Flips one bit in the middle of a compact token's segment `index` (decoded, so the
    result is still canonical base64url and only the cryptography can notice)."""

    def tamper(token: str) -> str:
        parts = token.split(".")
        raw = bytearray(unb64u(parts[index]))
        if not raw:
            raise Failure(f"segment {index} is empty")
        raw[len(raw) // 2] ^= 0x01
        parts[index] = b64u(bytes(raw))
        return ".".join(parts)

    return tamper


def replace_claims(token: str) -> str:
    """Swaps the JWT's claims for a forged set (valid JSON), keeping header and signature."""
    parts = token.split(".")
    claims = json.loads(unb64u(parts[1]))
    claims["sub"] = "mallory"
    parts[1] = b64u(json.dumps(claims, separators=(",", ":")).encode())
    return ".".join(parts)


@dataclass(frozen=True)
class Kind:
    label: str
    segments: int  # of the compact serialization: 3 for JWS, 5 for JWE
    tg_produce: Callable[..., list[str]]
    tg_consume: Callable[..., list[str]]
    peer_produce: Callable[..., list[str]]
    peer_consume: Callable[..., list[str]]
    make_payload: Callable[["Case"], bytes]
    check: Callable[["Case", bytes, str, Proc], None]
    tamperers: dict[str, Callable[[str], str]]
    # Whether a peer (by its `caps` answer) supports the case's algorithm(s) for this kind.
    supported: Callable[[dict, "Case"], bool]


def jwt_payload(case: "Case") -> bytes:
    now = int(time.time())
    return json.dumps({
        "iss": ISS, "aud": AUD, "sub": "interop", "iat": now, "exp": now + 600,
        "jti": secrets.token_hex(8), "scope": "read write", "name": "Zoë ✓ \"q\"",
        "case": case.key(), "n": [1, 2.5, True, None],
    }, ensure_ascii=False).encode()


def check_jwt(case: "Case", payload: bytes, token: str, out: Proc) -> None:
    sent = json.loads(payload)
    header = json.loads(unb64u(token.split(".")[0]))
    if header.get("alg") != case.alg:
        raise Failure(f"token header alg is {header.get('alg')!r}, expected {case.alg}")
    in_token = json.loads(unb64u(token.split(".")[1]))
    for name, value in sent.items():
        if name == "iat" and case.producer == TG:
            continue  # tokengate's `jwt sign` stamps iat itself
        if in_token.get(name) != value:
            raise Failure(f"claim {name!r} is {in_token.get(name)!r} in the token, sent {value!r}")
    try:
        got = json.loads(out.stdout)
    except ValueError as e:
        raise Failure(f"consumer printed no JSON claims: {out.text()[:200]!r}") from e
    if got != in_token:
        raise Failure(f"consumer returned claims {got!r}, token holds {in_token!r}")


def jws_payload(case: "Case") -> bytes:
    # Arbitrary bytes (not UTF-8, not JSON) that must come back exactly.
    return b"interop \x00\xff\xfe payload " + secrets.token_bytes(16)


def check_jws(case: "Case", payload: bytes, token: str, out: Proc) -> None:
    parts = token.split(".")
    header = json.loads(unb64u(parts[0]))
    if header.get("alg") != case.alg:
        raise Failure(f"token header alg is {header.get('alg')!r}, expected {case.alg}")
    if unb64u(parts[1]) != payload:
        raise Failure("the token does not carry the payload that was signed")
    if out.stdout != payload:
        raise Failure(f"consumer returned {out.stdout[:80]!r}, expected {payload[:80]!r}")


KINDS: dict[str, Kind] = {
    "jwt": Kind(
        label="JWT",
        segments=3,
        tg_produce=lambda c, key, inp: ["jwt", "sign", "--key", key, "--alg", c.alg,
                                        "--claims", inp],
        tg_consume=lambda c, key, inp: ["jwt", "verify", "--key", key, "--alg", c.alg,
                                        "--iss", ISS, "--aud", AUD, inp],
        peer_produce=lambda c, key: ["sign", c.alg, key],
        peer_consume=lambda c, key: ["verify", c.alg, key, ISS, AUD],
        make_payload=jwt_payload,
        check=check_jwt,
        tamperers={"signature": flip_segment(2), "claims": replace_claims},
        supported=lambda caps, c: c.alg in caps.get("jws", []),
    ),
    "jws": Kind(
        label="JWS (binary payload)",
        segments=3,
        tg_produce=lambda c, key, inp: ["jws", "sign", "--key", key, "--alg", c.alg, inp],
        tg_consume=lambda c, key, inp: ["jws", "verify", "--key", key, "--alg", c.alg, inp],
        peer_produce=lambda c, key: ["jws-sign", c.alg, key],
        peer_consume=lambda c, key: ["jws-verify", c.alg, key],
        make_payload=jws_payload,
        check=check_jws,
        tamperers={"signature": flip_segment(2), "payload": flip_segment(1)},
        supported=lambda caps, c: c.alg in caps.get("jws", []),
    ),
    # JWE goes here: "jwe" (tokengate `jwe encrypt|decrypt`, peers `encrypt ALG ENC KEYFILE` /
    # `decrypt KEYFILE`, 5-segment tokens, tamperers on the ciphertext and tag segments,
    # supported: [alg, enc] in caps["jwe"]) and "nested" (tokengate `jwt sign --encrypt-key
    # ... --encrypt-alg ... --enc ...` / `jwt verify --decrypt-key ...`).
}


# --------------------------------------------------------------------------------------------
# Cases


@dataclass(frozen=True)
class Case:
    """One check. `check` is "token" (produce, maybe tamper, consume), "thumbprint" or
    "pem-import". `key_by`/`producer` are TG or "peer"; for pem-import, `producer` is the side
    whose PEM the other side imports."""

    peer: str
    family: str       # table section: "JWS", "JWK" (later "JWE", "nested")
    title: str        # row label, without the peer and direction
    column: str       # column label (the JWS algorithm; later the enc)
    check: str
    alg: str
    key_by: str = TG
    key_form: str = "jwk"
    producer: str = TG
    kind: str = "jwt"
    enc: str | None = None   # JWE content encryption (unused by JWS cases)
    crv: str | None = None   # curve for keys whose alg does not imply one (ECDH-ES)
    tamper: str | None = None
    pem_format: str = "pkcs8"   # for pem-import: the PEM_FORMATS entry exported
    requires: tuple[str, ...] = ()   # peer caps the case needs, besides the algorithm

    def consumer(self) -> str:
        return "peer" if self.producer == TG else TG

    def side(self, role: str) -> str:
        return self.peer if role == "peer" else TG

    def direction(self) -> str:
        if self.check == "thumbprint":
            return f"{TG} = {self.peer}"
        return f"{self.side(self.producer)} -> {self.side(self.consumer())}"

    def key(self) -> str:
        return "/".join(str(x) for x in (self.peer, self.check, self.kind, self.alg, self.enc,
                                         self.crv, self.key_by, self.key_form, self.producer,
                                         self.tamper, self.pem_format))


def whose(side: str) -> str:
    return "tokengate's" if side == TG else "peer's"


def case_templates(peer: str, algs: list[str]) -> list[Case]:
    """Everything checked against one peer, in table order (a row per template, a column per
    algorithm)."""
    out: list[Case] = []

    def add(only: Callable[[str], bool], **kw) -> None:
        out.extend(Case(peer=peer, column=alg, alg=alg, **kw) for alg in algs if only(alg))

    def every(alg: str) -> bool:
        return True

    def asymmetric(alg: str) -> bool:
        return alg not in SYMMETRIC

    def rsa(alg: str) -> bool:
        return alg[:2] in ("RS", "PS")

    def ec(alg: str) -> bool:
        return alg[:2] == "ES"

    # A JWT signed by one side and verified by the other, with a key made by either side and
    # handed over as JWK or as PEM (HMAC keys have no PEM form).
    for form in ("jwk", "pem"):
        for key_by in (TG, "peer"):
            for producer in (key_by, "peer" if key_by == TG else TG):
                needs = (("genkey",) if key_by == "peer" else ()) + (
                    ("pem:pkcs8", "pem:spki") if form == "pem" else ())
                add(every if form == "jwk" else asymmetric, family="JWS", check="token",
                    kind="jwt", key_by=key_by, key_form=form, producer=producer, requires=needs,
                    title=f"JWT, {whose(key_by)} key as {form.upper()}")
    for producer in (TG, "peer"):
        add(every, family="JWS", check="token", kind="jws", producer=producer,
            title="JWS binary payload, tokengate's key")
    # Tokens signed by one side with its own key, tampered with, refused by the other.
    for kind in ("jwt", "jws"):
        for producer in (TG, "peer"):
            needs = ("genkey",) if producer == "peer" else ()
            for tamper in KINDS[kind].tamperers:
                add(every, family="JWS", check="token", kind=kind, key_by=producer,
                    producer=producer, tamper=tamper, requires=needs,
                    title=f"{kind.upper()} with tampered {tamper} rejected")
    for key_by in (TG, "peer"):
        needs = ("thumbprint",) + (("genkey",) if key_by == "peer" else ())
        add(every, family="JWK", check="thumbprint", key_by=key_by, requires=needs,
            title=f"RFC 7638 thumbprint of {whose(key_by)} key")
    # One side exports PEM, the other imports it: the same key material must come out.
    # tokengate writes PKCS#8 and SPKI; it also reads the peers' PKCS#1 and SEC1.
    for exporter, fmt, only in ((TG, "pkcs8", asymmetric), (TG, "spki", asymmetric),
                                ("peer", "pkcs8", asymmetric), ("peer", "spki", asymmetric),
                                ("peer", "pkcs1", rsa), ("peer", "pkcs1-public", rsa),
                                ("peer", "sec1", ec)):
        private, label, _ = PEM_FORMATS[fmt]
        needs = (f"pem:{fmt}",) + (("genkey",) if exporter == "peer" else ())
        add(only, family="JWK", check="pem-import", key_by=exporter, producer=exporter,
            pem_format=fmt, requires=needs,
            title=f"{'private' if private else 'public'} PEM ({label}) imported, same key")
    return out


# --------------------------------------------------------------------------------------------
# Running cases


@dataclass
class KeyFiles:
    private: str
    public: str          # the private file itself for symmetric keys
    private_jwk: dict
    public_jwk: dict


@dataclass
class Result:
    case: Case
    ok: bool
    detail: str = ""
    seconds: float = 0.0


class Runner:
    def __init__(self, tokengate: Tokengate, peers: dict[str, Peer], work: Path):
        self.tg = tokengate
        self.peers = peers
        self.work = work
        self.memo: dict[tuple, object] = {}
        self.counter = 0

    # Fixtures are computed once and shared; a failed fixture fails every case using it.
    def fixture(self, key: tuple, make: Callable[[], object]):
        if key not in self.memo:
            try:
                self.memo[key] = make()
            except Failure as e:
                self.memo[key] = e
        value = self.memo[key]
        if isinstance(value, Failure):
            raise Failure(str(value))
        return value

    def write(self, name: str, data: bytes | str) -> str:
        self.counter += 1
        path = self.work / f"{self.counter:04d}-{name}"
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        return str(path)

    @staticmethod
    def parse_jwk(p: Proc, who: str) -> dict:
        try:
            jwk = json.loads(p.stdout)
        except ValueError as e:
            raise Failure(f"{who} printed no JWK: {p.text()[:200]!r}") from e
        if not isinstance(jwk, dict):
            raise Failure(f"{who} printed {p.text()[:200]!r}, not a JWK object")
        return jwk

    def keys(self, maker: str, alg: str, crv: str | None = None) -> KeyFiles:
        """The key `maker` (TG or a peer name) generates for `alg` (on curve `crv` if given),
        and its public half as the maker derives it."""

        def make() -> KeyFiles:
            if maker == TG:
                argv = ["jwk", "generate", "--alg", alg] + (["--crv", crv] if crv else [])
                priv = self.parse_jwk(self.tg.op("jwk generate", argv), TG)
            else:
                argv = ["genkey", alg] + ([crv] if crv else [])
                priv = self.parse_jwk(self.peers[maker].op("genkey", argv), maker)
            tag = f"{maker}-{alg}" + (f"-{crv}" if crv else "")
            priv_file = self.write(f"{tag}.private.jwk", json.dumps(priv))
            if alg in SYMMETRIC:
                return KeyFiles(priv_file, priv_file, priv, priv)
            if maker == TG:
                pub = self.parse_jwk(self.tg.op("jwk public", ["jwk", "public", priv_file]), TG)
            else:
                pub = self.parse_jwk(self.peers[maker].op("public", ["public", alg, priv_file]),
                                     maker)
            if "d" in pub:
                raise Failure(f"{maker}'s public key still has private members")
            return KeyFiles(priv_file, self.write(f"{tag}.public.jwk", json.dumps(pub)), priv, pub)

        return self.fixture(("key", maker, alg, crv), make)

    def pem(self, maker: str, alg: str, fmt: str, crv: str | None = None) -> str:
        """The maker's key for `alg`, exported by the maker as PEM in `fmt` (a PEM_FORMATS
        name); returns the PEM file."""

        def make() -> str:
            k = self.keys(maker, alg, crv)
            private, label, first_line = PEM_FORMATS[fmt]
            if maker == TG:
                if fmt not in ("pkcs8", "spki"):
                    raise Failure(f"tokengate does not export {label}")
                p = self.tg.op("jwk export", ["jwk", "export", k.private if private else k.public])
            else:
                p = self.peers[maker].op("topem", ["topem", alg, k.private, fmt])
            text = p.stdout.decode()
            if not text.startswith(first_line):
                raise Failure(f"{maker} exported {text[:40]!r}, expected {first_line}")
            return self.write(f"{maker}-{alg}.{fmt}.pem", text)

        return self.fixture(("pem", maker, alg, crv, fmt), make)

    def key_file(self, case: Case, role: str, use: str) -> str:
        """The key file the side in `role` ("tg"/"peer" as TG/"peer") uses to `use` ("sign"
        or "verify") in `case`: the maker uses its own JWK; the other side imports the key
        in `case.key_form` (the JWK as given, or the maker's PEM export)."""
        maker_name = case.side(case.key_by)
        k = self.keys(maker_name, case.alg, case.crv)
        if role == case.key_by or case.key_form == "jwk":
            return k.private if use == "sign" else k.public
        return self.pem(maker_name, case.alg, "pkcs8" if use == "sign" else "spki", case.crv)

    def produce(self, case: Case) -> tuple[bytes, str]:
        """The token of the untampered case (memoized, so tampered variants reuse it)."""
        base = Case(**{**case.__dict__, "tamper": None, "title": "", "requires": ()})

        def make() -> tuple[bytes, str]:
            kind = KINDS[case.kind]
            payload = kind.make_payload(base)
            key = self.key_file(base, base.producer, "sign")
            if base.producer == TG:
                argv = kind.tg_produce(base, key, self.write("payload", payload))
                p = self.tg.op(f"{kind.label} produce", argv)
            else:
                p = self.peers[case.peer].op(f"{kind.label} produce", kind.peer_produce(base, key),
                                             payload)
            token = p.text()
            if token.count(".") != kind.segments - 1:
                raise Failure(f"not a compact {kind.label}: {token[:120]!r}")
            return payload, token

        return self.fixture(("token", base.key()), make)

    def consume(self, case: Case, token: str) -> tuple[Proc, str]:
        """Runs the consumer; returns its result and the command, for the failure report."""
        kind = KINDS[case.kind]
        key = self.key_file(case, case.consumer(), "verify")
        if case.consumer() == TG:
            argv = kind.tg_consume(case, key, self.write("token", token))
            return self.tg.run(argv), "tokengate " + " ".join(argv)
        argv = kind.peer_consume(case, key)
        return (self.peers[case.peer].run(argv, token.encode()),
                f"{case.peer} {' '.join(argv)} < token")

    def run_token(self, case: Case) -> str:
        payload, token = self.produce(case)
        consumer = case.side(case.consumer())
        if case.tamper is None:
            out, cmd = self.consume(case, token)
            if out.status != 0:
                raise Failure(f"{consumer} refused it ({out.brief()})\n       command: {cmd}"
                              f"\n       token: {token}")
            try:
                KINDS[case.kind].check(case, payload, token, out)
            except Failure as e:
                raise Failure(f"{e}\n       command: {cmd}\n       token: {token}") from e
            return ""
        forged = KINDS[case.kind].tamperers[case.tamper](token)
        out, cmd = self.consume(case, forged)
        if out.status == 0:
            raise Failure(f"{consumer} ACCEPTED the tampered token\n       command: {cmd}"
                          f"\n       token: {forged}")
        if out.status != 1:
            raise Failure(f"{consumer} failed instead of rejecting ({out.brief()})"
                          f"\n       command: {cmd}\n       token: {forged}")
        return out.brief()

    def run_pem_import(self, case: Case) -> str:
        exporter = case.side(case.producer)
        k = self.keys(exporter, case.alg, case.crv)
        pem_file = self.pem(exporter, case.alg, case.pem_format, case.crv)
        if case.producer == TG:
            got = self.parse_jwk(self.peers[case.peer].op("frompem", ["frompem", case.alg,
                                                                      pem_file]), case.peer)
        else:
            got = self.parse_jwk(self.tg.op("jwk import", ["jwk", "import", "--alg", case.alg,
                                                           pem_file]), TG)
            if got.get("alg") != case.alg:
                raise Failure(f"imported JWK has alg {got.get('alg')!r}, expected {case.alg}")
        want = k.private_jwk if PEM_FORMATS[case.pem_format][0] else k.public_jwk
        a = {m: want[m] for m in KEY_MEMBERS if m in want}
        b = {m: got[m] for m in KEY_MEMBERS if m in got}
        if a != b:
            diff = sorted(m for m in set(a) | set(b) if a.get(m) != b.get(m))
            raise Failure(f"imported key differs in {diff}: exported {json.dumps(a)}, "
                          f"imported {json.dumps(b)}")
        return ""

    def run_thumbprint(self, case: Case) -> str:
        maker = case.side(case.key_by)
        k = self.keys(maker, case.alg, case.crv)
        # The maker hashes its private JWK; the other side the public JWK it was handed.
        tg_file = k.private if case.key_by == TG else k.public
        peer_file = k.public if case.key_by == TG else k.private
        mine = self.tg.op("jwk thumbprint", ["jwk", "thumbprint", tg_file]).text()
        theirs = self.peers[case.peer].op("thumbprint", ["thumbprint", peer_file]).text()
        if mine != theirs or not mine:
            raise Failure(f"tokengate says {mine!r}, {case.peer} says {theirs!r}")
        return mine

    def run(self, case: Case) -> Result:
        start = time.monotonic()
        try:
            fn = {"token": self.run_token, "pem-import": self.run_pem_import,
                  "thumbprint": self.run_thumbprint}[case.check]
            detail = fn(case)
            return Result(case, True, detail, time.monotonic() - start)
        except Failure as e:
            return Result(case, False, str(e), time.monotonic() - start)


# --------------------------------------------------------------------------------------------
# Peers and exclusions

VENV_PYTHON = HERE / ".venv" / "bin" / "python"
PYTHON = str(VENV_PYTHON) if VENV_PYTHON.exists() else sys.executable
PEER_COMMANDS = {
    "jose": ["node", str(HERE / "peers" / "jose.mjs")],
    "jwcrypto": [PYTHON, str(HERE / "peers" / "jwcrypto_peer.py")],
    "PyJWT": [PYTHON, str(HERE / "peers" / "pyjwt_peer.py")],
}


def excluded_reason(case: Case, caps: dict) -> str | None:
    """Why the peer cannot run `case` (its library lacks something), or None."""
    notes = caps.get("notes", {})
    if not KINDS[case.kind].supported(caps, case):
        what = " ".join(x for x in (case.alg, case.enc, case.crv) if x)
        return notes.get(what, f"{caps.get('library')} does not support {what}")
    for need in case.requires:
        # "op" needs caps[op] true (or, for a list, to hold the algorithm); "op:item" needs
        # caps[op] to list item (e.g. "pem:sec1").
        name, _, item = need.partition(":")
        have = caps.get(name)
        if item:
            ok = item in (have or [])
        else:
            ok = case.alg in have if isinstance(have, list) else bool(have)
        if not ok:
            return notes.get(need, f"{caps.get('library')} lacks {need}")
    return None


@dataclass
class Plan:
    cases: list[Case] = field(default_factory=list)
    excluded: dict[tuple[str, str], list[Case]] = field(default_factory=dict)


def plan(peers: dict[str, Peer], algs: list[str]) -> Plan:
    p = Plan()
    for name, peer in peers.items():
        for case in case_templates(name, algs):
            reason = excluded_reason(case, peer.caps)
            if reason is None:
                p.cases.append(case)
            else:
                p.excluded.setdefault((name, reason), []).append(case)
    return p


# --------------------------------------------------------------------------------------------
# Output


def print_matrix(results: list[Result]) -> None:
    """One table per family: rows peer x case x direction, a column per algorithm."""
    families: dict[str, list[Result]] = {}
    for r in results:
        families.setdefault(r.case.family, []).append(r)
    for family, rs in families.items():
        columns: list[str] = []
        rows: dict[tuple[str, str, str], dict[str, str]] = {}
        for r in rs:
            if r.case.column not in columns:
                columns.append(r.case.column)
            row = rows.setdefault((r.case.peer, r.case.title, r.case.direction()), {})
            row[r.case.column] = "ok" if r.ok else "FAIL"
        widths = [max(len(k[i]) for k in rows) for i in range(3)]
        widths = [max(w, len(h)) for w, h in zip(widths, ("peer", "case", "direction"))]
        cw = [max(len(c), 4) for c in columns]
        head = ["peer", "case", "direction"]
        print(f"\n{family}")
        print("  ".join(h.ljust(w) for h, w in zip(head, widths)) + "  result  "
              + " ".join(c.ljust(w) for c, w in zip(columns, cw)))
        print("-" * (sum(widths) + 6 + 8 + sum(cw) + len(cw)))
        for k, cells in rows.items():
            verdict = "FAIL" if "FAIL" in cells.values() else "pass"
            print("  ".join(x.ljust(w) for x, w in zip(k, widths)) + f"  {verdict.ljust(6)}  "
                  + " ".join(cells.get(c, "-").ljust(w) for c, w in zip(columns, cw)))


def print_list(results: list[Result]) -> None:
    for r in results:
        c = r.case
        print(f"{'pass' if r.ok else 'FAIL'}  {c.peer:<9} {c.column:<6} {c.title:<44} "
              f"{c.direction():<24} {r.seconds:5.2f}s  {r.detail[:100] if r.ok else ''}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spawn", action="store_true",
                    help="run every peer operation as its own process (the CLI protocol)")
    ap.add_argument("--list", action="store_true", help="also print one line per check")
    ap.add_argument("--peer", action="append", choices=list(PEER_COMMANDS), help="only this peer")
    ap.add_argument("--alg", action="append", choices=JWS_ALGS, help="only this algorithm")
    ap.add_argument("--keep", action="store_true",
                    help="keep the keys, PEM files and tokens (their paths are in failure reports)")
    args = ap.parse_args()
    algs = [a for a in JWS_ALGS if not args.alg or a in args.alg]

    binary = Path(os.environ.get("TOKENGATE_BIN", ROOT / "target" / "debug" / "tokengate"))
    if not binary.is_absolute():
        binary = ROOT / binary
    if not os.access(binary, os.X_OK):
        print(f"interop: tokengate binary not found at {binary} (set TOKENGATE_BIN or run "
              f"interop/run)", file=sys.stderr)
        return 2

    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="tokengate-interop-"))
    tg = Tokengate(binary)
    peers = {n: Peer(n, c, args.spawn) for n, c in PEER_COMMANDS.items()
             if not args.peer or n in args.peer}
    try:
        for peer in peers.values():
            # Always through the command line, so serve mode still exercises it.
            p = Peer(peer.name, peer.command, spawn=True).run(["caps"])
            if p.status != 0:
                print(f"interop: peer {peer.name} does not start ({p.brief()})", file=sys.stderr)
                return 2
            peer.caps = json.loads(p.stdout)
            peer.start()
        the_plan = plan(peers, algs)
        runner = Runner(tg, peers, work)
        results = [runner.run(c) for c in the_plan.cases]
    finally:
        for peer in peers.values():
            peer.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    versions = ", ".join(f"{n} {p.caps.get('version', '?')}" for n, p in peers.items())
    print(f"tokengate interop: {binary.relative_to(ROOT) if binary.is_relative_to(ROOT) else binary}"
          f" against {versions} ({'process per operation' if args.spawn else 'serve mode'})")
    print_matrix(results)
    if args.list:
        print()
        print_list(results)

    print("\nNot in the matrix:")
    print("  - PEM rows cover the asymmetric algorithms only: HMAC keys have no PEM form.")
    for (name, reason), cases in the_plan.excluded.items():
        cols = sorted({c.column for c in cases}, key=JWS_ALGS.index)
        titles = sorted({c.title for c in cases})
        print(f"  - {name}: {len(cases)} checks ({'; '.join(titles)}) for {' '.join(cols)}: "
              f"{reason}")

    failed = [r for r in results if not r.ok]
    if failed:
        print(f"\nFailures ({len(failed)}):")
        for r in failed:
            c = r.case
            print(f"  FAIL {c.peer} {c.column} {c.title} [{c.direction()}]:\n       {r.detail}")
        print("  " + (f"keys, PEM files and tokens kept in {work}" if args.keep
                      else "(rerun with --keep to keep the files these commands name)"))
    passed = len(results) - len(failed)
    print(f"\n{passed} passed, {len(failed)} failed, {len(results)} checks, "
          f"{sum(len(v) for v in the_plan.excluded.values())} excluded, "
          f"{time.monotonic() - started:.1f}s")
    if not results:
        print("interop: no checks ran", file=sys.stderr)
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
