//! Label keys perfpilot puts on every sample it records.

pub const PID: &str = "pid";
pub const TID: &str = "tid";
pub const THREAD_NAME: &str = "thread_name";
pub const PROCESS_NAME: &str = "process_name";
pub const EXE: &str = "exe";
pub const BUILD_ID: &str = "build_id";
pub const CGROUP: &str = "cgroup";
pub const CONTAINER_ID: &str = "container_id";
pub const SYSTEMD_UNIT: &str = "systemd_unit";
pub const POD_UID: &str = "pod_uid";

/// The service a sample belongs to, as the server groups profiles: the
/// systemd service, else the process name.
pub const SERVICE_NAME: &str = "service_name";
