//! Services and their stacks.
//!
//! Each service gets a random call tree grown from its language's model
//! (thread entry chains → request framework → handlers → the service's own
//! functions → libraries → libc → kernel), so stacks share prefixes the way
//! real ones do. A stack is a walk from a thread's root that stops where a
//! function has self time; walks are repeated until the service has a few
//! thousand distinct stacks (depth 10–60; shorter walks are dropped).
//! Stacks found earlier are the
//! likelier walks, and their hotness is Zipf over that order.

use std::collections::HashMap;

use super::lang::{self, Lang, LangModel, KERNEL};
use super::{Rng, Zipf};

pub const MIN_DEPTH: usize = 10;
pub const MAX_DEPTH: usize = 60;

/// Where a function's code lives (for pprof mappings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Object {
    Exe,
    Libc,
    Kernel,
}

/// Function names shared by all services (libraries, libc and kernel
/// functions appear in many).
#[derive(Default)]
pub struct Functions {
    pub names: Vec<String>,
    pub objects: Vec<Object>,
    index: HashMap<String, u32>,
}

impl Functions {
    pub fn intern(&mut self, name: &str, object: Object) -> u32 {
        if let Some(&id) = self.index.get(name) {
            return id;
        }
        let id = self.names.len() as u32;
        self.names.push(name.to_string());
        self.objects.push(object);
        self.index.insert(name.to_string(), id);
        id
    }
}

/// Threads of one kind in a service's process.
pub struct ThreadKind {
    pub thread_name: String,
    /// Share of the process's CPU.
    pub share: f64,
    /// Threads of this kind per process.
    pub count: usize,
    /// Indices into `Service::stacks`, hottest first.
    pub stacks: Vec<u32>,
    pub zipf: Zipf,
}

pub struct Service {
    pub index: usize,
    pub name: String,
    pub lang: Lang,
    /// The process's name (`comm`, at most 15 bytes).
    pub process: String,
    pub exe: String,
    /// Relative CPU load of the service.
    pub weight: f64,
    pub pods: usize,
    /// Root-first function ids.
    pub stacks: Vec<Vec<u32>>,
    /// Id of this service's first stack in [`Catalog::stack`] numbering.
    pub stack_base: u32,
    pub kinds: Vec<ThreadKind>,
}

pub struct Catalog {
    pub functions: Functions,
    pub services: Vec<Service>,
    pub total_stacks: usize,
}

impl Catalog {
    /// `n` services (names and languages fixed by index), stacks drawn
    /// from `seed`.
    pub fn new(n: usize, seed: u64) -> Catalog {
        let mut functions = Functions::default();
        let mut services = Vec::with_capacity(n);
        let mut base = 0u32;
        for i in 0..n {
            let mut rng = Rng::new(seed ^ (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let name = match lang::SERVICE_NAMES.get(i) {
                Some(s) => s.to_string(),
                None => format!(
                    "{}-{}",
                    lang::SERVICE_NAMES[i % lang::SERVICE_NAMES.len()],
                    i / lang::SERVICE_NAMES.len()
                ),
            };
            let language = match i % 5 {
                0 | 3 => Lang::Go,
                1 => Lang::Rust,
                2 => Lang::Python,
                _ => Lang::Cpp,
            };
            let svc = build_service(&mut functions, &mut rng, i, name, language, base, n);
            base += svc.stacks.len() as u32;
            services.push(svc);
        }
        Catalog {
            functions,
            services,
            total_stacks: base as usize,
        }
    }

    /// Stacks per service and stack depths, for the reports.
    pub fn summary(&self) -> String {
        let per: Vec<usize> = self.services.iter().map(|s| s.stacks.len()).collect();
        let mut depths: Vec<usize> = self
            .services
            .iter()
            .flat_map(|s| s.stacks.iter().map(|st| st.len()))
            .collect();
        depths.sort_unstable();
        let mean = depths.iter().sum::<usize>() as f64 / depths.len().max(1) as f64;
        let langs = |l: Lang| self.services.iter().filter(|s| s.lang == l).count();
        format!(
            "{} services ({} Go, {} Rust, {} Python, {} C++), {}-{} distinct stacks each, \
             depth {}-{} (median {}, mean {:.1}), {} function names",
            self.services.len(),
            langs(Lang::Go),
            langs(Lang::Rust),
            langs(Lang::Python),
            langs(Lang::Cpp),
            per.iter().min().unwrap_or(&0),
            per.iter().max().unwrap_or(&0),
            depths.first().unwrap_or(&0),
            depths.last().unwrap_or(&0),
            depths.get(depths.len() / 2).unwrap_or(&0),
            mean,
            self.functions.names.len()
        )
    }

    pub fn frames(&self) -> usize {
        self.services
            .iter()
            .flat_map(|s| s.stacks.iter())
            .map(|s| s.len())
            .sum()
    }
}

fn snake(name: &str) -> String {
    name.replace('-', "_")
}

fn camel(name: &str) -> String {
    name.split('-')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

/// Replaces the model's placeholders with one service's names.
struct Names {
    svc: String,
    camel: String,
    module: String,
    ns: String,
    process: String,
}

impl Names {
    fn fill(&self, s: &str) -> String {
        if !s.contains('{') || !s.contains('}') {
            return s.to_string();
        }
        s.replace("{svc}", &self.svc)
            .replace("{Svc}", &self.camel)
            .replace("{mod}", &self.module)
            .replace("{ns}", &self.ns)
            .replace("{proc}", &self.process)
    }
}

#[derive(Debug, Clone, Copy)]
enum Nk {
    Prefix(u16, u16),
    Framework(u16),
    Side(u16, u16),
    Handler,
    Business(u32),
    Lib(u16, u16),
    Libc(u16),
    Kernel(u16, u16),
}

struct Node {
    func: u32,
    parent: u32,
    depth: u16,
    nk: Nk,
    stop: f32,
    /// (child node, cumulative weight), built on first visit.
    children: Option<Vec<(u32, f32)>>,
}

struct Lib {
    fns: Vec<u32>,
    recursive: bool,
    libc: Vec<u16>,
}

struct Tree {
    prefixes: Vec<Vec<u32>>,
    serves: Vec<bool>,
    framework: Vec<u32>,
    sides: Vec<(Vec<u32>, Option<u16>)>,
    /// Side branches starting at a function.
    side_at: HashMap<u32, Vec<u16>>,
    handlers: Vec<u32>,
    business: Vec<u32>,
    libs: Vec<Lib>,
    libc: Vec<(u32, Option<u16>)>,
    kernel: Vec<Vec<u32>>,
    irq: u16,
    nodes: Vec<Node>,
}

/// A number in 0..n, small ones likelier.
fn skewed(rng: &mut Rng, n: usize) -> usize {
    let u = rng.f64();
    ((u * u * n as f64) as usize).min(n.saturating_sub(1))
}

impl Tree {
    fn node(&mut self, parent: u32, nk: Nk, func: u32, stop: f32) -> u32 {
        let depth = if parent == u32::MAX {
            1
        } else {
            self.nodes[parent as usize].depth + 1
        };
        self.nodes.push(Node {
            func,
            parent,
            depth,
            nk,
            stop,
            children: None,
        });
        (self.nodes.len() - 1) as u32
    }

    fn lib_entry(&self, rng: &mut Rng) -> (Nk, u32) {
        let l = rng.below(self.libs.len());
        let i = if rng.chance(0.7) {
            0
        } else {
            rng.below(self.libs[l].fns.len().min(3))
        };
        (Nk::Lib(l as u16, i as u16), self.libs[l].fns[i])
    }

    fn libc_leaf(&self, rng: &mut Rng, from: &[u16]) -> (Nk, u32) {
        let i = if from.is_empty() {
            rng.below(self.libc.len()) as u16
        } else {
            from[rng.below(from.len())]
        };
        (Nk::Libc(i), self.libc[i as usize].0)
    }

    fn business_after(&self, rng: &mut Rng, after: Option<u32>) -> Option<(Nk, u32)> {
        let start = after.map_or(0, |b| b as usize + 1);
        if start >= self.business.len() {
            return None;
        }
        let span = (self.business.len() - start).min(60);
        let j = start + skewed(rng, span);
        Some((Nk::Business(j as u32), self.business[j]))
    }

    fn stop_of(&self, nk: Nk) -> f32 {
        match nk {
            Nk::Prefix(k, i) => {
                if (i as usize) + 1 < self.prefixes[k as usize].len() {
                    0.0
                } else {
                    0.02
                }
            }
            Nk::Framework(_) => 0.01,
            Nk::Side(..) => 0.1,
            Nk::Handler => 0.03,
            Nk::Business(_) => 0.06,
            Nk::Lib(..) => 0.12,
            Nk::Libc(i) => {
                if self.libc[i as usize].1.is_some() {
                    0.25
                } else {
                    1.0
                }
            }
            Nk::Kernel(..) => 0.2,
        }
    }

    /// The children of a node: (kind, function, weight).
    fn expand(&self, rng: &mut Rng, nk: Nk, func: u32) -> Vec<(Nk, u32, f32)> {
        let mut out: Vec<(Nk, u32, f32)> = Vec::new();
        let sides = |out: &mut Vec<(Nk, u32, f32)>| {
            if let Some(list) = self.side_at.get(&func) {
                for &s in list {
                    out.push((Nk::Side(s, 0), self.sides[s as usize].0[0], 0.25));
                }
            }
        };
        match nk {
            Nk::Prefix(k, i) => {
                let chain = &self.prefixes[k as usize];
                let next = i as usize + 1;
                if next < chain.len() {
                    out.push((Nk::Prefix(k, next as u16), chain[next], 1.0));
                } else if self.serves[k as usize] {
                    out.push((Nk::Framework(0), self.framework[0], 1.0));
                } else {
                    let n = rng.range(3, 9);
                    for r in 0..n {
                        if let Some((nk, f)) = self.business_after(rng, None) {
                            out.push((nk, f, 1.0 / (r as f32 + 1.0)));
                        }
                    }
                    for _ in 0..rng.range(1, 3) {
                        let (nk, f) = self.lib_entry(rng);
                        out.push((nk, f, 0.3));
                    }
                }
                sides(&mut out);
            }
            Nk::Framework(i) => {
                let next = i as usize + 1;
                if next < self.framework.len() {
                    out.push((Nk::Framework(next as u16), self.framework[next], 1.0));
                } else {
                    for (r, &h) in self.handlers.iter().enumerate() {
                        out.push((Nk::Handler, h, 1.0 / (r as f32 + 1.0)));
                    }
                }
                sides(&mut out);
            }
            Nk::Side(s, i) => {
                let (chain, libc) = &self.sides[s as usize];
                let next = i as usize + 1;
                if next < chain.len() {
                    out.push((Nk::Side(s, next as u16), chain[next], 1.0));
                } else if let Some(l) = libc {
                    out.push((Nk::Libc(*l), self.libc[*l as usize].0, 1.0));
                }
            }
            Nk::Handler => {
                for r in 0..rng.range(2, 7) {
                    if let Some((nk, f)) = self.business_after(rng, None) {
                        out.push((nk, f, 1.0 / (r as f32 + 1.0)));
                    }
                }
                for _ in 0..rng.range(1, 3) {
                    let (nk, f) = self.lib_entry(rng);
                    out.push((nk, f, 0.4));
                }
            }
            Nk::Business(b) => {
                let n = if rng.chance(0.08) { 0 } else { rng.range(1, 6) };
                for r in 0..n {
                    let w = 1.0 / (r as f32 + 1.0);
                    let roll = rng.f64();
                    if roll < 0.75 {
                        if let Some((nk, f)) = self.business_after(rng, Some(b)) {
                            out.push((nk, f, w));
                            continue;
                        }
                    }
                    if roll < 0.95 {
                        let (nk, f) = self.lib_entry(rng);
                        out.push((nk, f, w));
                    } else {
                        let (nk, f) = self.libc_leaf(rng, &[]);
                        out.push((nk, f, w));
                    }
                }
                if rng.chance(0.05) {
                    out.push((
                        Nk::Kernel(self.irq, 0),
                        self.kernel[self.irq as usize][0],
                        0.05,
                    ));
                }
            }
            Nk::Lib(l, i) => {
                let lib = &self.libs[l as usize];
                let n = 1 + rng.below(3);
                for r in 0..n {
                    let w = 1.0 / (r as f32 + 1.0);
                    let roll = rng.f64();
                    let len = lib.fns.len();
                    let next = i as usize + 1;
                    if roll < 0.75 {
                        let j = if lib.recursive && rng.chance(0.3) {
                            Some(rng.below(len))
                        } else if next < len {
                            Some(next + rng.below((len - next).min(2)))
                        } else {
                            None
                        };
                        if let Some(j) = j {
                            out.push((Nk::Lib(l, j as u16), lib.fns[j], w));
                            continue;
                        }
                    }
                    if roll < 0.85 {
                        let (nk, f) = self.lib_entry(rng);
                        out.push((nk, f, w));
                    } else {
                        let (nk, f) = self.libc_leaf(rng, &lib.libc);
                        out.push((nk, f, w));
                    }
                }
            }
            Nk::Libc(i) => {
                if let Some(k) = self.libc[i as usize].1 {
                    out.push((Nk::Kernel(k, 0), self.kernel[k as usize][0], 1.0));
                }
            }
            Nk::Kernel(k, i) => {
                let next = i as usize + 1;
                if next < self.kernel[k as usize].len() {
                    out.push((
                        Nk::Kernel(k, next as u16),
                        self.kernel[k as usize][next],
                        1.0,
                    ));
                }
            }
        }
        out
    }

    fn children(&mut self, rng: &mut Rng, id: u32) {
        if self.nodes[id as usize].children.is_some() {
            return;
        }
        let (nk, func) = (self.nodes[id as usize].nk, self.nodes[id as usize].func);
        let spec = self.expand(rng, nk, func);
        let mut kids = Vec::with_capacity(spec.len());
        let mut acc = 0.0f32;
        for (nk, f, w) in spec {
            let stop = self.stop_of(nk);
            let c = self.node(id, nk, f, stop);
            acc += w;
            kids.push((c, acc));
        }
        self.nodes[id as usize].children = Some(kids);
    }

    /// One walk from `root`; returns the node it stopped at. It does not
    /// stop by choice before a depth drawn for it (10 to 50, most often
    /// around 30), only at functions that call nothing.
    fn walk(&mut self, rng: &mut Rng, root: u32) -> u32 {
        let min_depth = MIN_DEPTH + (rng.below(21) + rng.below(21));
        let mut at = root;
        loop {
            self.children(rng, at);
            let n = &self.nodes[at as usize];
            let kids = n.children.as_deref().unwrap_or(&[]);
            let depth = n.depth as usize;
            if kids.is_empty() || depth >= MAX_DEPTH {
                return at;
            }
            if depth >= min_depth && rng.f64() < n.stop as f64 {
                return at;
            }
            let total = kids.last().map_or(0.0, |k| k.1);
            let u = rng.f64() as f32 * total;
            let i = kids.partition_point(|k| k.1 <= u).min(kids.len() - 1);
            at = kids[i].0;
        }
    }

    fn stack(&self, mut at: u32) -> Vec<u32> {
        let mut out = Vec::with_capacity(self.nodes[at as usize].depth as usize);
        while at != u32::MAX {
            out.push(self.nodes[at as usize].func);
            at = self.nodes[at as usize].parent;
        }
        out.reverse();
        out
    }
}

fn hex(rng: &mut Rng, n: usize) -> String {
    const H: &[u8; 16] = b"0123456789abcdef";
    (0..n).map(|_| H[rng.below(16)] as char).collect()
}

fn business_names(m: &LangModel, n: &Names, rng: &mut Rng, count: usize) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(count);
    let mut tries = 0;
    while out.len() < count && tries < count * 20 {
        tries += 1;
        let module = m.modules[rng.below(m.modules.len())];
        let ty = m.types[rng.below(m.types.len())];
        let method = m.methods[rng.below(m.methods.len())];
        let variant = rng.below(10);
        let name = match m.lang {
            Lang::Rust => match variant {
                0..=5 => format!("{}::{module}::{ty}::{method}", n.svc),
                6 | 7 => format!("{}::{module}::{ty}::{method}::{{{{closure}}}}", n.svc),
                8 => format!("{}::{module}::{method}", n.svc),
                _ => format!(
                    "<{}::{module}::{ty} as {}::{module}::Handle>::{method}",
                    n.svc, n.svc
                ),
            },
            Lang::Cpp => match variant {
                0..=7 => n.fill(&format!("{{ns}}::{module}::{ty}::{method}")),
                8 => n.fill(&format!(
                    "{{ns}}::{module}::detail::{ty}Impl<{{ns}}::{module}::Options>::{method}"
                )),
                _ => {
                    // A symbol the symbolizer could not demangle.
                    let m2 = method.split('(').next().unwrap_or(method);
                    format!(
                        "_ZN{}{}{}{}{}{}{}{}Ev",
                        n.ns.len(),
                        n.ns,
                        module.len(),
                        module,
                        ty.len(),
                        ty,
                        m2.len(),
                        m2
                    )
                }
            },
            Lang::Go => match variant {
                0..=5 => format!("{}/internal/{module}.(*{ty}).{method}", n.module),
                6 | 7 => format!("{}/internal/{module}.{method}", n.module),
                _ => format!(
                    "{}/internal/{module}.(*{ty}).{method}.func{}",
                    n.module,
                    1 + rng.below(3)
                ),
            },
            Lang::Python => match variant {
                0..=7 => format!("{}.{module}.{ty}.{method}", n.svc),
                _ => format!("{}.{module}.{method}", n.svc),
            },
        };
        if seen.insert(name.clone()) {
            out.push(name);
        }
    }
    out
}

const RESOURCES: &[&str] = &[
    "order", "item", "user", "session", "price", "quote", "report", "search", "event", "account",
    "invoice", "product", "review", "token", "webhook", "cart", "shipment", "payment", "refund",
    "profile",
];
const VERBS: &[&str] = &[
    "get", "list", "create", "update", "delete", "search", "export", "import", "sync", "validate",
];

fn handler_names(m: &LangModel, n: &Names, rng: &mut Rng, count: usize) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    let mut tries = 0;
    while out.len() < count && tries < count * 20 {
        tries += 1;
        let r = RESOURCES[rng.below(RESOURCES.len())];
        let v = VERBS[rng.below(VERBS.len())];
        let name = match m.lang {
            Lang::Rust => format!("{}::handlers::{r}::{v}_{r}::{{{{closure}}}}", n.svc),
            Lang::Cpp => {
                let (cv, cr) = (camel(v), camel(r));
                n.fill(&format!(
                    "{{ns}}::{{Svc}}ServiceImpl::{cv}{cr}(grpc::ServerContext*, {{ns}}::{cv}{cr}Request const*, {{ns}}::{cv}{cr}Response*)"
                ))
            }
            Lang::Go => format!(
                "{}/internal/handlers.(*Server).{}{}",
                n.module,
                camel(v),
                camel(r)
            ),
            Lang::Python => format!("{}.views.{}View.{v}", n.svc, camel(r)),
        };
        if seen.insert(name.clone()) {
            out.push(name);
        }
    }
    out
}

fn build_service(
    functions: &mut Functions,
    rng: &mut Rng,
    index: usize,
    name: String,
    language: Lang,
    stack_base: u32,
    nservices: usize,
) -> Service {
    let m = lang::model(language);
    let process: String = match language {
        Lang::Python => "gunicorn".to_string(),
        _ => name.chars().take(15).collect(),
    };
    let names = Names {
        svc: snake(&name),
        camel: camel(&name),
        module: format!("github.com/acme/{name}"),
        ns: snake(&name),
        process: process.clone(),
    };
    let exe_intern =
        |functions: &mut Functions, s: &str| functions.intern(&names.fill(s), Object::Exe);

    let kernel: Vec<Vec<u32>> = KERNEL
        .iter()
        .map(|k| {
            k.chain
                .iter()
                .map(|f| functions.intern(f, Object::Kernel))
                .collect()
        })
        .collect();
    let kernel_index = |name: &str| KERNEL.iter().position(|k| k.name == name).map(|i| i as u16);
    let irq = kernel_index("irq").unwrap_or(0);
    let libc_object = if language == Lang::Go {
        Object::Exe
    } else {
        Object::Libc
    };
    let libc: Vec<(u32, Option<u16>)> = m
        .libc
        .iter()
        .map(|l| {
            (
                functions.intern(l.name, libc_object),
                l.kernel.and_then(kernel_index),
            )
        })
        .collect();
    let libc_index = |name: &str| m.libc.iter().position(|l| l.name == name).map(|i| i as u16);

    let prefixes: Vec<Vec<u32>> = m
        .threads
        .iter()
        .map(|t| {
            t.prefix
                .iter()
                .map(|f| {
                    let obj = if f.starts_with("__libc") || *f == "start_thread" || *f == "clone3" {
                        libc_object
                    } else {
                        Object::Exe
                    };
                    functions.intern(&names.fill(f), obj)
                })
                .collect()
        })
        .collect();
    let framework: Vec<u32> = m
        .framework
        .iter()
        .map(|f| exe_intern(functions, f))
        .collect();
    let mut side_at: HashMap<u32, Vec<u16>> = HashMap::new();
    let mut sides = Vec::new();
    for (i, s) in m.sides.iter().enumerate() {
        let at = exe_intern(functions, s.at);
        side_at.entry(at).or_default().push(i as u16);
        let chain: Vec<u32> = s.chain.iter().map(|f| exe_intern(functions, f)).collect();
        sides.push((chain, s.libc.and_then(libc_index)));
    }
    let libs: Vec<Lib> = m
        .libs
        .iter()
        .map(|l| Lib {
            fns: l.fns.iter().map(|f| exe_intern(functions, f)).collect(),
            recursive: l.recursive,
            libc: l.libc.iter().filter_map(|n| libc_index(n)).collect(),
        })
        .collect();
    let nhandlers = rng.range(15, 60);
    let handlers: Vec<u32> = handler_names(m, &names, rng, nhandlers)
        .iter()
        .map(|h| functions.intern(h, Object::Exe))
        .collect();
    let nbusiness = rng.range(150, 400);
    let business: Vec<u32> = business_names(m, &names, rng, nbusiness)
        .iter()
        .map(|b| functions.intern(b, Object::Exe))
        .collect();

    let mut tree = Tree {
        prefixes,
        serves: m.threads.iter().map(|t| t.serves).collect(),
        framework,
        sides,
        side_at,
        handlers,
        business,
        libs,
        libc,
        kernel,
        irq,
        nodes: Vec::new(),
    };

    let target = rng.range(2000, 5001);
    let mut stacks: Vec<Vec<u32>> = Vec::with_capacity(target);
    let mut kinds = Vec::new();
    for (k, t) in m.threads.iter().enumerate() {
        let want = ((target as f64 * t.share) as usize).max(60);
        let root = tree.node(u32::MAX, Nk::Prefix(k as u16, 0), tree.prefixes[k][0], 0.0);
        let mut seen: HashMap<u32, ()> = HashMap::new();
        let mut mine: Vec<u32> = Vec::with_capacity(want);
        let mut tries = 0;
        while mine.len() < want && tries < want * 40 {
            tries += 1;
            let end = tree.walk(rng, root);
            if (tree.nodes[end as usize].depth as usize) < MIN_DEPTH {
                continue;
            }
            if seen.insert(end, ()).is_none() {
                mine.push(stacks.len() as u32);
                stacks.push(tree.stack(end));
            }
        }
        let count = rng.range(t.count.0, t.count.1 + 1);
        let zipf = Zipf::new(mine.len(), 1.1);
        kinds.push(ThreadKind {
            thread_name: names.fill(t.name),
            share: t.share,
            count,
            stacks: mine,
            zipf,
        });
    }
    // Load: a few busy services, a long tail of quiet ones.
    let rank = (index * 7 + 3) % nservices.max(1);
    let weight = 1.0 / (rank as f64 + 1.0).powf(0.8);
    Service {
        index,
        exe: names.fill(m.exe),
        name,
        lang: language,
        process,
        weight,
        pods: rng.range(2, 7),
        stacks,
        stack_base,
        kinds,
    }
}
