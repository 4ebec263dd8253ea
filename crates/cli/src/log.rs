//! Where the libraries' logs go. Library crates log through `tracing`;
//! the binary alone decides the format and the level. Results and progress
//! of a command are not logs: they are printed as before.

use std::fmt;

use clap::ValueEnum;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// The variables that choose what is logged, first found wins.
pub const FILTER_VARS: [&str; 2] = ["PERFPILOT_LOG", "RUST_LOG"];

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One line per event: `perfpilot store: warning: MESSAGE key=value`.
    #[default]
    Text,
    /// One JSON object per line (timestamp, level, target, message and
    /// fields), for log collectors.
    Json,
}

/// Installs the subscriber on standard error. Without a filter in the
/// environment, `info` and above are logged (`warn` and above when the
/// command is quiet).
pub fn install(format: LogFormat, quiet: bool) {
    let default = if quiet { "warn" } else { "info" };
    let filter = match FILTER_VARS
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|f| !f.trim().is_empty()))
    {
        Some(spec) => EnvFilter::try_new(&spec).unwrap_or_else(|e| {
            eprintln!(
                "perfpilot: warning: ignoring the log filter {spec:?} ({}): {e}",
                FILTER_VARS.join(" or ")
            );
            EnvFilter::new(default)
        }),
        None => EnvFilter::new(default),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // Only fails when a subscriber is already set (never, in the binary).
    let _ = match format {
        LogFormat::Text => builder.event_format(Human).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// The format perfpilot's messages had before they were logs: the
/// component first, a level only when it is a warning or an error.
struct Human;

impl<S, N> FormatEvent<S, N> for Human
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        write!(writer, "{}: ", component(meta.target()))?;
        match *meta.level() {
            Level::ERROR => write!(writer, "error: ")?,
            Level::WARN => write!(writer, "warning: ")?,
            _ => {}
        }
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// `perfpilot_store::embedded::wal` → `perfpilot store`; the binary's
/// own targets → `perfpilot`; any other crate by its name.
fn component(target: &str) -> String {
    let krate = target.split("::").next().unwrap_or(target);
    match krate.strip_prefix("perfpilot_") {
        Some(name) => format!("perfpilot {}", name.replace('_', "-")),
        None => krate.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::component;

    #[test]
    fn components_are_named_as_before() {
        assert_eq!(
            component("perfpilot_store::embedded::wal"),
            "perfpilot store"
        );
        assert_eq!(component("perfpilot_agent::daemon"), "perfpilot agent");
        assert_eq!(component("perfpilot::serve"), "perfpilot");
        assert_eq!(component("hyper::proto"), "hyper");
    }
}
