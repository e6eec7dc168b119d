//! The token endpoint's form bodies and HTTP Basic credentials.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oauth::form::Params;

fuzz_target!(|data: &[u8]| {
    if let Ok(params) = Params::parse(data, &["resource"]) {
        let _ = params.get("grant_type");
        let _ = params.all("resource");
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = oauth::basic_credentials(text);
    }
});
