//! `perfpilot top`: the hottest functions, live.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use perfpilot_agent::{Scope, Session};
use perfpilot_model::labels;
use perfpilot_model::top::top_functions;
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Cell, Paragraph, Row, Table};

use crate::exit::{self, Failure};
use crate::{record, signals, TopArgs};

/// Per-function counts of one second.
type Snapshot = HashMap<(String, String), (i64, i64)>;

struct Window {
    snapshots: VecDeque<(Snapshot, i64)>,
    len: usize,
    kind: crate::ProfileKind,
}

struct TopRow {
    name: String,
    process: String,
    self_pct: f64,
    total_pct: f64,
}

impl Window {
    fn push(&mut self, session: &mut Session) {
        // The session has the one type asked for.
        let Some(profile) = session.take_profiles().into_iter().next() else {
            return;
        };
        let index = profile.default_value_index();
        let mut snap = Snapshot::new();
        for r in top_functions(&profile, index, Some(labels::PROCESS_NAME)) {
            snap.insert((r.name, r.group), (r.self_value, r.total_value));
        }
        self.snapshots.push_back((snap, profile.total(index)));
        while self.snapshots.len() > self.len {
            self.snapshots.pop_front();
        }
    }

    fn samples(&self) -> i64 {
        self.snapshots.iter().map(|(_, t)| t).sum()
    }

    /// What the window holds, in the profile's own unit.
    fn describe(&self) -> String {
        let ms = self.samples() as f64 / 1e6;
        match self.kind {
            crate::ProfileKind::Cpu => format!("{} samples", self.samples()),
            crate::ProfileKind::Offcpu => format!("{ms:.0} ms off-CPU"),
            crate::ProfileKind::Wall => format!("{ms:.0} ms wall"),
            crate::ProfileKind::Alloc => format!("{} samples", self.samples()),
            crate::ProfileKind::Lock => format!("{ms:.0} ms waited on locks"),
        }
    }

    fn rows(&self, by_total: bool) -> Vec<TopRow> {
        let mut merged: HashMap<&(String, String), (i64, i64)> = HashMap::new();
        for (snap, _) in &self.snapshots {
            for (k, v) in snap {
                let e = merged.entry(k).or_default();
                e.0 += v.0;
                e.1 += v.1;
            }
        }
        let total = self.samples().max(1) as f64;
        let mut rows: Vec<TopRow> = merged
            .into_iter()
            .map(|((name, process), (s, t))| TopRow {
                name: name.clone(),
                process: process.clone(),
                self_pct: 100.0 * s as f64 / total,
                total_pct: 100.0 * t as f64 / total,
            })
            .collect();
        rows.sort_by(|a, b| {
            let (x, y) = if by_total {
                (b.total_pct, a.total_pct)
            } else {
                (b.self_pct, a.self_pct)
            };
            x.total_cmp(&y)
                .then(b.total_pct.total_cmp(&a.total_pct))
                .then(a.name.cmp(&b.name))
        });
        rows
    }
}

fn truncate(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_string();
    }
    let mut out: String = s.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

pub fn run(args: TopArgs) -> exit::Result<()> {
    let kind = match args.sampling.profiles.as_slice() {
        [crate::ProfileKind::Alloc] => {
            return Err(crate::exit::Failure::new(
                crate::exit::USAGE,
                anyhow::anyhow!("top does not show allocations yet: use record --profiles alloc"),
            ))
        }
        [one] => *one,
        _ => {
            return Err(crate::exit::Failure::new(
                crate::exit::USAGE,
                anyhow::anyhow!(
                    "top shows one profile type at a time: --profiles cpu, offcpu, wall or lock"
                ),
            ))
        }
    };
    perfpilot_bpf::check_environment()?;
    let scope = if args.sampling.pids.is_empty() {
        Scope::Host
    } else {
        Scope::Pids(args.sampling.pids.clone())
    };
    let mut session = Session::start(record::session_config(&args.sampling, scope))?;
    let mut window = Window {
        snapshots: VecDeque::new(),
        len: args.window as usize,
        kind,
    };
    match args.batch {
        Some(n) => batch(&mut session, &mut window, n, args.rows),
        None => interactive(&mut session, &mut window, args.sampling.frequency),
    }
}

/// Runs the session for one second, then adds a snapshot.
fn tick(session: &mut Session, window: &mut Window) -> exit::Result<()> {
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        session.poll(
            until
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(100)),
        );
    }
    session.drain()?;
    window.push(session);
    Ok(())
}

fn batch(session: &mut Session, window: &mut Window, n: u32, rows: usize) -> exit::Result<()> {
    signals::install();
    for i in 0..n {
        if signals::stop_requested() {
            break;
        }
        tick(session, window)?;
        println!(
            "perfpilot top: snapshot {} of {n}, {} in the last {} s",
            i + 1,
            window.describe(),
            window.snapshots.len()
        );
        println!("{:>6} {:>6}  {:<15} FUNCTION", "SELF%", "TOTAL%", "PROCESS");
        for r in window.rows(false).iter().take(rows) {
            println!(
                "{:>6.1} {:>6.1}  {:<15} {}",
                r.self_pct,
                r.total_pct,
                truncate(&r.process, 15),
                truncate(&r.name, 48)
            );
        }
        println!();
    }
    Ok(())
}

fn interactive(session: &mut Session, window: &mut Window, hz: u64) -> exit::Result<()> {
    let mut terminal = ratatui::try_init().map_err(|e| {
        Failure::new(
            exit::FAILURE,
            anyhow::anyhow!("perfpilot top needs a terminal ({e}); use --batch N for plain text"),
        )
    })?;
    let result = (|| -> exit::Result<()> {
        let mut by_total = false;
        let mut paused = false;
        let cpus = perfpilot_bpf::online_cpus().map(|c| c.len()).unwrap_or(0);
        let mut next = Instant::now() + Duration::from_secs(1);
        loop {
            let rows = window.rows(by_total);
            terminal
                .draw(|frame| {
                    let area = frame.area();
                    let [head, body] =
                        Layout::vertical([Constraint::Length(2), Constraint::Min(1)]).areas(area);
                    let status = format!(
                        "perfpilot top  {hz} Hz x {cpus} CPUs  {} in {} s  sort: {}{}",
                        window.describe(),
                        window.snapshots.len(),
                        if by_total { "total" } else { "self" },
                        if paused { "  [paused]" } else { "" }
                    );
                    frame.render_widget(
                        Paragraph::new(vec![
                            Line::from(status).style(Style::new().add_modifier(Modifier::BOLD)),
                            Line::from("q quit  s sort self/total  p pause"),
                        ]),
                        head,
                    );
                    let fn_width = (area.width as usize).saturating_sub(7 + 7 + 16 + 3).max(10);
                    let table_rows = rows.iter().take(body.height as usize).map(|r| {
                        Row::new(vec![
                            Cell::from(format!("{:>6.1}", r.self_pct)),
                            Cell::from(format!("{:>6.1}", r.total_pct)),
                            Cell::from(truncate(&r.process, 15)),
                            Cell::from(truncate(&r.name, fn_width)),
                        ])
                    });
                    let table = Table::new(
                        table_rows,
                        [
                            Constraint::Length(6),
                            Constraint::Length(6),
                            Constraint::Length(15),
                            Constraint::Min(10),
                        ],
                    )
                    .header(
                        Row::new(vec!["SELF%", "TOTAL%", "PROCESS", "FUNCTION"])
                            .style(Style::new().add_modifier(Modifier::REVERSED)),
                    );
                    frame.render_widget(table, body);
                })
                .map_err(|e| anyhow::anyhow!("drawing the terminal: {e}"))?;

            // Keys are handled while the session keeps sampling.
            while Instant::now() < next {
                session.poll(Duration::from_millis(50));
                if event::poll(Duration::from_millis(0)).unwrap_or(false) {
                    if let Ok(Event::Key(k)) = event::read() {
                        if k.kind != KeyEventKind::Press {
                            continue;
                        }
                        match k.code {
                            KeyCode::Char('q') | KeyCode::Esc => return Ok(()),
                            KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => {
                                return Ok(())
                            }
                            KeyCode::Char('s') => by_total = !by_total,
                            KeyCode::Char('p') => paused = !paused,
                            _ => {}
                        }
                        break;
                    }
                }
            }
            if Instant::now() >= next {
                next = Instant::now() + Duration::from_secs(1);
                session.drain()?;
                if paused {
                    // Keep draining so the kernel maps stay small.
                    let _ = session.take_profile();
                } else {
                    window.push(session);
                }
            }
        }
    })();
    ratatui::restore();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_width() {
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(truncate("a_very_long_function_name", 10), "a_very_lo…");
        assert_eq!(
            truncate("a_very_long_function_name", 10).chars().count(),
            10
        );
    }
}
