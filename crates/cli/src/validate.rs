//! `plexus validate PATH...`

use std::path::PathBuf;
use std::process::ExitCode;

use plexus_api::{Level, Options, load_paths, validate_all};

/// Print one line per problem; exit 1 when any is an error.
pub fn run(paths: &[PathBuf], strict: bool) -> ExitCode {
    let loaded = load_paths(paths);
    let diags = validate_all(&loaded, Options { strict });
    let mut errors = 0usize;
    for d in &diags {
        if d.level == Level::Error {
            errors += 1;
            println!("{d}");
        } else {
            eprintln!("{d}");
        }
    }
    if errors > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
