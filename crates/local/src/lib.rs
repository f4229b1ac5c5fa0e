//! `plexus-local`: a whole mesh on one machine (`plexus up`, `plexus exec`, `plexus down`).
//!
//! Decide, then do: [`spec`] reads the user's directory, [`plan`] allocates addresses and each
//! replica's environment, [`generate`] writes the config the control plane watches; only then
//! does [`up`] start processes under the [`supervise`] supervisor and record them in the
//! [`state`] file that `exec` and `down` read. [`status`] renders the live table; [`chain`] is
//! the echo server's upstream-calling mode used by the Bookinfo example; [`netns`] creates and
//! removes network namespaces and veths, [`capture`] installs the iptables capture and hosts
//! file inside one.

pub mod capture;
pub mod chain;
pub mod generate;
pub mod netmode;
pub mod netns;
pub mod plan;
pub mod procs;
pub mod spec;
pub mod state;
pub mod status;
pub mod supervise;
pub mod up;

/// Errors of the local mesh; each names the file, object, process or address involved.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// The user's directory holds something `up` cannot run.
    #[error("{0}")]
    Config(String),
    /// Wrong command-line use (unknown replica, no running mesh, ...).
    #[error("{0}")]
    Usage(String),
    /// A process could not be started.
    #[error("{0}")]
    Spawn(String),
    /// Reading or writing the run dir.
    #[error("{0}")]
    Io(String),
    /// Something did not become ready in time.
    #[error("{0}")]
    Timeout(String),
    /// A network namespace, veth or iptables command failed.
    #[error("{0}")]
    Net(String),
}
