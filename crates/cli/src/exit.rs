//! Exit codes: each kind of failure a user can act on has its own.

use perfpilot_agent::AgentError;
use perfpilot_bpf::BpfError;

pub const FAILURE: i32 = 1;
/// Bad command line (clap's own code).
pub const USAGE: i32 = 2;
/// Not root, or missing CAP_BPF / CAP_PERFMON.
pub const PERMISSION: i32 = 3;
/// The kernel lacks BTF, perf events or a BPF feature perfpilot needs.
pub const KERNEL: i32 = 4;
/// A `--pid` that does not exist.
pub const NO_SUCH_PROCESS: i32 = 5;
/// An input file that cannot be read or parsed.
pub const BAD_INPUT: i32 = 6;
/// The command after `--` was not found (the shell's convention).
pub const COMMAND_NOT_FOUND: i32 = 127;

/// An error with the exit code it deserves.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub error: anyhow::Error,
}

impl Failure {
    pub fn new(code: i32, error: impl Into<anyhow::Error>) -> Self {
        Failure {
            code,
            error: error.into(),
        }
    }
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        Failure {
            code: FAILURE,
            error,
        }
    }
}

impl From<AgentError> for Failure {
    fn from(e: AgentError) -> Self {
        let code = match &e {
            AgentError::NoSuchProcess(_) => NO_SUCH_PROCESS,
            AgentError::Bpf(b) => bpf_code(b),
            AgentError::SpoolSetup(_)
            | AgentError::Ship(_)
            | AgentError::Thread(_)
            | AgentError::Panicked(_) => FAILURE,
        };
        Failure::new(code, e)
    }
}

impl From<BpfError> for Failure {
    fn from(e: BpfError) -> Self {
        Failure::new(bpf_code(&e), e)
    }
}

fn bpf_code(e: &BpfError) -> i32 {
    match e {
        BpfError::NotPermitted { .. } => PERMISSION,
        BpfError::NoBtf | BpfError::PerfEvent { .. } | BpfError::Load { .. } => KERNEL,
        BpfError::Map { .. } | BpfError::Sysfs { .. } => FAILURE,
    }
}

pub type Result<T> = std::result::Result<T, Failure>;
