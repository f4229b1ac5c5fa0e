//! Fuzz the config loader and single-object validation: any bytes in, diagnostics out, never a
//! panic. Run: `cargo fuzz run -s none yaml_loader` from the repository root (stable toolchain).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let loaded = plexus_api::load_str(text, "fuzz.yaml");
        let _ = plexus_api::validate_all(&loaded, plexus_api::Options::default());
    }
});
