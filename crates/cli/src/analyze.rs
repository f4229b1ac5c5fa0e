//! `plexus analyze PATH... [--meshconfig FILE] [--meshnetworks FILE] [--output text|json]`

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use plexus_api::load_paths;
use plexus_pilot::analysis::{Options, validate_and_analyze};
use plexus_pilot::{Level, MeshConfig, MeshNetworks, Message};

use crate::OutputFormat;

/// Exit status when the mesh config or mesh networks file cannot be used.
const EXIT_BAD_SETTINGS: u8 = 2;

/// Print the messages; exit 1 when any is an error, 2 when a settings file is unusable.
pub fn run(
    paths: &[PathBuf],
    meshconfig: Option<&Path>,
    meshnetworks: Option<&Path>,
    output: OutputFormat,
) -> ExitCode {
    let mut opts = Options {
        default_namespace: Some("default".into()),
        default_ingress: true,
        ..Options::default()
    };
    if let Some(path) = meshconfig {
        match MeshConfig::load(path) {
            Ok((mesh, unused)) => {
                if !unused.is_empty() {
                    eprintln!(
                        "{}: note: MeshConfig fields not used by analysis: {}",
                        path.display(),
                        unused.join(", ")
                    );
                }
                opts.mesh = mesh;
            }
            Err(e) => {
                eprintln!("error: mesh config: {e}");
                return ExitCode::from(EXIT_BAD_SETTINGS);
            }
        }
    }
    if let Some(path) = meshnetworks {
        match MeshNetworks::load(path) {
            Ok(n) => opts.networks = Some(n),
            Err(e) => {
                eprintln!("error: mesh networks: {e}");
                return ExitCode::from(EXIT_BAD_SETTINGS);
            }
        }
    }
    let loaded = load_paths(paths);
    let messages = validate_and_analyze(&loaded, &opts);
    match output {
        OutputFormat::Text => {
            for m in &messages {
                if !crate::output::println(&text_line(m)) {
                    break;
                }
            }
        }
        OutputFormat::Json => match serde_json::to_string_pretty(&messages) {
            Ok(json) => {
                crate::output::println(&json);
            }
            Err(e) => {
                eprintln!("error: cannot encode messages as JSON: {e}");
                return ExitCode::FAILURE;
            }
        },
    }
    if messages.iter().any(|m| m.level == Level::Error) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// `PATH:LINE: Level [CODE] (Kind ns/name) message`; the location and resource parts are left
/// out when a message has none (e.g. about MeshNetworks).
fn text_line(m: &Message) -> String {
    let mut line = String::new();
    if !m.path.is_empty() {
        line.push_str(&format!("{}:{}: ", m.path, m.line));
    }
    line.push_str(&format!("{} [{}] ", m.level, m.code));
    if !m.resource.is_empty() {
        line.push_str(&format!("({}) ", m.resource));
    }
    line.push_str(&m.message);
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_line_shape() {
        let m = Message {
            code: "IST0101",
            level: Level::Error,
            message: "Referenced host not found: \"x\"".into(),
            resource: "VirtualService ns/vs".into(),
            path: "a.yaml".into(),
            line: 7,
            analyzer: "virtualservice.DestinationHostAnalyzer",
        };
        assert_eq!(
            text_line(&m),
            "a.yaml:7: Error [IST0101] (VirtualService ns/vs) Referenced host not found: \"x\""
        );
        let m = Message {
            path: String::new(),
            resource: String::new(),
            ..m
        };
        assert_eq!(
            text_line(&m),
            "Error [IST0101] Referenced host not found: \"x\""
        );
    }
}
