//! An issuer's metadata document (RFC 8414 / OpenID discovery), as fetched for its
//! `jwks_uri`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(uri) = gateway::keys::jwks_uri_of(
        data,
        "https://idp.example",
        "https://idp.example/.well-known/openid-configuration",
    ) {
        let doc: serde_json::Value =
            serde_json::from_slice(data).expect("accepted metadata is JSON");
        assert_eq!(doc["issuer"], "https://idp.example");
        assert_eq!(doc["jwks_uri"], uri.as_str());
    }
});
