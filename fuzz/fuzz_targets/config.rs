//! The configuration file: any text is parsed or refused with a located error, never a
//! panic; what parses converts to the gateway's table and shows its effective settings.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = tokengate::config::Config::parse(text, "fuzz.toml") {
        let _ = config.effective();
        let _ = config.table().warnings();
    }
});
