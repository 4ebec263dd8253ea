//! What a cgroup path says about where a process runs: container, systemd
//! unit, Kubernetes pod.

/// Labels derived from a cgroup v2 path (or the v1 path of any hierarchy).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupLabels {
    pub container_id: Option<String>,
    pub systemd_unit: Option<String>,
    pub pod_uid: Option<String>,
}

/// The cgroup path of a process from the text of `/proc/PID/cgroup`: the
/// unified (v2) entry `0::/path` when present, else the first v1 entry
/// naming a controller commonly used for containers.
pub fn cgroup_path(proc_cgroup: &str) -> Option<String> {
    let mut fallback = None;
    for line in proc_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if id == "0" && controllers.is_empty() {
            return Some(path.to_string());
        }
        if fallback.is_none()
            && controllers
                .split(',')
                .any(|c| c == "memory" || c == "cpu" || c == "name=systemd" || c == "pids")
        {
            fallback = Some(path.to_string());
        }
    }
    fallback
}

fn is_container_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Derives labels from a cgroup path. Recognised layouts:
/// - docker: `/docker/<id>`, `/system.slice/docker-<id>.scope`
/// - containerd: `cri-containerd-<id>.scope`, `/kubepods/.../<id>`
/// - cri-o: `crio-<id>.scope`, `crio-conmon-<id>.scope` (not a container)
/// - podman: `libpod-<id>.scope`
/// - Kubernetes pods: `kubepods-...-pod<uid_with_underscores>.slice` (systemd
///   driver) or `/kubepods/<qos>/pod<uid>/` (cgroupfs driver)
/// - systemd units: the innermost `*.service` component (or `*.scope` when
///   no service encloses it and it is not a container scope).
pub fn labels_from_path(path: &str) -> CgroupLabels {
    let mut labels = CgroupLabels::default();
    let components: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();

    for comp in components.iter().rev() {
        if labels.container_id.is_some() {
            break;
        }
        let stem = comp.strip_suffix(".scope").unwrap_or(comp);
        for prefix in [
            "docker-",
            "cri-containerd-",
            "crio-",
            "libpod-",
            "containerd-",
        ] {
            if let Some(id) = stem.strip_prefix(prefix) {
                if is_container_id(id) {
                    labels.container_id = Some(id.to_string());
                }
            }
        }
        if labels.container_id.is_none() && is_container_id(comp) {
            labels.container_id = Some(comp.to_string());
        }
    }

    for comp in &components {
        let stem = comp.strip_suffix(".slice").unwrap_or(comp);
        if let Some(pos) = stem.rfind("pod") {
            let uid = &stem[pos + 3..];
            let uid = uid.replace('_', "-");
            if is_pod_uid(&uid) {
                labels.pod_uid = Some(uid);
            }
        }
    }

    labels.systemd_unit = components
        .iter()
        .rev()
        .find(|c| c.ends_with(".service"))
        .or_else(|| {
            components
                .iter()
                .rev()
                .find(|c| c.ends_with(".scope") && labels.container_id.is_none())
        })
        .map(|c| c.to_string());
    labels
}

fn is_pod_uid(s: &str) -> bool {
    // 8-4-4-4-12 hex digits.
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f4e9a6d8c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f";

    #[test]
    fn unified_hierarchy_wins() {
        let text = "12:memory:/user.slice\n0::/system.slice/nginx.service\n";
        assert_eq!(
            cgroup_path(text).as_deref(),
            Some("/system.slice/nginx.service")
        );
        assert_eq!(
            cgroup_path("4:memory:/docker/x\n1:cpuset:/\n").as_deref(),
            Some("/docker/x")
        );
        assert_eq!(cgroup_path("garbage"), None);
    }

    #[test]
    fn systemd_service() {
        let l = labels_from_path("/system.slice/nginx.service");
        assert_eq!(l.systemd_unit.as_deref(), Some("nginx.service"));
        assert_eq!(l.container_id, None);
        assert_eq!(l.pod_uid, None);
        let l = labels_from_path("/user.slice/user-0.slice/session-3.scope");
        assert_eq!(l.systemd_unit.as_deref(), Some("session-3.scope"));
    }

    #[test]
    fn docker_layouts() {
        let l = labels_from_path(&format!("/system.slice/docker-{ID}.scope"));
        assert_eq!(l.container_id.as_deref(), Some(ID));
        assert_eq!(l.systemd_unit, None);
        let l = labels_from_path(&format!("/docker/{ID}"));
        assert_eq!(l.container_id.as_deref(), Some(ID));
    }

    #[test]
    fn kubernetes_containerd_systemd_driver() {
        let path = format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1b2c3d4e_5f60_4a7b_8c9d_0e1f2a3b4c5d.slice/cri-containerd-{ID}.scope"
        );
        let l = labels_from_path(&path);
        assert_eq!(l.container_id.as_deref(), Some(ID));
        assert_eq!(
            l.pod_uid.as_deref(),
            Some("1b2c3d4e-5f60-4a7b-8c9d-0e1f2a3b4c5d")
        );
        assert_eq!(l.systemd_unit, None);
    }

    #[test]
    fn kubernetes_cgroupfs_driver_and_crio() {
        let l = labels_from_path(&format!(
            "/kubepods/besteffort/pod1b2c3d4e-5f60-4a7b-8c9d-0e1f2a3b4c5d/{ID}"
        ));
        assert_eq!(l.container_id.as_deref(), Some(ID));
        assert_eq!(
            l.pod_uid.as_deref(),
            Some("1b2c3d4e-5f60-4a7b-8c9d-0e1f2a3b4c5d")
        );
        let l = labels_from_path(&format!(
            "/kubepods.slice/kubepods-pod1b2c3d4e_5f60_4a7b_8c9d_0e1f2a3b4c5d.slice/crio-{ID}.scope"
        ));
        assert_eq!(l.container_id.as_deref(), Some(ID));
    }

    #[test]
    fn not_fooled_by_short_ids() {
        let l = labels_from_path("/docker/abc123");
        assert_eq!(l.container_id, None);
        let l = labels_from_path("/kubepods/podnotauid/x");
        assert_eq!(l.pod_uid, None);
    }
}
