//! Per-thread label sets as perfpilot's agent sends them, and pprof
//! profiles of a host's 10 s like the agent ships (two sample types, one
//! location per call site, some inlined frames, mappings per object).

use std::collections::HashMap;

use perfpilot_model::{
    Function, FunctionId, LabelSetId, Line, Location, LocationId, Mapping, MappingId, Profile,
    StackId, ValueType,
};

use super::catalog::{Catalog, Object, Service};
use super::Rng;

/// 99 Hz, as the agent samples.
pub const PERIOD_NS: i64 = 1_000_000_000 / 99;

fn mix(a: u64, b: u64) -> u64 {
    let mut r = Rng::new(a.wrapping_mul(0x100_0000_01B3) ^ b.rotate_left(29));
    r.next_u64()
}

fn hex(mut x: u64, n: usize) -> String {
    let mut s = String::with_capacity(n);
    let mut r = Rng::new(x);
    while s.len() < n {
        x = r.next_u64();
        s.push_str(&format!("{x:016x}"));
    }
    s.truncate(n);
    s
}

/// The agent's labels for one thread of one pod's process (sorted by
/// name; no `__profile_type__`). `deploy` numbers the pod's incarnations:
/// a redeploy brings a new pod uid, container, pid and build.
pub fn thread_labels(
    svc: &Service,
    pod: usize,
    deploy: u64,
    kind: usize,
    thread: usize,
) -> Vec<(String, String)> {
    let key = mix(mix(svc.index as u64, pod as u64), deploy);
    let pid = 1000 + key % 3_000_000;
    let ordinal: usize = svc.kinds[..kind].iter().map(|k| k.count).sum::<usize>() + thread;
    let tid = pid + ordinal as u64;
    let pod_uid = {
        let h = hex(key ^ 1, 32);
        format!(
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    };
    let container = hex(key ^ 2, 64);
    let build = hex(mix(svc.index as u64, deploy) ^ 3, 40);
    let cgroup = format!(
        "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{}.scope",
        pod_uid.replace('-', "_"),
        container
    );
    vec![
        ("build_id".into(), build),
        ("cgroup".into(), cgroup),
        ("container_id".into(), container),
        ("exe".into(), svc.exe.clone()),
        ("pid".into(), pid.to_string()),
        ("pod_uid".into(), pod_uid),
        ("process_name".into(), svc.process.clone()),
        ("service_name".into(), svc.name.clone()),
        ("thread_name".into(), svc.kinds[kind].thread_name.clone()),
        ("tid".into(), tid.to_string()),
    ]
}

/// Builds one agent-style pprof profile from catalog stacks.
pub struct PprofBuilder<'c> {
    cat: &'c Catalog,
    p: Profile,
    funcs: HashMap<u32, FunctionId>,
    maps: HashMap<(Object, usize), MappingId>,
    /// (function, inlined callee or MAX, next deeper function or MAX, service)
    locs: HashMap<(u32, u32, u32, usize), LocationId>,
    stacks: HashMap<(usize, u32), StackId>,
    scratch: Vec<LocationId>,
}

impl<'c> PprofBuilder<'c> {
    pub fn new(cat: &'c Catalog, time_nanos: i64) -> Self {
        let mut p = Profile::new(vec![
            ValueType::new("samples", "count"),
            ValueType::new("cpu", "nanoseconds"),
        ]);
        p.period_type = Some(ValueType::new("cpu", "nanoseconds"));
        p.period = PERIOD_NS;
        p.time_nanos = time_nanos;
        p.duration_nanos = 10_000_000_000;
        PprofBuilder {
            cat,
            p,
            funcs: HashMap::new(),
            maps: HashMap::new(),
            locs: HashMap::new(),
            stacks: HashMap::new(),
            scratch: Vec::new(),
        }
    }

    pub fn labels(&mut self, set: &[(String, String)]) -> LabelSetId {
        self.p
            .add_label_set(set.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }

    pub fn rows(&self) -> usize {
        self.p.samples().len()
    }

    fn function(&mut self, f: u32) -> FunctionId {
        if let Some(&id) = self.funcs.get(&f) {
            return id;
        }
        let name = &self.cat.functions.names[f as usize];
        let id = self.p.add_function(Function {
            name: name.clone(),
            system_name: name.clone(),
            file: String::new(),
            start_line: 0,
        });
        self.funcs.insert(f, id);
        id
    }

    fn mapping(&mut self, object: Object, svc: usize) -> MappingId {
        let key = (object, if object == Object::Exe { svc } else { 0 });
        if let Some(&id) = self.maps.get(&key) {
            return id;
        }
        let (file, start) = match object {
            Object::Exe => (self.cat.services[svc].exe.clone(), 0x5555_0000_0000u64),
            Object::Libc => (
                "/usr/lib/x86_64-linux-gnu/libc.so.6".to_string(),
                0x7f00_0000_0000,
            ),
            Object::Kernel => ("[kernel.kallsyms]".to_string(), 0xffff_ffff_8100_0000),
        };
        let id = self.p.add_mapping(Mapping {
            start,
            limit: start + 0x1000_0000,
            offset: 0,
            file,
            build_id: hex(mix(svc as u64, object as u64), 40),
        });
        self.maps.insert(key, id);
        id
    }

    fn location(
        &mut self,
        svc: usize,
        f: u32,
        inlined: Option<u32>,
        next: Option<u32>,
    ) -> LocationId {
        let key = (
            f,
            inlined.unwrap_or(u32::MAX),
            next.unwrap_or(u32::MAX),
            svc,
        );
        if let Some(&id) = self.locs.get(&key) {
            return id;
        }
        let object = self.cat.functions.objects[f as usize];
        let mapping = self.mapping(object, svc);
        let h = mix(
            mix(key.0 as u64, key.1 as u64),
            mix(key.2 as u64, svc as u64),
        );
        let base = self.p.mappings()[mapping as usize].start;
        let mut lines = Vec::with_capacity(2);
        if let Some(c) = inlined {
            lines.push(Line {
                function: self.function(c),
                line: 1 + (h >> 40) as i64 % 900,
            });
        }
        lines.push(Line {
            function: self.function(f),
            line: 1 + (h >> 20) as i64 % 2000,
        });
        let id = self.p.add_location(Location {
            mapping: Some(mapping),
            address: base + (h & 0x0fff_fff0),
            lines,
        });
        self.locs.insert(key, id);
        id
    }

    /// Whether the compiler inlined this function into its caller.
    fn inlined(&self, f: u32) -> bool {
        self.cat.functions.objects[f as usize] == Object::Exe && matches!(mix(f as u64, 7) % 6, 0)
    }

    fn stack(&mut self, svc: usize, stack: u32) -> StackId {
        if let Some(&id) = self.stacks.get(&(svc, stack)) {
            return id;
        }
        let cat = self.cat;
        let frames = &cat.services[svc].stacks[stack as usize];
        let mut locs = std::mem::take(&mut self.scratch);
        locs.clear();
        // Leaf first; an inlined function shares its caller's location.
        let mut i = frames.len();
        while i > 0 {
            let f = frames[i - 1];
            let next = frames.get(i).copied();
            if i >= 2 && self.inlined(f) {
                let caller = frames[i - 2];
                locs.push(self.location(svc, caller, Some(f), next));
                i -= 2;
            } else {
                locs.push(self.location(svc, f, None, next));
                i -= 1;
            }
        }
        let id = self.p.add_stack(&locs);
        self.scratch = locs;
        self.stacks.insert((svc, stack), id);
        id
    }

    /// Adds `count` ticks of a service's stack on a thread.
    pub fn add(&mut self, svc: usize, stack: u32, labels: LabelSetId, count: i64) {
        let s = self.stack(svc, stack);
        self.p.add_sample(s, labels, &[count, count * PERIOD_NS]);
    }

    pub fn finish(self) -> Profile {
        self.p
    }
}

/// A 10 s profile of one host: processes of random services, each thread
/// sampled at up to 99 Hz, until the profile has `rows` pprof samples
/// ((stack, thread) pairs).
pub fn host_profile(cat: &Catalog, host: u64, rows: usize, time_nanos: i64) -> Profile {
    let mut rng = Rng::new(host.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ time_nanos as u64);
    let mut b = PprofBuilder::new(cat, time_nanos);
    let mut hrng = Rng::new(host);
    'outer: loop {
        // The host's next process: same sequence for every profile of the host.
        let s = hrng.below(cat.services.len());
        let svc = &cat.services[s];
        let pod = (host as usize + hrng.below(4)) % svc.pods;
        for (k, kind) in svc.kinds.iter().enumerate() {
            for t in 0..kind.count {
                let labels = thread_labels(svc, pod, 0, k, t);
                let ls = b.labels(&labels);
                let busy = 0.2 + 0.8 * rng.f64();
                let ticks = ((990.0 * busy * kind.share.max(0.1)) as usize).max(5);
                for _ in 0..ticks {
                    let r = kind.zipf.sample(&mut rng);
                    b.add(s, kind.stacks[r], ls, 1);
                    if b.rows() >= rows {
                        break 'outer;
                    }
                }
            }
        }
    }
    b.finish()
}
