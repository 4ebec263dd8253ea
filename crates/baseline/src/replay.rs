//! Finished inputs read to their end in event time: several logs merged
//! into one stream by timestamp, the same on every run.
//!
//! Reader threads racing each other would let one log's events run ahead
//! and push the others' behind the watermark (dropped as late, differently
//! each run). A k-way merge over logs each read one event ahead gives the
//! windower one stream in time order (each file's own order kept, ties to
//! the earlier log), so no event is late that its own file would not make
//! late.

use crate::error::BaselineError;
use crate::logs::{Event, LineStats, LogReader, ParseOptions, Parser};
use crate::watch::LogSource;

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
