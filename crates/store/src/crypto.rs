//! The master key (encryption of private keys at rest) and keyed hashes of client secrets.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::Path;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::hmac;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::StoreError;

/// Length of a master key in bytes (AES-256).
pub const MASTER_KEY_LEN: usize = 32;

/// Length of a client secret hash (HMAC-SHA-256) in bytes.
pub const SECRET_HASH_LEN: usize = 32;

/// First byte of every sealed value: the format (AES-256-GCM, 96-bit random nonce). A later
/// format (another AEAD, a key identifier for master key rotation) takes another number.
const SEALED_V1: u8 = 1;
const TAG_LEN: usize = 16;

/// AAD prefix of a private key's ciphertext; the kid follows. The prefix keeps key ciphertexts
/// and the check value (and anything sealed later) from standing in for each other.
const KEY_AAD_PREFIX: &[u8] = b"tokengate/keys/";
/// AAD of the master key check value.
const CHECK_AAD: &[u8] = b"tokengate/meta/master_key_check";
/// The plaintext of the check value.
const CHECK_PLAINTEXT: &[u8] = b"tokengate master key check v1";

/// The 32-byte key that encrypts private keys at rest (AES-256-GCM).
///
/// Zeroized on drop; `Debug` does not print it. Keep it outside the database: in a file
/// ([`MasterKey::load_or_create_file`]) or in the environment ([`MasterKey::from_base64`]).
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct MasterKey([u8; MASTER_KEY_LEN]);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// A master key from raw bytes.
    pub fn from_bytes(bytes: [u8; MASTER_KEY_LEN]) -> MasterKey {
        MasterKey(bytes)
    }

    /// A new random master key.
    pub fn generate() -> Result<MasterKey, StoreError> {
        let mut key = MasterKey([0; MASTER_KEY_LEN]);
        aws_lc_rs::rand::fill(&mut key.0)
            .map_err(|_| StoreError::Crypto("random generator failed"))?;
        Ok(key)
    }

    /// Parses the base64 (standard alphabet, padded) of exactly 32 bytes. Leading and
    /// trailing whitespace (a file's final newline) is ignored.
    ///
    /// The error says only that the text is not a master key: never which character was
    /// wrong, since that would leak part of the secret.
    pub fn from_base64(text: &str) -> Result<MasterKey, StoreError> {
        let decoded = Zeroizing::new(
            STANDARD
                .decode(text.trim())
                .map_err(|_| StoreError::MasterKeyFormat)?,
        );
        let bytes: [u8; MASTER_KEY_LEN] = decoded
            .as_slice()
            .try_into()
            .map_err(|_| StoreError::MasterKeyFormat)?;
        Ok(MasterKey(bytes))
    }

    /// The key as base64 (standard alphabet, padded), the form [`MasterKey::from_base64`] reads.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(self.0))
    }

    /// Reads the master key from `path`, or, when the file does not exist, generates one and
    /// writes it there (base64 and a newline; on unix with mode 0600, created exclusively so
    /// an existing file is never overwritten). Parent directories are created. Returns the
    /// key and whether this call created the file.
    pub fn load_or_create_file(path: impl AsRef<Path>) -> Result<(MasterKey, bool), StoreError> {
        let path = path.as_ref();
        let file_error = |source: io::Error| StoreError::MasterKeyFile {
            path: path.to_path_buf(),
            source,
        };
        match fs::File::open(path) {
            Ok(file) => return Self::read_private(path, file).map(|key| (key, false)),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(file_error(err)),
        }

        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            crate::private::create_dirs(parent).map_err(file_error)?;
        }
        let key = MasterKey::generate()?;
        let mut file = match crate::private::create_new(path) {
            Ok(file) => file,
            // Another process created it between our read and our create: use theirs.
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                let file = fs::File::open(path).map_err(file_error)?;
                return Self::read_private(path, file).map(|key| (key, false));
            }
            Err(err) => return Err(file_error(err)),
        };
        file.write_all(key.to_base64().as_bytes())
            .and_then(|()| file.write_all(b"\n"))
            .map_err(file_error)?;
        file.sync_all().map_err(file_error)?;
        Ok((key, true))
    }

    /// Reads the key from its open file, refusing one that group or others may open.
    fn read_private(path: &Path, mut file: fs::File) -> Result<MasterKey, StoreError> {
        let file_error = |source: io::Error| StoreError::MasterKeyFile {
            path: path.to_path_buf(),
            source,
        };
        if !file.metadata().map_err(file_error)?.is_file() {
            return Err(file_error(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            )));
        }
        if let Some(mode) = crate::private::open_to_others(&file).map_err(file_error)? {
            return Err(StoreError::MasterKeyExposed {
                path: path.to_path_buf(),
                mode,
            });
        }
        let mut text = Zeroizing::new(String::new());
        io::Read::read_to_string(&mut file, &mut text).map_err(file_error)?;
        MasterKey::from_base64(&text)
    }

    /// A 32-byte key for another purpose, derived from the master key (HMAC-SHA-256 of
    /// `purpose`): the client-secret pepper, the DPoP nonce key. Every node holding the master
    /// key derives the same one; none of them is stored.
    pub fn derive(&self, purpose: &str) -> Zeroizing<[u8; 32]> {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.0);
        let tag = hmac::sign(&key, format!("tokengate/derive/{purpose}").as_bytes());
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(tag.as_ref());
        out
    }

    fn aead_key(&self) -> Result<LessSafeKey, StoreError> {
        let key = UnboundKey::new(&AES_256_GCM, &self.0)
            .map_err(|_| StoreError::Crypto("AES-256-GCM key setup failed"))?;
        Ok(LessSafeKey::new(key))
    }

    /// Seals `plaintext`: `SEALED_V1 || nonce || ciphertext || tag`.
    fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, StoreError> {
        let key = self.aead_key()?;
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce)
            .map_err(|_| StoreError::Crypto("random generator failed"))?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + plaintext.len() + TAG_LEN);
        out.push(SEALED_V1);
        out.extend_from_slice(&nonce);
        let mut in_out = Vec::with_capacity(plaintext.len() + TAG_LEN);
        in_out.extend_from_slice(plaintext);
        let sealed = key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut in_out,
        );
        if sealed.is_err() {
            in_out.zeroize();
            return Err(StoreError::Crypto("AES-256-GCM seal failed"));
        }
        out.extend_from_slice(&in_out);
        Ok(out)
    }

    /// Opens what [`MasterKey::seal`] produced with the same AAD.
    fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        let Some((&version, rest)) = sealed.split_first() else {
            return Err(StoreError::Corrupt("empty ciphertext", None));
        };
        if version != SEALED_V1 {
            return Err(StoreError::Corrupt("unknown ciphertext format", None));
        }
        if rest.len() < NONCE_LEN + TAG_LEN {
            return Err(StoreError::Corrupt("ciphertext too short", None));
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| StoreError::Corrupt("ciphertext nonce", None))?;
        let key = self.aead_key()?;
        let mut in_out = Zeroizing::new(ciphertext.to_vec());
        let len = key
            .open_in_place(nonce, Aad::from(aad), &mut in_out)
            .map_err(|_| StoreError::WrongMasterKey)?
            .len();
        in_out.truncate(len);
        Ok(in_out)
    }

    /// Seals a private JWK for the key `kid` (the kid is bound as AAD).
    pub(crate) fn seal_private_key(&self, kid: &str, jwk: &[u8]) -> Result<Vec<u8>, StoreError> {
        self.seal(&key_aad(kid), jwk)
    }

    /// Opens a private key sealed for `kid`.
    pub(crate) fn open_private_key(
        &self,
        kid: &str,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        self.open(&key_aad(kid), sealed)
    }

    /// A fresh check value for this key.
    pub(crate) fn check_value(&self) -> Result<Vec<u8>, StoreError> {
        self.seal(CHECK_AAD, CHECK_PLAINTEXT)
    }

    /// Whether `sealed` is a check value made by this key.
    pub(crate) fn verify_check_value(&self, sealed: &[u8]) -> Result<(), StoreError> {
        let plaintext = self.open(CHECK_AAD, sealed)?;
        if plaintext.as_slice() == CHECK_PLAINTEXT {
            Ok(())
        } else {
            Err(StoreError::Corrupt("master key check value", None))
        }
    }
}

fn key_aad(kid: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(KEY_AAD_PREFIX.len() + kid.len());
    aad.extend_from_slice(KEY_AAD_PREFIX);
    aad.extend_from_slice(kid.as_bytes());
    aad
}

/// The stored form of a client secret: HMAC-SHA-256 of the secret under the server's pepper.
///
/// Client secrets are generated by the server with at least 128 bits of entropy, so a
/// password hash (Argon2, bcrypt) buys nothing: no dictionary exists to slow down. The pepper
/// lives outside the database, so a leaked database alone does not let anyone test guesses.
pub fn hash_secret(pepper: &[u8], secret: &[u8]) -> Vec<u8> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, pepper);
    hmac::sign(&key, secret).as_ref().to_vec()
}

/// Whether `secret` hashes to `stored` under `pepper`, compared in constant time
/// (aws-lc-rs `hmac::verify`).
pub fn verify_secret(pepper: &[u8], secret: &[u8], stored: &[u8]) -> bool {
    let key = hmac::Key::new(hmac::HMAC_SHA256, pepper);
    hmac::verify(&key, secret, stored).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trip_and_refusals() {
        let key = MasterKey::generate().unwrap();
        let text = key.to_base64();
        let back = MasterKey::from_base64(&format!("{}\n", text.as_str())).unwrap();
        assert_eq!(back.0, key.0);
        // 31 and 33 bytes, URL-safe alphabet, garbage.
        assert!(matches!(
            MasterKey::from_base64(&STANDARD.encode([7u8; 31])),
            Err(StoreError::MasterKeyFormat)
        ));
        assert!(matches!(
            MasterKey::from_base64(&STANDARD.encode([7u8; 33])),
            Err(StoreError::MasterKeyFormat)
        ));
        let url_safe = base64::engine::general_purpose::URL_SAFE.encode([0xfbu8; 32]);
        assert!(matches!(
            MasterKey::from_base64(&url_safe),
            Err(StoreError::MasterKeyFormat)
        ));
        assert!(matches!(
            MasterKey::from_base64("not base64 at all!"),
            Err(StoreError::MasterKeyFormat)
        ));
        assert_eq!(format!("{key:?}"), "MasterKey(..)");
    }

    #[test]
    fn seal_binds_kid_and_key() {
        let key = MasterKey::generate().unwrap();
        let sealed = key.seal_private_key("k1", b"{\"d\":\"secret\"}").unwrap();
        assert_eq!(
            key.open_private_key("k1", &sealed).unwrap().as_slice(),
            b"{\"d\":\"secret\"}"
        );
        assert!(matches!(
            key.open_private_key("k2", &sealed),
            Err(StoreError::WrongMasterKey)
        ));
        let other = MasterKey::generate().unwrap();
        assert!(matches!(
            other.open_private_key("k1", &sealed),
            Err(StoreError::WrongMasterKey)
        ));
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        // AES-GCM cannot tell a modified ciphertext from a wrong key.
        assert!(matches!(
            key.open_private_key("k1", &tampered),
            Err(StoreError::WrongMasterKey)
        ));
        assert!(matches!(
            key.open_private_key("k1", &sealed[..10]),
            Err(StoreError::Corrupt("ciphertext too short", None))
        ));
        let mut v2 = sealed;
        v2[0] = 2;
        assert!(matches!(
            key.open_private_key("k1", &v2),
            Err(StoreError::Corrupt("unknown ciphertext format", None))
        ));
        // Two seals of the same plaintext differ (random nonce).
        assert_ne!(
            key.seal_private_key("k1", b"x").unwrap(),
            key.seal_private_key("k1", b"x").unwrap()
        );
    }

    #[test]
    fn check_value_is_not_a_key_ciphertext() {
        let key = MasterKey::generate().unwrap();
        let check = key.check_value().unwrap();
        key.verify_check_value(&check).unwrap();
        // The AAD differs, so the tag does not verify.
        assert!(matches!(
            key.open_private_key("", &check),
            Err(StoreError::WrongMasterKey)
        ));
    }

    #[test]
    fn derived_keys_differ_by_purpose_and_master() {
        let a = MasterKey::from_bytes([1; MASTER_KEY_LEN]);
        let b = MasterKey::from_bytes([2; MASTER_KEY_LEN]);
        assert_eq!(*a.derive("pepper"), *a.derive("pepper"));
        assert_ne!(*a.derive("pepper"), *a.derive("dpop-nonce"));
        assert_ne!(*a.derive("pepper"), *b.derive("pepper"));
    }

    #[test]
    fn secret_hash() {
        let hash = hash_secret(b"pepper", b"s3cret");
        assert_eq!(hash.len(), SECRET_HASH_LEN);
        assert!(verify_secret(b"pepper", b"s3cret", &hash));
        assert!(!verify_secret(b"pepper", b"s3creT", &hash));
        assert!(!verify_secret(b"other pepper", b"s3cret", &hash));
        assert!(!verify_secret(b"pepper", b"s3cret", &hash[..31]));
    }

    #[test]
    fn master_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/dir/master.key");
        let (created, was_created) = MasterKey::load_or_create_file(&path).unwrap();
        assert!(was_created);
        let (loaded, was_created) = MasterKey::load_or_create_file(&path).unwrap();
        assert!(!was_created);
        assert_eq!(created.0, loaded.0);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Open to group or others: refused, with the chmod that fixes it.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
            let err = MasterKey::load_or_create_file(&path).err().unwrap();
            assert_eq!(err.code(), "ERR_STORE_MASTER_KEY_EXPOSED");
            assert_eq!(
                err.to_string(),
                format!(
                    "master key file {} is open to group or others (mode 644): run `chmod 600 {}`",
                    path.display(),
                    path.display()
                )
            );
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
            let parent = fs::metadata(path.parent().unwrap()).unwrap().permissions();
            assert_eq!(parent.mode() & 0o777, 0o700);
        }
        fs::write(&path, "short\n").unwrap();
        assert!(matches!(
            MasterKey::load_or_create_file(&path),
            Err(StoreError::MasterKeyFormat)
        ));
        // A directory where the file should be: an I/O error naming the path.
        let err = MasterKey::load_or_create_file(dir.path()).unwrap_err();
        assert_eq!(err.code(), "ERR_STORE_MASTER_KEY_FILE");
    }
}
