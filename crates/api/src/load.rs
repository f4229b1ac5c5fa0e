//! Read config objects from files, directories (recursively) and stdin.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::object::{Diagnostic, Level, Object};
use crate::yaml::{self, Pos};

/// Everything read: the objects that have an envelope, and the problems found while reading.
#[derive(Debug, Default)]
pub struct Loaded {
    pub objects: Vec<Object>,
    pub diagnostics: Vec<Diagnostic>,
}

impl Loaded {
    pub fn extend(&mut self, other: Loaded) {
        self.objects.extend(other.objects);
        self.diagnostics.extend(other.diagnostics);
    }
}

/// File names that hold config: YAML and JSON.
pub fn is_config_file(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

/// Parse one text. `path` is only used to name the source in objects and diagnostics.
pub fn load_str(text: &str, path: &str) -> Loaded {
    let path: Arc<str> = Arc::from(path);
    let (docs, err) = yaml::parse_stream(text);
    let mut out = Loaded::default();
    for doc in docs {
        let Some(root) = doc.root else { continue };
        match Object::from_node(root, path.clone()) {
            Ok(obj) => out.objects.push(obj),
            Err(d) => out.diagnostics.push(*d),
        }
    }
    if let Some(e) = err {
        out.diagnostics.push(Diagnostic {
            path: path.clone(),
            pos: e.pos,
            level: Level::Error,
            subject: None,
            message: format!("invalid YAML: {}", e.message),
        });
    }
    out
}

/// Read one file.
pub fn load_file(path: &Path) -> Loaded {
    let name = path.display().to_string();
    match std::fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => load_str(&text, &name),
            Err(_) => io_problem(&name, "file is not UTF-8 text".into()),
        },
        Err(e) => io_problem(&name, format!("cannot read: {e}")),
    }
}

/// Read files and directories (recursively, `*.yaml`, `*.yml`, `*.json`, in sorted order);
/// `-` reads stdin.
pub fn load_paths(paths: &[PathBuf]) -> Loaded {
    let mut out = Loaded::default();
    for p in paths {
        if p.as_os_str() == "-" {
            let mut text = String::new();
            match std::io::stdin().read_to_string(&mut text) {
                Ok(_) => out.extend(load_str(&text, "-")),
                Err(e) => out.extend(io_problem("-", format!("cannot read stdin: {e}"))),
            }
        } else if p.is_dir() {
            for file in config_files(p) {
                out.extend(load_file(&file));
            }
        } else {
            out.extend(load_file(p));
        }
    }
    out
}

/// Config files below a directory, sorted, skipping hidden entries.
pub fn config_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            let hidden = e.file_name().to_string_lossy().starts_with('.');
            if hidden {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else if is_config_file(&path) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn io_problem(path: &str, message: String) -> Loaded {
    Loaded {
        objects: Vec::new(),
        diagnostics: vec![Diagnostic {
            path: Arc::from(path),
            pos: Pos { line: 1, col: 1 },
            level: Level::Error,
            subject: None,
            message,
        }],
    }
}
