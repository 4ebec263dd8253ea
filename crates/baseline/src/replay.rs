//! Finished inputs read to their end in event time: several logs merged
//! into one stream by timestamp, the same on every run.
//!
//! Reader threads racing each other would let one log's events run ahead
//! and push the others' behind the watermark (dropped as late, differently
//! each run). A k-way merge over logs each read one event ahead gives the
//! windower one stream in time order (each file's own order kept, ties to
//! the earlier log), so no event is late that its own file would not make
//! late.

use std::collections::{BTreeMap, BTreeSet};

use crate::engine::Engine;
use crate::error::BaselineError;
use crate::incidents::{IncidentRecord, Transition};
use crate::logs::{Event, LineStats, LogReader, ParseOptions, Parser};
use crate::series::{SeriesKind, SeriesSpec};
use crate::watch::LogSource;
use crate::window::{FeatureWindow, WindowConfig, Windower};

/// One finished log, read one event ahead.
struct Input {
    reader: LogReader,
    parser: Parser,
    stats: LineStats,
    buf: Vec<u8>,
    next: Option<Event>,
}

impl Input {
    fn open(src: &LogSource) -> Result<(Input, Option<String>), BaselineError> {
        let (opts, note) = crate::watch::resolve_options(src)?;
        let parser = Parser::new(&opts);
        let mut input = Input {
            reader: LogReader::open(&src.path)?,
            stats: parser.new_stats(),
            parser,
            buf: Vec::with_capacity(512),
            next: None,
        };
        input.advance()?;
        Ok((input, note))
    }

    fn advance(&mut self) -> Result<(), BaselineError> {
        self.next = None;
        while let Some(no) = self.reader.next_line(&mut self.buf)? {
            if let Some(ev) = self.parser.parse_counted(no, &self.buf, &mut self.stats) {
                self.next = Some(ev);
                break;
            }
        }
        Ok(())
    }
}

/// Finished logs merged by event time.
pub struct MergedLogs {
    inputs: Vec<Input>,
    /// What was detected of each log's format and fields, for people.
    pub detected: Vec<String>,
}

impl MergedLogs {
    /// Opens every log (none followed: they are read to their end).
    pub fn open(sources: &[LogSource]) -> Result<MergedLogs, BaselineError> {
        let mut inputs = Vec::with_capacity(sources.len());
        let mut detected = Vec::new();
        for src in sources {
            let (input, note) = Input::open(src)?;
            inputs.push(input);
            detected.extend(note);
        }
        Ok(MergedLogs { inputs, detected })
    }

    /// The next event in time order over every log; None at the end of
    /// all of them.
    pub fn next_event(&mut self) -> Result<Option<Event>, BaselineError> {
        let mut best: Option<(i64, usize)> = None;
        for (i, input) in self.inputs.iter().enumerate() {
            if let Some(e) = &input.next {
                if best.is_none_or(|(t, _)| e.ts_ms < t) {
                    best = Some((e.ts_ms, i));
                }
            }
        }
        let Some((_, i)) = best else {
            return Ok(None);
        };
        let input = &mut self.inputs[i];
        let ev = input.next.take();
        input.advance()?;
        Ok(ev)
    }

    /// Lines parsed and refused over every log, with samples.
    pub fn stats(&self) -> LineStats {
        let mut lines = LineStats::new(ParseOptions::default().max_samples);
        for input in &self.inputs {
            lines.merge(&input.stats);
        }
        lines
    }

    /// Lines parsed and refused since the last call, over every log.
    pub fn take_stats(&mut self) -> LineStats {
        let mut lines = LineStats::new(ParseOptions::default().max_samples);
        for input in &mut self.inputs {
            let fresh = input.parser.new_stats();
            lines.merge(&std::mem::replace(&mut input.stats, fresh));
        }
        lines
    }
}

/// One line of `--alerts-out`: an incident when it resolves, or when the
/// input ends while it still fires (see [`IncidentRecord`]).
pub type IncidentLine = IncidentRecord;

/// Where `--alerts-out` lines go.
pub type IncidentSink = Box<dyn FnMut(&IncidentLine) -> Result<(), BaselineError> + Send>;

/// Follows the engine's transitions and hands each incident on once it
/// resolves, and the ones still firing at the end.
#[derive(Debug, Default)]
pub struct IncidentLog {
    /// Firing, by id.
    firing: BTreeSet<String>,
    /// Incidents handed on.
    pub written: u64,
}

impl IncidentLog {
    /// Takes the engine's transitions since the last call.
    pub fn update(
        &mut self,
        engine: &mut Engine,
        sink: &mut dyn FnMut(&IncidentLine) -> Result<(), BaselineError>,
    ) -> Result<(), BaselineError> {
        let transitions = engine.drain_transitions();
        self.observe(engine, &transitions, sink)
    }

    /// [`IncidentLog::update`] for transitions its caller drained.
    pub fn observe(
        &mut self,
        engine: &Engine,
        transitions: &[Transition],
        sink: &mut dyn FnMut(&IncidentLine) -> Result<(), BaselineError>,
    ) -> Result<(), BaselineError> {
        for t in transitions {
            match t {
                Transition::Fired(id) => {
                    self.firing.insert(id.clone());
                }
                Transition::Resolved(id) => {
                    if let (true, Some(i)) = (self.firing.remove(id), engine.incident(id)) {
                        self.written += 1;
                        sink(&i.record())?;
                    }
                }
            }
        }
        Ok(())
    }

    /// At the end of the input: every incident still firing.
    pub fn finish(
        &mut self,
        engine: &Engine,
        sink: &mut dyn FnMut(&IncidentLine) -> Result<(), BaselineError>,
    ) -> Result<(), BaselineError> {
        for id in std::mem::take(&mut self.firing) {
            if let Some(i) = engine.incident(&id) {
                self.written += 1;
                sink(&i.record())?;
            }
        }
        Ok(())
    }
}

/// A `--series` with its points, its service decided.
#[derive(Debug, Clone)]
pub struct Series {
    pub spec: SeriesSpec,
    pub points: Vec<(i64, f64)>,
}

impl Series {
    pub fn load(spec: SeriesSpec) -> Result<Series, BaselineError> {
        let points = crate::series::load(&spec.path)?;
        Ok(Series { spec, points })
    }
}

/// What a replay did.
#[derive(Debug, Default, Clone)]
pub struct ReplaySummary {
    pub events: u64,
    pub windows: u64,
    pub findings: u64,
    pub incidents: u64,
    pub series_points: u64,
    pub lines: LineStats,
    pub dropped_late: u64,
    /// What was detected of each log.
    pub detected: Vec<String>,
    /// Saved baselines that did not fit, in words.
    pub relearned: Vec<String>,
    /// First window's start and last window's end (event time).
    pub span: Option<(i64, i64)>,
}

/// Runs `engine` over `logs` (read to their end, merged by event time,
/// windowed with `window`) and `series`, in event time, handing each
/// incident to `sink`. No clock is read: the same inputs give the same
/// incidents.
pub fn run(
    logs: &[LogSource],
    window: WindowConfig,
    series: &[Series],
    engine: &mut Engine,
    sink: &mut dyn FnMut(&IncidentLine) -> Result<(), BaselineError>,
) -> Result<ReplaySummary, BaselineError> {
    let mut merged = MergedLogs::open(logs)?;
    let mut summary = ReplaySummary {
        detected: std::mem::take(&mut merged.detected),
        ..ReplaySummary::default()
    };
    let mut windower = Windower::new(window)?;
    let mut incidents = IncidentLog::default();
    // Every series point, in time order (ties: argument order).
    let mut points: Vec<(i64, usize, f64)> = series
        .iter()
        .enumerate()
        .flat_map(|(i, s)| s.points.iter().map(move |&(t, x)| (t, i, x)))
        .collect();
    points.sort_by_key(|p| (p.0, p.1));
    summary.series_points = points.len() as u64;
    let mut services: Option<Vec<String>> = None;
    let mut next_point = 0;
    let mut closed = Vec::new();
    let mut judge = |closed: &mut Vec<FeatureWindow>,
                     engine: &mut Engine,
                     summary: &mut ReplaySummary,
                     services: &mut Option<Vec<String>>,
                     next_point: &mut usize,
                     until: Option<i64>|
     -> Result<(), BaselineError> {
        if closed.is_empty() && until.is_some() {
            return Ok(());
        }
        if services.is_none() && (!closed.is_empty() || until.is_none()) {
            let mut names: Vec<String> = closed
                .iter()
                .filter(|w| w.is_aggregate())
                .map(|w| w.service.to_string())
                .collect();
            names.sort();
            names.dedup();
            *services = Some(names);
        }
        let mut end = i64::MIN;
        for w in closed.drain(..) {
            summary.windows += 1;
            summary.findings += engine.observe_window(&w).len() as u64;
            summary.span = Some(summary.span.map_or((w.start_ms, w.end_ms), |(a, b)| {
                (a.min(w.start_ms), b.max(w.end_ms))
            }));
            end = end.max(w.end_ms);
            incidents.update(engine, sink)?;
        }
        let until = until.unwrap_or(end);
        while let Some(&(t, i, x)) = points.get(*next_point) {
            if t >= until {
                break;
            }
            *next_point += 1;
            let s = &series[i];
            let service = series_service(&s.spec, services.as_deref().unwrap_or(&[]))?;
            let none = BTreeMap::new();
            let kind = s.spec.kind.feature_kind();
            let found = if s.spec.kind == SeriesKind::Cpu {
                engine.observe_resource(&service, &s.spec.name, kind, t, x, &none)
            } else {
                engine.observe(&service, &s.spec.name, kind, t, x, &none)
            };
            summary.findings += found.len() as u64;
            incidents.update(engine, sink)?;
        }
        summary.relearned.extend(engine.drain_fit_lines());
        Ok(())
    };
    while let Some(ev) = merged.next_event()? {
        summary.events += 1;
        windower.push(&ev, &mut closed);
        if !closed.is_empty() {
            judge(
                &mut closed,
                engine,
                &mut summary,
                &mut services,
                &mut next_point,
                None,
            )?;
        }
    }
    windower.flush(&mut closed);
    judge(
        &mut closed,
        engine,
        &mut summary,
        &mut services,
        &mut next_point,
        None,
    )?;
    judge(
        &mut closed,
        engine,
        &mut summary,
        &mut services,
        &mut next_point,
        Some(i64::MAX),
    )?;
    incidents.finish(engine, sink)?;
    summary.incidents = incidents.written;
    summary.lines = merged.stats();
    summary.dropped_late = windower.dropped_late();
    Ok(summary)
}

/// The service a series belongs to: its own, else the logs' only one
/// (`default` without logs).
fn series_service(spec: &SeriesSpec, services: &[String]) -> Result<String, BaselineError> {
    if let Some(s) = &spec.service {
        return Ok(s.clone());
    }
    match services {
        [] => Ok("default".to_string()),
        [one] => Ok(one.clone()),
        many => Err(BaselineError::invalid(
            format!("--series {}", spec.name),
            format!(
                "the logs have several services ({}): say which with SERVICE/{}:KIND=FILE",
                many.join(", "),
                spec.name
            ),
        )),
    }
}
