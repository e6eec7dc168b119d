//! The strict JSON reader: whatever it accepts, serde_json accepts as the same value (it is a
//! stricter reading of the same grammar, never a different one).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(strict) = jose::json::parse(data) {
        let lax: serde_json::Value =
            serde_json::from_slice(data).expect("what the strict reader accepts is JSON");
        assert_eq!(strict, lax, "the two readings differ");
    }
    let _ = jose::json::parse_object(data, "fuzz");
});
