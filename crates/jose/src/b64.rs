//! Strict base64url (RFC 7515 §2, RFC 4648 §5): no padding, no whitespace, no characters
//! outside the URL-safe alphabet, and no non-canonical trailing bits (so one byte string has
//! exactly one encoding and a token cannot be altered without changing its bytes' meaning).

use std::borrow::Cow;

use base64::alphabet::URL_SAFE;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;

use crate::error::{err, Result};

const ENGINE: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(false),
);

/// Encodes bytes as unpadded base64url.
pub fn encode(bytes: impl AsRef<[u8]>) -> String {
    ENGINE.encode(bytes)
}

/// Appends the unpadded base64url encoding of `bytes` to `out`.
pub fn encode_into(bytes: impl AsRef<[u8]>, out: &mut String) {
    ENGINE.encode_string(bytes, out);
}

/// Decodes strict unpadded base64url.
pub fn decode(text: impl AsRef<[u8]>) -> Result<Vec<u8>> {
    ENGINE
        .decode(text)
        .map_err(|_| err!(Base64Invalid, "not strict unpadded base64url"))
}

/// Decodes strict unpadded base64url into `buf` when it fits (saving an allocation on hot
/// paths), else into a new `Vec`.
pub(crate) fn decode_buf<'a>(text: &str, buf: &'a mut [u8]) -> Result<Cow<'a, [u8]>> {
    if text.len() / 4 * 3 + 3 <= buf.len() {
        let len = ENGINE
            .decode_slice(text, &mut *buf)
            .map_err(|_| err!(Base64Invalid, "not strict unpadded base64url"))?;
        return buf
            .get(..len)
            .map(Cow::Borrowed)
            .ok_or_else(|| err!(Base64Invalid, "not strict unpadded base64url"));
    }
    decode(text).map(Cow::Owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one refusal of strict base64url, from either decoder.
    fn invalid() -> crate::Error {
        err!(Base64Invalid, "not strict unpadded base64url")
    }

    #[test]
    fn round_trips() {
        for len in 0..40 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 % 256) as u8).collect();
            assert_eq!(decode(encode(&bytes)).unwrap(), bytes);
            for buf_len in [0, 8, 64] {
                let mut buf = vec![0u8; buf_len];
                assert_eq!(&*decode_buf(&encode(&bytes), &mut buf).unwrap(), &bytes[..]);
            }
        }
    }

    #[test]
    fn rejects_padding_whitespace_and_standard_alphabet() {
        for bad in [
            "Zm9v=", "Zm8=", "Zm 9v", "Zm9v\n", "a+b/", "Zg==", "\u{0}", "Zh", "A",
        ] {
            assert_eq!(
                decode(bad).unwrap_err(),
                invalid(),
                "{bad:?} must be rejected"
            );
            assert_eq!(
                decode_buf(bad, &mut [0u8; 64]).unwrap_err(),
                invalid(),
                "{bad:?} must be rejected"
            );
        }
    }

    #[test]
    fn rejects_non_canonical_trailing_bits() {
        // "Zg" is the canonical encoding of "f"; "Zh" decodes to the same byte with a stray bit.
        assert_eq!(decode("Zg").unwrap(), b"f");
        assert_eq!(decode("Zh").unwrap_err(), invalid());
        assert_eq!(decode("Zm8").unwrap(), b"fo");
        assert_eq!(decode("Zm9").unwrap_err(), invalid());
        assert_eq!(
            decode("A").unwrap_err(),
            invalid(),
            "a lone sextet is never valid"
        );
    }
}
