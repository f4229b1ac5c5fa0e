//! Fuzz protocol detection: arbitrary first bytes of a connection. Detection must never
//! panic, and a decision must be stable: more bytes never change a decided answer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use plexus_proxy::detect::{Detected, detect};

fuzz_target!(|data: &[u8]| {
    let whole = detect(data);
    for cut in [1, 2, 8, 24, data.len() / 2] {
        let Some(prefix) = data.get(..cut) else {
            continue;
        };
        let early = detect(prefix);
        if early != Detected::NeedMore {
            assert_eq!(early, whole, "a decision on {cut} bytes changed with more");
        }
    }
});
