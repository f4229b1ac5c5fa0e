//! Writing command output to stdout. A reader that goes away (`plexus ... | head`) ends the
//! output quietly instead of panicking, as `println!` would on a closed pipe.

use std::io::Write;

/// Write `text` to stdout; false when stdout is closed (stop writing then).
pub fn print(text: &str) -> bool {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .is_ok()
}

/// `print` with a newline.
pub fn println(text: &str) -> bool {
    print(&format!("{text}\n"))
}
