//! perfpilot's profiling agent.
//!
//! [`session::Session`] runs the BPF sampler, keeps [`tracker::Tracker`]
//! up to date with the processes it samples (their mappings and unwind
//! tables), names frames with [`symbolize::Symbolizer`], labels samples
//! from /proc and cgroups, and turns drains into a [`perfpilot_model::Profile`].
//! [`daemon::Daemon`] runs a session continuously, shipping a profile every
//! interval from a thread of its own ([`ship::Shipper`]).

pub mod aggregate;
pub mod alloc;
pub mod budget;
pub mod capture;
pub mod cgroup;
pub mod command;
pub mod daemon;
pub mod kallsyms;
pub mod late;
pub mod memory;
pub mod objects;
pub mod perfmap;
pub mod procfs;
pub mod python;
pub mod session;
pub mod ship;
pub mod symbolize;
pub mod tables;
pub mod tracker;

pub use daemon::{Daemon, DaemonConfig, DaemonEvent, DaemonHandle, DaemonStats};
pub use session::{AgentError, Scope, Session, SessionConfig, SessionReport};
