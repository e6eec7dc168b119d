//! Side-by-side JOSE benchmarks (docs/benchmarks.md, section 1; summarised by `bench/jose`).
//!
//! Contenders, one criterion function id each inside a group per operation:
//! - `tokengate`: this crate.
//! - `jsonwebtoken`: with its aws-lc-rs backend (JWS/JWT only: it has no JWE).
//! - `josekit`: on OpenSSL.
//! - `floor`: the bare aws-lc-rs operations on the same bytes and nothing else (no JSON, no
//!   base64 of the token's segments, no header or claim checks): what no JOSE library built on
//!   aws-lc-rs can beat.
//!
//! Every contender uses the same keys (generated once by tokengate, handed to the others as
//! JWK or PKCS#8), and verifiers and decrypters all work on the same token bytes (tokengate's).
//! Before anything is timed, every contender must accept the tokens of every other contender
//! and reject a tampered one (`cross_check`), so a broken comparison fails loudly instead of
//! timing an early error.
//!
//! Levels, the same for every contender in a row:
//! - `verify/*`: JWT verification: signature, then `exp`, `iss` and `aud`.
//! - `sign/*`: JWT signing: claims map to compact token (`typ: at+jwt`, `kid`).
//! - `decrypt/*`, `encrypt/*`: compact JWE of the ~500-byte claims set (no claim checks).
//! - `decrypt/nested*`: an ES256 JWT inside RSA-OAEP-256/A256GCM: decrypt, verify, claim checks;
//!   `encrypt/nested*`: sign, then encrypt.
//!
//! Keys are parsed once, outside the timed loop, wherever a library's API allows it; where it
//! does not, the comment at the key's construction says so.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::hint::black_box;
use std::time::Duration;

use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::agreement::{self, UnparsedPublicKey};
use aws_lc_rs::cipher::{
    DecryptionContext, EncryptionContext, PaddedBlockDecryptingKey, PaddedBlockEncryptingKey,
    UnboundCipherKey, AES_256,
};
use aws_lc_rs::kdf::{get_sskdf_digest_algorithm, sskdf_digest, SskdfDigestAlgorithmId};
use aws_lc_rs::key_wrap::{KeyEncryptionKey, KeyWrap as _, AES_256 as KW_AES_256};
use aws_lc_rs::rand::{self as aws_rand, SystemRandom};
use aws_lc_rs::rsa::{
    OaepPrivateDecryptingKey, OaepPublicEncryptingKey, PrivateDecryptingKey, PublicEncryptingKey,
    PublicKeyComponents, OAEP_SHA256_MGF1SHA256,
};
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, ParsedPublicKey, RsaKeyPair};
use aws_lc_rs::{constant_time, hmac};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use criterion::{criterion_group, criterion_main, Criterion};
use jose::jwe::{ContentEncryption, DecryptOptions, EncryptParams, KeyManagement};
use jose::{Algorithm, Jwk};
use josekit::jwe::{JweDecrypter, JweEncrypter, JweHeader};
use josekit::jws::{JwsHeader, JwsSigner, JwsVerifier};
use josekit::jwt::{JwtPayload, JwtPayloadValidator};
use serde_json::{Map, Value};

#[path = "fixtures/mod.rs"]
mod fixtures;
use fixtures::{claims, AUD, ISS};
const TYP: &str = "at+jwt";

const TOKENGATE: &str = "tokengate";
const JSONWEBTOKEN: &str = "jsonwebtoken";
const JOSEKIT: &str = "josekit";
const FLOOR: &str = "floor";

// ---------------------------------------------------------------------------------------------
// Small helpers (setup only, never timed unless said so).

fn b64d(s: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(s).unwrap()
}

fn b64e(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn member(jwk_json: &str, name: &str) -> Vec<u8> {
    let map: Map<String, Value> = serde_json::from_str(jwk_json).unwrap();
    b64d(map[name].as_str().unwrap())
}

/// A JWK's JSON without some members (for josekit, which reads `alg` its own way).
fn without(jwk_json: &str, names: &[&str]) -> String {
    let mut map: Map<String, Value> = serde_json::from_str(jwk_json).unwrap();
    for name in names {
        map.remove(*name);
    }
    Value::Object(map).to_string()
}

fn pkcs8_der(key: &Jwk) -> Vec<u8> {
    let pem = key.to_pem().unwrap();
    let (label, der) = pem_rfc7468::decode_vec(pem.as_bytes()).unwrap();
    assert_eq!(label, "PRIVATE KEY");
    der
}

fn ec_point(jwk_json: &str) -> Vec<u8> {
    let mut point = vec![0x04];
    point.extend(member(jwk_json, "x"));
    point.extend(member(jwk_json, "y"));
    point
}

/// `header.payload` and the decoded signature of a compact JWS.
fn split_jws(token: &str) -> (Vec<u8>, Vec<u8>) {
    let dot = token.rfind('.').unwrap();
    (token.as_bytes()[..dot].to_vec(), b64d(&token[dot + 1..]))
}

/// Flips one character in the middle of the last segment.
fn tamper(token: &str) -> String {
    let mut bytes = token.as_bytes().to_vec();
    let last = token.rfind('.').unwrap();
    let i = last + (token.len() - last) / 2;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).unwrap()
}

fn random(len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    aws_rand::fill(&mut out).unwrap();
    out
}

// ---------------------------------------------------------------------------------------------
// The floor: aws-lc-rs alone.

// Built once per case; unboxed so the timed floor has no indirection to follow.
#[allow(clippy::large_enum_variant)]
enum FloorSigner {
    Hmac(hmac::Key),
    Rsa(RsaKeyPair, &'static dyn signature::RsaEncoding),
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

impl FloorSigner {
    fn sign(&self, rng: &SystemRandom, message: &[u8]) -> Vec<u8> {
        match self {
            Self::Hmac(key) => hmac::sign(key, message).as_ref().to_vec(),
            Self::Rsa(pair, padding) => {
                let mut sig = vec![0; pair.public_modulus_len()];
                pair.sign(*padding, rng, message, &mut sig).unwrap();
                sig
            }
            Self::Ecdsa(pair) => pair.sign(rng, message).unwrap().as_ref().to_vec(),
            Self::Ed25519(pair) => pair.sign(message).as_ref().to_vec(),
        }
    }
}

#[allow(clippy::large_enum_variant)]
enum FloorVerifier {
    Hmac(hmac::Key),
    Key(ParsedPublicKey),
}

impl FloorVerifier {
    fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        match self {
            Self::Hmac(key) => hmac::verify(key, message, sig).is_ok(),
            Self::Key(key) => key.verify_sig(message, sig).is_ok(),
        }
    }
}

fn floor_keys(alg: Algorithm, key: &Jwk) -> (FloorSigner, FloorVerifier) {
    let json = key.to_json();
    match alg {
        Algorithm::HS256 => {
            let k = member(&json, "k");
            (
                FloorSigner::Hmac(hmac::Key::new(hmac::HMAC_SHA256, &k)),
                FloorVerifier::Hmac(hmac::Key::new(hmac::HMAC_SHA256, &k)),
            )
        }
        Algorithm::RS256 | Algorithm::PS256 => {
            let (padding, params): (&'static dyn signature::RsaEncoding, _) =
                if alg == Algorithm::RS256 {
                    (
                        &signature::RSA_PKCS1_SHA256,
                        &signature::RSA_PKCS1_2048_8192_SHA256,
                    )
                } else {
                    (
                        &signature::RSA_PSS_SHA256,
                        &signature::RSA_PSS_2048_8192_SHA256,
                    )
                };
            let pair = RsaKeyPair::from_pkcs8(&pkcs8_der(key)).unwrap();
            let (n, e) = (member(&json, "n"), member(&json, "e"));
            let public = PublicKeyComponents {
                n: &n[..],
                e: &e[..],
            }
            .to_parsed_public_key(params)
            .unwrap();
            (FloorSigner::Rsa(pair, padding), FloorVerifier::Key(public))
        }
        Algorithm::ES256 | Algorithm::ES384 => {
            let (sign_alg, verify_alg) = if alg == Algorithm::ES256 {
                (
                    &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    &signature::ECDSA_P256_SHA256_FIXED,
                )
            } else {
                (
                    &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
                    &signature::ECDSA_P384_SHA384_FIXED,
                )
            };
            let pair = EcdsaKeyPair::from_pkcs8(sign_alg, &pkcs8_der(key)).unwrap();
            let public = ParsedPublicKey::new(verify_alg, ec_point(&json)).unwrap();
            (FloorSigner::Ecdsa(pair), FloorVerifier::Key(public))
        }
        Algorithm::EdDSA => {
            let pair = Ed25519KeyPair::from_pkcs8(&pkcs8_der(key)).unwrap();
            let public = ParsedPublicKey::new(&signature::ED25519, member(&json, "x")).unwrap();
            (FloorSigner::Ed25519(pair), FloorVerifier::Key(public))
        }
        other => panic!("no floor for {other}"),
    }
}

/// The segments of a compact JWE, decoded (and the sender's `epk`, `apu`, `apv` read from the
/// header), ready for the floor: the parsing a JOSE library does is not part of the floor.
struct JweParts {
    aad: Vec<u8>,
    encrypted_key: Vec<u8>,
    iv: Vec<u8>,
    ciphertext: Vec<u8>,
    tag: Vec<u8>,
    epk: Option<Vec<u8>>,
    apu: Vec<u8>,
    apv: Vec<u8>,
}

impl JweParts {
    fn new(token: &str) -> Self {
        let s: Vec<&str> = token.split('.').collect();
        assert_eq!(s.len(), 5, "a compact JWE has five segments");
        let header: Map<String, Value> = serde_json::from_slice(&b64d(s[0])).unwrap();
        let text = |name: &str| header.get(name).and_then(Value::as_str).map(b64d);
        let epk = header.get("epk").map(|epk| ec_point(&epk.to_string()));
        Self {
            aad: s[0].as_bytes().to_vec(),
            encrypted_key: b64d(s[1]),
            iv: b64d(s[2]),
            ciphertext: b64d(s[3]),
            tag: b64d(s[4]),
            epk,
            apu: text("apu").unwrap_or_default(),
            apv: text("apv").unwrap_or_default(),
        }
    }
}

/// What the floor needs for one key-management algorithm.
enum FloorKm {
    /// `dir`: the CEK's GCM key schedule, built once since the key never changes.
    Dir(LessSafeKey),
    /// AES key wrap: the KEK bytes. aws-lc-rs's `KeyEncryptionKey` is consumed by each wrap or
    /// unwrap, so its key schedule is rebuilt per operation, as every library must.
    Kw(Vec<u8>),
    /// RSA-OAEP-256: both halves, parsed once.
    Rsa(OaepPrivateDecryptingKey, OaepPublicEncryptingKey),
    /// ECDH-ES+A256KW on P-256: the recipient's private key (parsed once) and public point.
    Ecdh(agreement::PrivateKey, Vec<u8>),
}

const ECDH_ALG_ID: &str = "ECDH-ES+A256KW";

/// RFC 7518 §4.6.2 Concat KDF (the single-step KDF of NIST SP 800-56C with SHA-256).
fn concat_kdf(z: &[u8], alg_id: &str, apu: &[u8], apv: &[u8], key_len: usize) -> Vec<u8> {
    let mut info = Vec::with_capacity(16 + alg_id.len() + apu.len() + apv.len());
    for part in [alg_id.as_bytes(), apu, apv] {
        info.extend_from_slice(&u32::try_from(part.len()).unwrap().to_be_bytes());
        info.extend_from_slice(part);
    }
    info.extend_from_slice(&u32::try_from(key_len * 8).unwrap().to_be_bytes());
    let kdf = get_sskdf_digest_algorithm(SskdfDigestAlgorithmId::Sha256).unwrap();
    let mut out = vec![0u8; key_len];
    sskdf_digest(kdf, z, &info, &mut out).unwrap();
    out
}

fn kw_unwrap(kek: &[u8], wrapped: &[u8]) -> Option<Vec<u8>> {
    let kek = KeyEncryptionKey::new(&KW_AES_256, kek).ok()?;
    let mut out = vec![0u8; wrapped.len()];
    let len = kek.unwrap(wrapped, &mut out).ok()?.len();
    out.truncate(len);
    Some(out)
}

fn kw_wrap(kek: &[u8], cek: &[u8]) -> Vec<u8> {
    let kek = KeyEncryptionKey::new(&KW_AES_256, kek).unwrap();
    let mut out = vec![0u8; cek.len() + 8];
    let len = kek.wrap(cek, &mut out).unwrap().len();
    out.truncate(len);
    out
}

fn gcm_open(key: &LessSafeKey, p: &JweParts) -> Option<Vec<u8>> {
    let mut buf = Vec::with_capacity(p.ciphertext.len() + p.tag.len());
    buf.extend_from_slice(&p.ciphertext);
    buf.extend_from_slice(&p.tag);
    let nonce = Nonce::try_assume_unique_for_key(&p.iv).ok()?;
    let len = key
        .open_in_place(nonce, Aad::from(&p.aad[..]), &mut buf)
        .ok()?
        .len();
    buf.truncate(len);
    Some(buf)
}

/// RFC 7518 §5.2.2.1: HMAC-SHA-512 over AAD, IV, ciphertext and the AAD length in bits,
/// truncated to 32 bytes.
fn cbc_hs512_tag(mac_key: &[u8], aad: &[u8], iv: &[u8], ciphertext: &[u8]) -> Vec<u8> {
    let key = hmac::Key::new(hmac::HMAC_SHA512, mac_key);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(aad);
    ctx.update(iv);
    ctx.update(ciphertext);
    ctx.update(&(u64::try_from(aad.len()).unwrap() * 8).to_be_bytes());
    ctx.sign().as_ref()[..32].to_vec()
}

fn content_open(enc: ContentEncryption, cek: &[u8], p: &JweParts) -> Option<Vec<u8>> {
    match enc {
        ContentEncryption::A256GCM => gcm_open(
            &LessSafeKey::new(UnboundKey::new(&aead::AES_256_GCM, cek).ok()?),
            p,
        ),
        ContentEncryption::A256CBC_HS512 => {
            let (mac_key, enc_key) = cek.split_at(32);
            let expected = cbc_hs512_tag(mac_key, &p.aad, &p.iv, &p.ciphertext);
            constant_time::verify_slices_are_equal(&expected, &p.tag).ok()?;
            let key =
                PaddedBlockDecryptingKey::cbc_pkcs7(UnboundCipherKey::new(&AES_256, enc_key).ok()?)
                    .ok()?;
            let iv: [u8; 16] = p.iv.as_slice().try_into().ok()?;
            let mut buf = p.ciphertext.clone();
            let len = key
                .decrypt(&mut buf, DecryptionContext::Iv128(iv.into()))
                .ok()?
                .len();
            buf.truncate(len);
            Some(buf)
        }
        other => panic!("no floor for {}", other.name()),
    }
}

/// The floor's decryption: recover the CEK, open the content.
fn floor_decrypt(km: &FloorKm, enc: ContentEncryption, p: &JweParts) -> Option<Vec<u8>> {
    match km {
        FloorKm::Dir(key) => gcm_open(key, p),
        FloorKm::Kw(kek) => content_open(enc, &kw_unwrap(kek, &p.encrypted_key)?, p),
        FloorKm::Rsa(private, _) => {
            let mut out = vec![0u8; private.min_output_size()];
            let cek = private
                .decrypt(&OAEP_SHA256_MGF1SHA256, &p.encrypted_key, &mut out, None)
                .ok()?;
            content_open(enc, cek, p)
        }
        FloorKm::Ecdh(private, _) => {
            let epk = p.epk.as_deref()?;
            let kek = agreement::agree(
                private,
                UnparsedPublicKey::new(&agreement::ECDH_P256, epk),
                (),
                |z| Ok(concat_kdf(z, ECDH_ALG_ID, &p.apu, &p.apv, 32)),
            )
            .ok()?;
            content_open(enc, &kw_unwrap(&kek, &p.encrypted_key)?, p)
        }
    }
}

/// What the floor's encryption produces (the header and the base64 are left out).
struct Sealed {
    encrypted_key: Vec<u8>,
    iv: Vec<u8>,
    ciphertext: Vec<u8>,
    tag: Vec<u8>,
    epk: Option<agreement::PublicKey>,
}

fn content_seal(
    enc: ContentEncryption,
    cek: &[u8],
    aad: &[u8],
    plaintext: &[u8],
) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    match enc {
        ContentEncryption::A256GCM => {
            let key = LessSafeKey::new(UnboundKey::new(&aead::AES_256_GCM, cek).unwrap());
            gcm_seal(&key, aad, plaintext)
        }
        ContentEncryption::A256CBC_HS512 => {
            let (mac_key, enc_key) = cek.split_at(32);
            let key = PaddedBlockEncryptingKey::cbc_pkcs7(
                UnboundCipherKey::new(&AES_256, enc_key).unwrap(),
            )
            .unwrap();
            let iv: [u8; 16] = random(16).try_into().unwrap();
            let mut buf = plaintext.to_vec();
            key.less_safe_encrypt(&mut buf, EncryptionContext::Iv128(iv.into()))
                .unwrap();
            let tag = cbc_hs512_tag(mac_key, aad, &iv, &buf);
            (iv.to_vec(), buf, tag)
        }
        other => panic!("no floor for {}", other.name()),
    }
}

fn gcm_seal(key: &LessSafeKey, aad: &[u8], plaintext: &[u8]) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let iv = random(12);
    let mut buf = plaintext.to_vec();
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::try_assume_unique_for_key(&iv).unwrap(),
            Aad::from(aad),
            &mut buf,
        )
        .unwrap();
    (iv, buf, tag.as_ref().to_vec())
}

/// The floor's encryption: a fresh CEK (and ephemeral key), the key management, the content.
/// `aad` stands in for the protected header, which the floor does not build.
fn floor_encrypt(km: &FloorKm, enc: ContentEncryption, aad: &[u8], plaintext: &[u8]) -> Sealed {
    let (encrypted_key, cek, epk) = match km {
        FloorKm::Dir(key) => {
            let (iv, ciphertext, tag) = gcm_seal(key, aad, plaintext);
            return Sealed {
                encrypted_key: Vec::new(),
                iv,
                ciphertext,
                tag,
                epk: None,
            };
        }
        FloorKm::Kw(kek) => {
            let cek = random(enc.key_len());
            (kw_wrap(kek, &cek), cek, None)
        }
        FloorKm::Rsa(_, public) => {
            let cek = random(enc.key_len());
            let mut out = vec![0u8; public.ciphertext_size()];
            let len = public
                .encrypt(&OAEP_SHA256_MGF1SHA256, &cek, &mut out, None)
                .unwrap()
                .len();
            out.truncate(len);
            (out, cek, None)
        }
        FloorKm::Ecdh(_, recipient) => {
            let ephemeral = agreement::PrivateKey::generate(&agreement::ECDH_P256).unwrap();
            let epk = ephemeral.compute_public_key().unwrap();
            let kek = agreement::agree(
                &ephemeral,
                UnparsedPublicKey::new(&agreement::ECDH_P256, &recipient[..]),
                (),
                |z| Ok(concat_kdf(z, ECDH_ALG_ID, &[], &[], 32)),
            )
            .unwrap();
            let cek = random(enc.key_len());
            (kw_wrap(&kek, &cek), cek, Some(epk))
        }
    };
    let (iv, ciphertext, tag) = content_seal(enc, &cek, aad, plaintext);
    Sealed {
        encrypted_key,
        iv,
        ciphertext,
        tag,
        epk,
    }
}

// ---------------------------------------------------------------------------------------------
// Signature cases.

struct SigCase {
    name: &'static str,
    alg: Algorithm,
    tg_key: Jwk,
    tg_public: Jwk,
    tg_validation: jose::jwt::Validation,
    // jsonwebtoken's keys hold bytes, not parsed keys: each sign and verify parses them again
    // (PKCS#8 for RSA/EC/Ed25519 signing; SPKI-less components or points for verifying). Its API
    // has no way to keep a parsed key, so that cost is part of its numbers.
    jwt_header: jsonwebtoken::Header,
    jwt_encoding: jsonwebtoken::EncodingKey,
    jwt_decoding: jsonwebtoken::DecodingKey,
    jwt_validation: jsonwebtoken::Validation,
    // josekit's signers and verifiers hold OpenSSL keys parsed once.
    jk_header: JwsHeader,
    jk_payload: JwtPayload,
    jk_signer: Box<dyn JwsSigner>,
    jk_verifier: Box<dyn JwsVerifier>,
    jk_validator: JwtPayloadValidator,
    floor_signer: FloorSigner,
    floor_verifier: FloorVerifier,
    /// tokengate's token: the bytes every verifier is timed on.
    token: String,
    /// Its signing input and decoded signature, for the floor.
    signing_input: Vec<u8>,
    signature: Vec<u8>,
}

fn jwt_alg(alg: Algorithm) -> jsonwebtoken::Algorithm {
    match alg {
        Algorithm::HS256 => jsonwebtoken::Algorithm::HS256,
        Algorithm::RS256 => jsonwebtoken::Algorithm::RS256,
        Algorithm::PS256 => jsonwebtoken::Algorithm::PS256,
        Algorithm::ES256 => jsonwebtoken::Algorithm::ES256,
        Algorithm::ES384 => jsonwebtoken::Algorithm::ES384,
        Algorithm::EdDSA => jsonwebtoken::Algorithm::EdDSA,
        other => panic!("not benchmarked: {other}"),
    }
}

fn josekit_sig(
    alg: Algorithm,
    private: &josekit::jwk::Jwk,
    public: &josekit::jwk::Jwk,
) -> (Box<dyn JwsSigner>, Box<dyn JwsVerifier>) {
    use josekit::jws::{EdDSA, ES256, ES384, HS256, PS256, RS256};
    match alg {
        Algorithm::HS256 => (
            Box::new(HS256.signer_from_jwk(private).unwrap()),
            Box::new(HS256.verifier_from_jwk(public).unwrap()),
        ),
        Algorithm::RS256 => (
            Box::new(RS256.signer_from_jwk(private).unwrap()),
            Box::new(RS256.verifier_from_jwk(public).unwrap()),
        ),
        Algorithm::PS256 => (
            Box::new(PS256.signer_from_jwk(private).unwrap()),
            Box::new(PS256.verifier_from_jwk(public).unwrap()),
        ),
        Algorithm::ES256 => (
            Box::new(ES256.signer_from_jwk(private).unwrap()),
            Box::new(ES256.verifier_from_jwk(public).unwrap()),
        ),
        Algorithm::ES384 => (
            Box::new(ES384.signer_from_jwk(private).unwrap()),
            Box::new(ES384.verifier_from_jwk(public).unwrap()),
        ),
        Algorithm::EdDSA => (
            Box::new(EdDSA.signer_from_jwk(private).unwrap()),
            Box::new(EdDSA.verifier_from_jwk(public).unwrap()),
        ),
        other => panic!("not benchmarked: {other}"),
    }
}

impl SigCase {
    fn new(alg: Algorithm, claims: &Map<String, Value>) -> Self {
        let tg_key = Jwk::generate(alg, None, None).unwrap();
        let symmetric = alg == Algorithm::HS256;
        let tg_public = if symmetric {
            Jwk::from_json(tg_key.to_json().as_bytes()).unwrap()
        } else {
            tg_key.to_public().unwrap()
        };
        let private_json = tg_key.to_json();
        let public_json = if symmetric {
            private_json.clone()
        } else {
            tg_public.to_json()
        };
        let kid = tg_key.kid().unwrap().to_owned();
        let tg_validation = jose::jwt::Validation::new()
            .algorithms([alg])
            .issuer(ISS)
            .audience(AUD);

        let jwt_encoding = match alg {
            Algorithm::HS256 => jsonwebtoken::EncodingKey::from_secret(&member(&private_json, "k")),
            Algorithm::RS256 | Algorithm::PS256 => {
                jsonwebtoken::EncodingKey::from_rsa_pem(tg_key.to_pem().unwrap().as_bytes())
                    .unwrap()
            }
            Algorithm::ES256 | Algorithm::ES384 => {
                jsonwebtoken::EncodingKey::from_ec_pem(tg_key.to_pem().unwrap().as_bytes()).unwrap()
            }
            _ => {
                jsonwebtoken::EncodingKey::from_ed_pem(tg_key.to_pem().unwrap().as_bytes()).unwrap()
            }
        };
        let jwt_decoding = if symmetric {
            jsonwebtoken::DecodingKey::from_secret(&member(&private_json, "k"))
        } else {
            let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_str(&public_json).unwrap();
            jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap()
        };
        let mut jwt_header = jsonwebtoken::Header::new(jwt_alg(alg));
        jwt_header.typ = Some(TYP.to_owned());
        jwt_header.kid = Some(kid.clone());
        let mut jwt_validation = jsonwebtoken::Validation::new(jwt_alg(alg));
        jwt_validation.set_issuer(&[ISS]);
        jwt_validation.set_audience(&[AUD]);

        let jk_private = josekit::jwk::Jwk::from_bytes(private_json.as_bytes()).unwrap();
        let jk_public = josekit::jwk::Jwk::from_bytes(public_json.as_bytes()).unwrap();
        let (jk_signer, jk_verifier) = josekit_sig(alg, &jk_private, &jk_public);
        let mut jk_header = JwsHeader::new();
        jk_header.set_token_type(TYP);
        jk_header.set_key_id(kid);
        let mut jk_validator = JwtPayloadValidator::new();
        jk_validator.set_issuer(ISS);
        jk_validator.set_audience(AUD);

        let (floor_signer, floor_verifier) = floor_keys(alg, &tg_key);
        let token = jose::jwt::sign(claims, &tg_key, alg, Some(TYP)).unwrap();
        let (signing_input, signature) = split_jws(&token);
        Self {
            name: alg.name(),
            alg,
            tg_key,
            tg_public,
            tg_validation,
            jwt_header,
            jwt_encoding,
            jwt_decoding,
            jwt_validation,
            jk_header,
            jk_payload: JwtPayload::from_map(claims.clone()).unwrap(),
            jk_signer,
            jk_verifier,
            jk_validator,
            floor_signer,
            floor_verifier,
            token,
            signing_input,
            signature,
        }
    }

    fn tg_sign(&self, claims: &Map<String, Value>) -> String {
        jose::jwt::sign(claims, &self.tg_key, self.alg, Some(TYP)).unwrap()
    }

    fn tg_verify(&self, token: &str) -> Result<Map<String, Value>, String> {
        jose::jwt::verify(token, &self.tg_public, &self.tg_validation)
            .and_then(|jwt| jwt.claims.as_map().cloned())
            .map_err(|e| e.to_string())
    }

    fn jwt_sign(&self, claims: &Map<String, Value>) -> String {
        jsonwebtoken::encode(&self.jwt_header, claims, &self.jwt_encoding).unwrap()
    }

    fn jwt_verify(&self, token: &str) -> Result<Map<String, Value>, String> {
        jsonwebtoken::decode::<Map<String, Value>>(token, &self.jwt_decoding, &self.jwt_validation)
            .map(|data| data.claims)
            .map_err(|e| e.to_string())
    }

    fn jk_sign(&self) -> String {
        josekit::jwt::encode_with_signer(&self.jk_payload, &self.jk_header, &*self.jk_signer)
            .unwrap()
    }

    fn jk_verify(&self, token: &str) -> Result<Map<String, Value>, String> {
        let (payload, _header) = josekit::jwt::decode_with_verifier(token, &*self.jk_verifier)
            .map_err(|e| e.to_string())?;
        self.jk_validator
            .validate(&payload)
            .map_err(|e| e.to_string())?;
        Ok(payload.claims_set().clone())
    }

    fn floor_verify(&self, token: &str) -> Result<(), String> {
        let (input, sig) = split_jws(token);
        if self.floor_verifier.verify(&input, &sig) {
            Ok(())
        } else {
            Err("signature verification failed".into())
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Encryption cases.

struct EncCase {
    name: &'static str,
    km: KeyManagement,
    enc: ContentEncryption,
    tg_decrypt_key: Jwk,
    tg_encrypt_key: Jwk,
    tg_options: DecryptOptions,
    // josekit's encrypters and decrypters hold parsed OpenSSL keys (or the raw symmetric key).
    jk_header: JweHeader,
    jk_encrypter: Box<dyn JweEncrypter>,
    jk_decrypter: Box<dyn JweDecrypter>,
    floor: FloorKm,
    /// tokengate's token: the bytes every decrypter is timed on.
    token: String,
    parts: JweParts,
}

fn josekit_enc(
    km: KeyManagement,
    private: &josekit::jwk::Jwk,
    public: &josekit::jwk::Jwk,
) -> (Box<dyn JweEncrypter>, Box<dyn JweDecrypter>) {
    use josekit::jwe::{Dir, A256KW, ECDH_ES_A256KW, RSA_OAEP_256};
    match km {
        KeyManagement::Dir => (
            Box::new(Dir.encrypter_from_jwk(public).unwrap()),
            Box::new(Dir.decrypter_from_jwk(private).unwrap()),
        ),
        KeyManagement::A256KW => (
            Box::new(A256KW.encrypter_from_jwk(public).unwrap()),
            Box::new(A256KW.decrypter_from_jwk(private).unwrap()),
        ),
        KeyManagement::RSA_OAEP_256 => (
            Box::new(RSA_OAEP_256.encrypter_from_jwk(public).unwrap()),
            Box::new(RSA_OAEP_256.decrypter_from_jwk(private).unwrap()),
        ),
        KeyManagement::ECDH_ES_A256KW => (
            Box::new(ECDH_ES_A256KW.encrypter_from_jwk(public).unwrap()),
            Box::new(ECDH_ES_A256KW.decrypter_from_jwk(private).unwrap()),
        ),
        other => panic!("not benchmarked: {}", other.name()),
    }
}

impl EncCase {
    /// `key`: reuse an existing recipient key (the A256KW key serves both contents).
    fn new(
        name: &'static str,
        km: KeyManagement,
        enc: ContentEncryption,
        key: Option<&Jwk>,
        plaintext: &[u8],
    ) -> Self {
        let tg_decrypt_key = match key {
            Some(k) => Jwk::from_json(k.to_json().as_bytes()).unwrap(),
            None => {
                let sized_by = (km == KeyManagement::Dir).then_some(enc);
                Jwk::generate_for_encryption(km, sized_by, None, None, None).unwrap()
            }
        };
        let private_json = tg_decrypt_key.to_json();
        let symmetric = tg_decrypt_key.is_symmetric();
        let tg_encrypt_key = if symmetric {
            Jwk::from_json(private_json.as_bytes()).unwrap()
        } else {
            tg_decrypt_key.to_public().unwrap()
        };
        let public_json = tg_encrypt_key.to_json();

        // tokengate binds a `dir` key to its content encryption with `"alg": "A256GCM"`;
        // josekit wants `"dir"` or nothing there. Same key material either way.
        let (jk_private, jk_public) = if km == KeyManagement::Dir {
            (
                without(&private_json, &["alg"]),
                without(&public_json, &["alg"]),
            )
        } else {
            (private_json.clone(), public_json.clone())
        };
        let jk_private = josekit::jwk::Jwk::from_bytes(jk_private.as_bytes()).unwrap();
        let jk_public = josekit::jwk::Jwk::from_bytes(jk_public.as_bytes()).unwrap();
        let (jk_encrypter, jk_decrypter) = josekit_enc(km, &jk_private, &jk_public);
        let mut jk_header = JweHeader::new();
        jk_header.set_content_encryption(enc.name());

        let floor = match km {
            KeyManagement::Dir => FloorKm::Dir(LessSafeKey::new(
                UnboundKey::new(&aead::AES_256_GCM, &member(&private_json, "k")).unwrap(),
            )),
            KeyManagement::A256KW => FloorKm::Kw(member(&private_json, "k")),
            KeyManagement::RSA_OAEP_256 => {
                let private = OaepPrivateDecryptingKey::new(
                    PrivateDecryptingKey::from_pkcs8(&pkcs8_der(&tg_decrypt_key)).unwrap(),
                )
                .unwrap();
                let (n, e) = (member(&public_json, "n"), member(&public_json, "e"));
                let public: PublicEncryptingKey = PublicKeyComponents {
                    n: &n[..],
                    e: &e[..],
                }
                .try_into()
                .unwrap();
                FloorKm::Rsa(private, OaepPublicEncryptingKey::new(public).unwrap())
            }
            KeyManagement::ECDH_ES_A256KW => FloorKm::Ecdh(
                agreement::PrivateKey::from_private_key(
                    &agreement::ECDH_P256,
                    &member(&private_json, "d"),
                )
                .unwrap(),
                ec_point(&public_json),
            ),
            other => panic!("not benchmarked: {}", other.name()),
        };

        let token = jose::jwe::compact::encrypt(
            plaintext,
            &tg_encrypt_key,
            km,
            enc,
            &EncryptParams::default(),
        )
        .unwrap();
        let parts = JweParts::new(&token);
        Self {
            name,
            km,
            enc,
            tg_options: DecryptOptions::new([km]),
            tg_decrypt_key,
            tg_encrypt_key,
            jk_header,
            jk_encrypter,
            jk_decrypter,
            floor,
            token,
            parts,
        }
    }

    fn tg_encrypt(&self, plaintext: &[u8]) -> String {
        jose::jwe::compact::encrypt(
            plaintext,
            &self.tg_encrypt_key,
            self.km,
            self.enc,
            &EncryptParams::default(),
        )
        .unwrap()
    }

    fn tg_decrypt(&self, token: &str) -> Result<Vec<u8>, String> {
        jose::jwe::compact::decrypt(token, &self.tg_decrypt_key, &self.tg_options)
            .map(|d| d.plaintext)
            .map_err(|e| e.to_string())
    }

    fn jk_encrypt(&self, plaintext: &[u8]) -> String {
        josekit::jwe::serialize_compact(plaintext, &self.jk_header, &*self.jk_encrypter).unwrap()
    }

    fn jk_decrypt(&self, token: &str) -> Result<Vec<u8>, String> {
        josekit::jwe::deserialize_compact(token, &*self.jk_decrypter)
            .map(|(plaintext, _header)| plaintext)
            .map_err(|e| e.to_string())
    }

    fn floor_decrypt(&self, token: &str) -> Result<Vec<u8>, String> {
        floor_decrypt(&self.floor, self.enc, &JweParts::new(token))
            .ok_or_else(|| "decryption failed".to_owned())
    }
}

// ---------------------------------------------------------------------------------------------
// The nested token: an ES256 JWT inside RSA-OAEP-256/A256GCM.

struct Nested<'a> {
    sig: &'a SigCase,
    enc: &'a EncCase,
    jk_jwe_header: JweHeader,
    token: String,
    parts: JweParts,
}

impl<'a> Nested<'a> {
    fn new(sig: &'a SigCase, enc: &'a EncCase, claims: &Map<String, Value>) -> Self {
        assert_eq!(sig.alg, Algorithm::ES256);
        assert_eq!(enc.km, KeyManagement::RSA_OAEP_256);
        let mut jk_jwe_header = JweHeader::new();
        jk_jwe_header.set_content_encryption(enc.enc.name());
        jk_jwe_header.set_content_type("JWT");
        let token = jose::jwt::sign_encrypted(
            claims,
            &sig.tg_key,
            Algorithm::ES256,
            Some(TYP),
            &enc.tg_encrypt_key,
            KeyManagement::RSA_OAEP_256,
            enc.enc,
        )
        .unwrap();
        let parts = JweParts::new(&token);
        Self {
            sig,
            enc,
            jk_jwe_header,
            token,
            parts,
        }
    }

    fn tg_encrypt(&self, claims: &Map<String, Value>) -> String {
        jose::jwt::sign_encrypted(
            claims,
            &self.sig.tg_key,
            Algorithm::ES256,
            Some(TYP),
            &self.enc.tg_encrypt_key,
            KeyManagement::RSA_OAEP_256,
            self.enc.enc,
        )
        .unwrap()
    }

    fn tg_decrypt(&self, token: &str) -> Result<Map<String, Value>, String> {
        jose::jwt::decrypt_and_verify(
            token,
            &self.enc.tg_decrypt_key,
            &self.enc.tg_options,
            &self.sig.tg_public,
            &self.sig.tg_validation,
        )
        .and_then(|jwt| jwt.claims.as_map().cloned())
        .map_err(|e| e.to_string())
    }

    fn jk_encrypt(&self) -> String {
        let inner = self.sig.jk_sign();
        josekit::jwe::serialize_compact(
            inner.as_bytes(),
            &self.jk_jwe_header,
            &*self.enc.jk_encrypter,
        )
        .unwrap()
    }

    fn jk_decrypt(&self, token: &str) -> Result<Map<String, Value>, String> {
        let (inner, header) = josekit::jwe::deserialize_compact(token, &*self.enc.jk_decrypter)
            .map_err(|e| e.to_string())?;
        if header.content_type() != Some("JWT") {
            return Err("not a nested JWT".into());
        }
        self.sig
            .jk_verify(std::str::from_utf8(&inner).map_err(|e| e.to_string())?)
    }

    /// Floor: RSA-OAEP-256 and GCM open, then ES256 over the inner token. Decoding the inner
    /// signature is counted: the floor cannot know it before decrypting.
    fn floor_decrypt_parts(&self, parts: &JweParts) -> Option<Vec<u8>> {
        let inner = floor_decrypt(&self.enc.floor, self.enc.enc, parts)?;
        let dot = inner.iter().rposition(|b| *b == b'.')?;
        let sig = URL_SAFE_NO_PAD.decode(&inner[dot + 1..]).ok()?;
        self.sig
            .floor_verifier
            .verify(&inner[..dot], &sig)
            .then_some(inner)
    }

    fn floor_decrypt(&self, token: &str) -> Result<Map<String, Value>, String> {
        let inner = self
            .floor_decrypt_parts(&JweParts::new(token))
            .ok_or_else(|| "decryption or verification failed".to_owned())?;
        // Claims read here only to cross-check; the timed floor stops at the signature.
        let inner = std::str::from_utf8(&inner).unwrap();
        let payload = inner.split('.').nth(1).unwrap();
        Ok(serde_json::from_slice(&b64d(payload)).unwrap())
    }
}

// ---------------------------------------------------------------------------------------------
// Cross-check: everyone accepts everyone's tokens, and nobody accepts a tampered one.

type Check<'a> = (&'static str, Box<dyn Fn(&str) -> Result<(), String> + 'a>);

fn expect_all(what: &str, producers: &[(&str, String)], consumers: &[Check<'_>]) {
    for (producer, token) in producers {
        for (consumer, check) in consumers {
            if let Err(e) = check(token) {
                panic!("{what}: {consumer} rejects the token of {producer}: {e}\ntoken: {token}");
            }
        }
    }
    let (producer, token) = &producers[0];
    let bad = tamper(token);
    for (consumer, check) in consumers {
        assert!(
            check(&bad).is_err(),
            "{what}: {consumer} accepts a tampered token of {producer}"
        );
    }
}

fn same_claims(
    want: &Map<String, Value>,
) -> impl Fn(Result<Map<String, Value>, String>) -> Result<(), String> + '_ {
    move |got| match got {
        Ok(c) if &c == want => Ok(()),
        Ok(c) => Err(format!("different claims: {}", Value::Object(c))),
        Err(e) => Err(e),
    }
}

fn same_bytes(want: &[u8]) -> impl Fn(Result<Vec<u8>, String>) -> Result<(), String> + '_ {
    move |got| match got {
        Ok(p) if p == want => Ok(()),
        Ok(_) => Err("different plaintext".into()),
        Err(e) => Err(e),
    }
}

fn cross_check(
    claims: &Map<String, Value>,
    plaintext: &[u8],
    sigs: &[SigCase],
    encs: &[EncCase],
    nested: &Nested<'_>,
) {
    let claims_ok = same_claims(claims);
    let bytes_ok = same_bytes(plaintext);
    for s in sigs {
        let producers = [
            (TOKENGATE, s.token.clone()),
            (JSONWEBTOKEN, s.jwt_sign(claims)),
            (JOSEKIT, s.jk_sign()),
            (TOKENGATE, s.tg_sign(claims)),
        ];
        let consumers: Vec<Check<'_>> = vec![
            (TOKENGATE, Box::new(|t| claims_ok(s.tg_verify(t)))),
            (JSONWEBTOKEN, Box::new(|t| claims_ok(s.jwt_verify(t)))),
            (JOSEKIT, Box::new(|t| claims_ok(s.jk_verify(t)))),
            (FLOOR, Box::new(|t| s.floor_verify(t))),
        ];
        expect_all(&format!("{} JWT", s.name), &producers, &consumers);
        // The floor's own signatures must verify too (RSA-PSS, ECDSA are randomised).
        let mut floor_token = String::from_utf8(s.signing_input.clone()).unwrap();
        floor_token.push('.');
        floor_token.push_str(&b64e(
            &s.floor_signer.sign(&SystemRandom::new(), &s.signing_input),
        ));
        for (consumer, check) in &consumers {
            if let Err(e) = check(&floor_token) {
                panic!(
                    "{} JWT: {consumer} rejects the floor's signature: {e}",
                    s.name
                );
            }
        }
    }
    for e in encs {
        let producers = [
            (TOKENGATE, e.token.clone()),
            (JOSEKIT, e.jk_encrypt(plaintext)),
            (TOKENGATE, e.tg_encrypt(plaintext)),
        ];
        let consumers: Vec<Check<'_>> = vec![
            (TOKENGATE, Box::new(|t| bytes_ok(e.tg_decrypt(t)))),
            (JOSEKIT, Box::new(|t| bytes_ok(e.jk_decrypt(t)))),
            (FLOOR, Box::new(|t| bytes_ok(e.floor_decrypt(t)))),
        ];
        expect_all(&format!("{} JWE", e.name), &producers, &consumers);
        // The floor's encryption, assembled with tokengate's header, must open everywhere.
        // (ECDH-ES would need the floor's `epk` in the header, which the floor does not build.)
        if e.km != KeyManagement::ECDH_ES_A256KW {
            let sealed = floor_encrypt(&e.floor, e.enc, &e.parts.aad, plaintext);
            assert!(sealed.epk.is_none());
            let token = [
                String::from_utf8(e.parts.aad.clone()).unwrap(),
                b64e(&sealed.encrypted_key),
                b64e(&sealed.iv),
                b64e(&sealed.ciphertext),
                b64e(&sealed.tag),
            ]
            .join(".");
            for (consumer, check) in &consumers {
                if let Err(err) = check(&token) {
                    panic!(
                        "{} JWE: {consumer} rejects the floor's token: {err}",
                        e.name
                    );
                }
            }
        }
    }
    let producers = [
        (TOKENGATE, nested.token.clone()),
        (JOSEKIT, nested.jk_encrypt()),
        (TOKENGATE, nested.tg_encrypt(claims)),
    ];
    let consumers: Vec<Check<'_>> = vec![
        (TOKENGATE, Box::new(|t| claims_ok(nested.tg_decrypt(t)))),
        (JOSEKIT, Box::new(|t| claims_ok(nested.jk_decrypt(t)))),
        (FLOOR, Box::new(|t| claims_ok(nested.floor_decrypt(t)))),
    ];
    expect_all("nested JWT", &producers, &consumers);
}

// ---------------------------------------------------------------------------------------------
// The benchmarks.

const NESTED: &str = "nested ES256 in RSA-OAEP-256+A256GCM";

fn jose(c: &mut Criterion) {
    let claims = claims();
    let plaintext = Value::Object(claims.clone()).to_string().into_bytes();
    assert!(
        (450..=550).contains(&plaintext.len()),
        "the claims set is {} bytes, not about 500",
        plaintext.len()
    );

    let sigs: Vec<SigCase> = [
        Algorithm::HS256,
        Algorithm::RS256,
        Algorithm::PS256,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ]
    .into_iter()
    .map(|alg| SigCase::new(alg, &claims))
    .collect();

    let (a256gcm, cbc) = (ContentEncryption::A256GCM, ContentEncryption::A256CBC_HS512);
    let mut encs = vec![
        EncCase::new("dir+A256GCM", KeyManagement::Dir, a256gcm, None, &plaintext),
        EncCase::new(
            "A256KW+A256GCM",
            KeyManagement::A256KW,
            a256gcm,
            None,
            &plaintext,
        ),
        EncCase::new(
            "RSA-OAEP-256+A256GCM",
            KeyManagement::RSA_OAEP_256,
            a256gcm,
            None,
            &plaintext,
        ),
        EncCase::new(
            "ECDH-ES+A256KW+A256GCM",
            KeyManagement::ECDH_ES_A256KW,
            a256gcm,
            None,
            &plaintext,
        ),
    ];
    let kw_key = Jwk::from_json(encs[1].tg_decrypt_key.to_json().as_bytes()).unwrap();
    encs.push(EncCase::new(
        "A256KW+A256CBC-HS512",
        KeyManagement::A256KW,
        cbc,
        Some(&kw_key),
        &plaintext,
    ));
    let es256 = sigs.iter().find(|s| s.alg == Algorithm::ES256).unwrap();
    let rsa = encs
        .iter()
        .find(|e| e.km == KeyManagement::RSA_OAEP_256)
        .unwrap();
    let nested = Nested::new(es256, rsa, &claims);

    cross_check(&claims, &plaintext, &sigs, &encs, &nested);
    eprintln!(
        "jose bench: claims set {} bytes; cross-check passed: every contender accepts every \
         other's tokens and rejects a tampered one",
        plaintext.len()
    );

    let rng = SystemRandom::new();

    for s in &sigs {
        let mut g = c.benchmark_group(format!("verify/{}", s.name));
        g.bench_function(TOKENGATE, |b| {
            b.iter(|| {
                jose::jwt::verify(black_box(&s.token), &s.tg_public, &s.tg_validation).unwrap()
            })
        });
        g.bench_function(JSONWEBTOKEN, |b| {
            b.iter(|| {
                jsonwebtoken::decode::<Map<String, Value>>(
                    black_box(&s.token),
                    &s.jwt_decoding,
                    &s.jwt_validation,
                )
                .unwrap()
            })
        });
        g.bench_function(JOSEKIT, |b| {
            b.iter(|| {
                let (payload, header) =
                    josekit::jwt::decode_with_verifier(black_box(&s.token), &*s.jk_verifier)
                        .unwrap();
                s.jk_validator.validate(&payload).unwrap();
                (payload, header)
            })
        });
        g.bench_function(FLOOR, |b| {
            b.iter(|| {
                assert!(s
                    .floor_verifier
                    .verify(black_box(&s.signing_input), black_box(&s.signature)))
            })
        });
        g.finish();
    }

    for s in &sigs {
        let mut g = c.benchmark_group(format!("sign/{}", s.name));
        g.bench_function(TOKENGATE, |b| {
            b.iter(|| jose::jwt::sign(black_box(&claims), &s.tg_key, s.alg, Some(TYP)).unwrap())
        });
        g.bench_function(JSONWEBTOKEN, |b| {
            b.iter(|| {
                jsonwebtoken::encode(&s.jwt_header, black_box(&claims), &s.jwt_encoding).unwrap()
            })
        });
        g.bench_function(JOSEKIT, |b| {
            b.iter(|| {
                josekit::jwt::encode_with_signer(
                    black_box(&s.jk_payload),
                    &s.jk_header,
                    &*s.jk_signer,
                )
                .unwrap()
            })
        });
        g.bench_function(FLOOR, |b| {
            b.iter(|| s.floor_signer.sign(&rng, black_box(&s.signing_input)))
        });
        g.finish();
    }

    for e in &encs {
        let mut g = c.benchmark_group(format!("decrypt/{}", e.name));
        g.bench_function(TOKENGATE, |b| {
            b.iter(|| {
                jose::jwe::compact::decrypt(black_box(&e.token), &e.tg_decrypt_key, &e.tg_options)
                    .unwrap()
            })
        });
        g.bench_function(JOSEKIT, |b| {
            b.iter(|| {
                josekit::jwe::deserialize_compact(black_box(&e.token), &*e.jk_decrypter).unwrap()
            })
        });
        g.bench_function(FLOOR, |b| {
            b.iter(|| floor_decrypt(&e.floor, e.enc, black_box(&e.parts)).unwrap())
        });
        g.finish();
    }
    {
        let mut g = c.benchmark_group(format!("decrypt/{NESTED}"));
        g.bench_function(TOKENGATE, |b| {
            b.iter(|| {
                jose::jwt::decrypt_and_verify(
                    black_box(&nested.token),
                    &rsa.tg_decrypt_key,
                    &rsa.tg_options,
                    &es256.tg_public,
                    &es256.tg_validation,
                )
                .unwrap()
            })
        });
        g.bench_function(JOSEKIT, |b| {
            b.iter(|| {
                let (inner, header) =
                    josekit::jwe::deserialize_compact(black_box(&nested.token), &*rsa.jk_decrypter)
                        .unwrap();
                assert_eq!(header.content_type(), Some("JWT"));
                let (payload, header) =
                    josekit::jwt::decode_with_verifier(&inner, &*es256.jk_verifier).unwrap();
                es256.jk_validator.validate(&payload).unwrap();
                (payload, header)
            })
        });
        g.bench_function(FLOOR, |b| {
            b.iter(|| {
                nested
                    .floor_decrypt_parts(black_box(&nested.parts))
                    .unwrap()
            })
        });
        g.finish();
    }

    for e in &encs {
        let mut g = c.benchmark_group(format!("encrypt/{}", e.name));
        g.bench_function(TOKENGATE, |b| {
            b.iter(|| e.tg_encrypt(black_box(&plaintext)))
        });
        g.bench_function(JOSEKIT, |b| b.iter(|| e.jk_encrypt(black_box(&plaintext))));
        g.bench_function(FLOOR, |b| {
            b.iter(|| floor_encrypt(&e.floor, e.enc, &e.parts.aad, black_box(&plaintext)))
        });
        g.finish();
    }
    {
        // The floor signs the same signing input and encrypts a plaintext of the inner token's
        // length; it builds neither JSON nor base64.
        let inner = floor_decrypt(&rsa.floor, rsa.enc, &nested.parts).unwrap();
        let (inner_input, _) = split_jws(std::str::from_utf8(&inner).unwrap());
        let mut g = c.benchmark_group(format!("encrypt/{NESTED}"));
        g.bench_function(TOKENGATE, |b| {
            b.iter(|| nested.tg_encrypt(black_box(&claims)))
        });
        g.bench_function(JOSEKIT, |b| b.iter(|| nested.jk_encrypt()));
        g.bench_function(FLOOR, |b| {
            b.iter(|| {
                let sig = es256.floor_signer.sign(&rng, black_box(&inner_input));
                let sealed = floor_encrypt(&rsa.floor, rsa.enc, &nested.parts.aad, &inner);
                (sig, sealed)
            })
        });
        g.finish();
    }
}

fn config() -> Criterion {
    // Short runs: the whole suite must fit in about ten minutes on two shared cores. Command-line
    // options (`--quick`, `--test`, `--measurement-time`, ...) still override these.
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50)
        .without_plots()
}

criterion_group! {
    name = benches;
    config = config();
    targets = jose
}
criterion_main!(benches);
