//! `plexus validate PATH...`

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use plexus_api::{Level, Options, load_paths, validate_all};

/// Print one line per problem (errors on stdout, warnings on stderr); exit 1 when any is an error.
/// A closed pipe (`| head`) ends the output quietly.
pub fn run(paths: &[PathBuf], strict: bool) -> ExitCode {
    let loaded = load_paths(paths);
    let diags = validate_all(&loaded, Options { strict });
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr().lock();
    let mut errors = 0usize;
    for d in &diags {
        let written = if d.level == Level::Error {
            errors += 1;
            writeln!(stdout, "{d}")
        } else {
            writeln!(stderr, "{d}")
        };
        if written.is_err() {
            break;
        }
    }
    if errors > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
