//! base64url without padding: only the canonical spelling of some bytes decodes, so encoding
//! what was decoded gives the text back.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(bytes) = jose::b64::decode(data) {
        assert_eq!(
            jose::b64::encode(&bytes).as_bytes(),
            data,
            "a non-canonical spelling decoded"
        );
    }
});
