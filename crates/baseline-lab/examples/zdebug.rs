use perfpilot_baseline::baseline::Baseline;
use perfpilot_baseline::detectors::MonitorConfig;
use perfpilot_baseline::window::{windows, WindowConfig};
use perfpilot_baseline_lab::scenarios::scenario;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seed: u64 = args[1].parse().unwrap();
    let idx: usize = args[2].parse().unwrap();
    let q: usize = args[3].parse().unwrap();
    let s = scenario(seed, idx, "x");
    let (ws, _) = windows(&s.events, WindowConfig::default()).unwrap();
    let mut b = Baseline::new(MonitorConfig::default().baseline);
    let mut zs = Vec::new();
    for w in ws.iter().filter(|w| w.is_aggregate()) {
        let x = [w.p50, w.p90, w.p99, w.p999][q];
        let band = b.band(w.start_ms);
        if band.ready() {
            let scale = ((band.high - band.low) / 6.0).max(f64::EPSILON);
            zs.push(((x - band.expected) / scale, band.excess(x), band.expected, band.high, x));
        }
        b.observe(w.start_ms, x, band.excess(x) > 0.0);
    }
    let n = zs.len() as f64;
    let m = zs.iter().map(|z| z.0).sum::<f64>() / n;
    let v = zs.iter().map(|z| (z.0 - m).powi(2)).sum::<f64>() / n;
    let ac = zs.windows(2).map(|p| (p[0].0 - m) * (p[1].0 - m)).sum::<f64>() / n / v;
    let out = zs.iter().filter(|z| z.1 > 0.0).count();
    println!("n={n} mean={m:.3} sd={:.3} ac1={ac:.3} outside={out}", v.sqrt());
    for z in zs.iter().take(400).skip(0).step_by(20) {
        println!("{:.2} exp={:.2} high={:.2} x={:.2}", z.0, z.2, z.3, z.4);
    }
}
