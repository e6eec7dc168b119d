//! Signed notes against the known-answer vector of Go's `golang.org/x/mod/sumdb/note` (the
//! reference implementation of the format), and checkpoints.

use super::*;
use base64::engine::general_purpose::STANDARD;

const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
/// The private key of the same vector: base64(0x01 ‖ Ed25519 seed).
const PETER_SKEY: &str = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                    then you don't know what your problem is.\n";
const SIGNATURE: &str =
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=";

fn peter() -> NoteSigner {
    let skey = STANDARD.decode(PETER_SKEY).unwrap();
    assert_eq!(skey[0], 0x01);
    NoteSigner::from_seed("PeterNeumann", &skey[1..]).unwrap()
}

fn known_note() -> String {
    format!("{TEXT}\n\u{2014} PeterNeumann {SIGNATURE}\n")
}

#[test]
fn signs_and_names_keys_as_the_reference_does() {
    let signer = peter();
    assert_eq!(signer.verifier().to_string(), PETER_VKEY);
    assert_eq!(signer.verifier().id(), "c74f20a3");
    assert_eq!(signer.sign(TEXT).unwrap(), known_note());
}

#[test]
fn opens_the_reference_note() {
    let key = VerifierKey::parse(PETER_VKEY).unwrap();
    let keys = [key.clone()];
    let (text, by) = open(&known_note(), &keys).unwrap();
    assert_eq!(text, TEXT);
    assert_eq!(by, &key);
}

#[test]
fn refuses_what_is_not_signed_by_a_known_key() {
    let keys = [VerifierKey::parse(PETER_VKEY).unwrap()];
    let other = NoteSigner::from_seed("PeterNeumann", &[7u8; 32]).unwrap();
    assert_eq!(
        open(&other.sign(TEXT).unwrap(), &keys),
        Err(NoteFault::UnknownKey)
    );
    // The text changed after signing.
    let changed = known_note().replacen("cryptography", "cryptograph", 1);
    assert_eq!(open(&changed, &keys), Err(NoteFault::BadSignature));
    // The signature replaced by another of the same key id.
    let mut blob = STANDARD.decode(SIGNATURE).unwrap();
    blob[10] ^= 0x40;
    let forged = format!("{TEXT}\n\u{2014} PeterNeumann {}\n", STANDARD.encode(blob));
    assert_eq!(open(&forged, &keys), Err(NoteFault::BadSignature));
    for broken in [
        TEXT.to_owned(),
        format!("{TEXT}\n- PeterNeumann {SIGNATURE}\n"),
        format!("{TEXT}\n\u{2014} PeterNeumann {SIGNATURE}"),
        format!("{TEXT}\n\u{2014} PeterNeumann !!!\n"),
        format!("{TEXT}\n\u{2014} PeterNeumann AAA=\n"),
        format!("a\rb\n\n\u{2014} PeterNeumann {SIGNATURE}\n"),
    ] {
        assert!(
            matches!(open(&broken, &keys), Err(NoteFault::Malformed(_))),
            "{broken:?}"
        );
    }
}

#[test]
fn verifier_keys_are_checked_when_read() {
    assert!(VerifierKey::parse(PETER_VKEY).is_ok());
    for bad in [
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3+AhRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T",
        "PeterNeumann+c74f20a3",
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ] {
        assert!(VerifierKey::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn checkpoints_read_back_and_refuse_non_canonical_sizes() {
    let c = Checkpoint {
        origin: "auth.example.com/audit".into(),
        size: 42,
        root: [9u8; 32],
    };
    let body = c.body();
    assert_eq!(
        body,
        format!(
            "auth.example.com/audit\n42\n{}\n",
            STANDARD.encode([9u8; 32])
        )
    );
    assert_eq!(Checkpoint::parse(&body).unwrap(), c);
    let with_extension = format!("{}extension line\n", body);
    assert_eq!(Checkpoint::parse(&with_extension).unwrap(), c);
    for bad in [
        "x\n042\nAA==\n",
        "x\n-1\nAA==\n",
        "x\n4\nAA==\n",
        "\n4\n\n",
        "x\n4\n",
    ] {
        assert!(Checkpoint::parse(bad).is_err(), "{bad:?}");
    }
    let signer = peter();
    let note = signer.sign(&body).unwrap();
    let (text, _) = open(&note, std::slice::from_ref(signer.verifier())).unwrap();
    assert_eq!(Checkpoint::parse(&text).unwrap(), c);
}
