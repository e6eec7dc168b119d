//! `zip: "DEF"` (RFC 1951 raw DEFLATE). Inflation reads at most the cap plus one byte, so a
//! decompression bomb costs bounded memory and time and fails cleanly.

use std::io::{Read as _, Write as _};

use flate2::read::DeflateDecoder;
use flate2::write::DeflateEncoder;
use flate2::Compression;

use crate::error::{err, Result};

/// Default cap on inflated plaintext.
pub const DEFAULT_MAX_INFLATED: usize = 256 * 1024;

pub(crate) fn deflate(data: &[u8]) -> Result<Vec<u8>> {
    let mut enc = DeflateEncoder::new(Vec::new(), Compression::default());
    enc.write_all(data)
        .map_err(|_| err!(Crypto, "compression failed"))?;
    enc.finish().map_err(|_| err!(Crypto, "compression failed"))
}

pub(crate) fn inflate(data: &[u8], cap: usize) -> Result<Vec<u8>> {
    let limit = u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1);
    let mut out = Vec::new();
    DeflateDecoder::new(data)
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|_| err!(JweInvalid, "the compressed plaintext is not valid DEFLATE"))?;
    if out.len() > cap {
        return Err(err!(
            TooLarge,
            "the plaintext inflates beyond the {cap}-byte limit"
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_cap() {
        let data = vec![b'a'; 10_000];
        let packed = deflate(&data).unwrap();
        assert!(packed.len() < 200);
        assert_eq!(inflate(&packed, 10_000).unwrap(), data);
        assert_eq!(
            inflate(&packed, 9_999).unwrap_err().code(),
            crate::ErrorCode::TooLarge
        );
        assert_eq!(
            inflate(b"not deflate at all \xff\xff", 100).unwrap_err(),
            err!(JweInvalid, "the compressed plaintext is not valid DEFLATE")
        );
    }
}
