//! The server's ingest limits as flags of `perfpilot server` and
//! `perfpilot up` (docs/LIMITS.md). Defaults come from the libraries'
//! own, so the flags and the code cannot disagree.

use std::time::Duration;

use clap::Args;
use perfpilot_server::{Limits, ServerConfig, WebhookLimits};

use crate::exit::{self, Failure};

fn limits() -> Limits {
    Limits::default()
}

fn server() -> ServerConfig {
    ServerConfig::default()
}

fn webhook() -> WebhookLimits {
    WebhookLimits::default()
}

#[derive(Args)]
#[command(next_help_heading = "Limits (see docs/LIMITS.md)")]
pub struct LimitArgs {
    /// Largest request body, before decompression (413 past it).
    #[arg(long, value_name = "MIB", default_value_t = (server().max_body_bytes >> 20) as u64,
          value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    max_body_mib: u64,
    /// Request bodies all requests together may hold while they are read
    /// and handled; a request that would go past it waits 1 s, then gets
    /// 503 with Retry-After.
    #[arg(long, value_name = "MIB", default_value_t = (server().max_inflight_body_bytes >> 20) as u64,
          value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    max_inflight_body_mib: u64,
    /// What one request may decompress to: the body and every profile in
    /// it together (413 past it).
    #[arg(long, value_name = "MIB", default_value_t = (limits().max_decompressed_bytes >> 20) as u64,
          value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    max_decompressed_mib: u64,
    /// Memory one request's decoded stacks, function names and series
    /// labels may take (413 past it).
    #[arg(long, value_name = "MIB", default_value_t = (limits().max_decoded_bytes >> 20) as u64,
          value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    max_decoded_mib: u64,
    /// Memory all ingest requests being decoded may hold at once
    /// (decompressed and decoded data); past it a request gets 503 with
    /// Retry-After.
    #[arg(long, value_name = "MIB", default_value_t = (server().max_ingest_memory_bytes >> 20) as u64,
          value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    max_ingest_memory_mib: u64,
    /// Samples (a stack and its values in one series) per request (413).
    #[arg(long, value_name = "N", default_value_t = limits().max_samples_per_request as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    max_samples_per_request: u64,
    /// Frames of one stack, inlined functions expanded (400).
    #[arg(long, value_name = "N", default_value_t = limits().max_frames_per_stack as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    max_frames_per_stack: u64,
    /// Frames of all of a request's samples' stacks together, inlined
    /// functions expanded (413).
    #[arg(long, value_name = "N", default_value_t = limits().max_frames_per_request as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    max_frames_per_request: u64,
    /// Labels of a stored series, service_name and __profile_type__
    /// included (400).
    #[arg(long, value_name = "N", default_value_t = limits().max_labels_per_series as u64,
          value_parser = clap::value_parser!(u64).range(2..))]
    max_labels_per_series: u64,
    /// Bytes in a label name (400).
    #[arg(long, value_name = "BYTES", default_value_t = limits().max_label_name_len as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    max_label_name_len: u64,
    /// Bytes in a label value (400).
    #[arg(long, value_name = "BYTES", default_value_t = limits().max_label_value_len as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    max_label_value_len: u64,
    /// Bytes in a function name (or the object file naming an unsymbolized
    /// frame) (400).
    #[arg(long, value_name = "BYTES", default_value_t = limits().max_function_name_len as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    max_function_name_len: u64,
    /// How far in the future a profile's time may be (400); how far in
    /// the past is --retention.
    #[arg(long, value_name = "DURATION", default_value = "10m")]
    max_future: String,
    /// Largest Alertmanager webhook post (413).
    #[arg(long, value_name = "MIB", default_value_t = (webhook().max_body_bytes >> 20) as u64,
          value_parser = clap::value_parser!(u64).range(1..=1 << 10))]
    max_webhook_body_mib: u64,
    /// Alerts in one Alertmanager webhook post (413): set max_alerts in
    /// Alertmanager's webhook_configs to at most this.
    #[arg(long, value_name = "N", default_value_t = webhook().max_alerts as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    max_webhook_alerts: u64,
    /// Bytes of each label and annotation name and value of a posted
    /// alert (400).
    #[arg(long, value_name = "BYTES", default_value_t = webhook().max_label_len as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    max_alert_label_len: u64,
    /// Alert occurrences the autopilot's inbox holds across webhook posts;
    /// past it the oldest are forgotten, resolved ones first.
    #[arg(long, value_name = "N", default_value_t = webhook().max_inbox_alerts as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    max_inbox_alerts: u64,
    /// Series the store holds at most (429 for a batch that would add
    /// more); series whose data is past --retention are pruned.
    #[arg(long, value_name = "N", default_value_t = perfpilot_store::embedded::DEFAULT_MAX_SERIES as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    max_series: u64,
}

fn size(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

impl LimitArgs {
    /// The store's cap on series (`--max-series`).
    pub fn max_series(&self) -> usize {
        size(self.max_series)
    }

    /// `base` with these limits; `retention` is how old a profile may be.
    /// The limits must fit together (ServerConfig::check_limits).
    pub fn apply(&self, base: ServerConfig, retention: Duration) -> exit::Result<ServerConfig> {
        let max_future = crate::serve::parse_duration(&self.max_future, "--max-future")?;
        let mib = |n: u64| size(n) << 20;
        let config = ServerConfig {
            limits: Limits {
                max_decompressed_bytes: mib(self.max_decompressed_mib),
                max_decoded_bytes: mib(self.max_decoded_mib),
                max_labels_per_series: size(self.max_labels_per_series),
                max_label_name_len: size(self.max_label_name_len),
                max_label_value_len: size(self.max_label_value_len),
                max_function_name_len: size(self.max_function_name_len),
                max_samples_per_request: size(self.max_samples_per_request),
                max_frames_per_stack: size(self.max_frames_per_stack),
                max_frames_per_request: size(self.max_frames_per_request),
                max_future_ms: i64::try_from(max_future.as_millis()).unwrap_or(i64::MAX),
                max_age_ms: i64::try_from(retention.as_millis()).unwrap_or(i64::MAX),
                memory: None,
            },
            max_body_bytes: mib(self.max_body_mib),
            max_inflight_body_bytes: mib(self.max_inflight_body_mib),
            max_ingest_memory_bytes: mib(self.max_ingest_memory_mib),
            webhook: WebhookLimits {
                max_body_bytes: mib(self.max_webhook_body_mib),
                max_alerts: size(self.max_webhook_alerts),
                max_label_len: size(self.max_alert_label_len),
                max_inbox_alerts: size(self.max_inbox_alerts),
            },
            ..base
        };
        config
            .check_limits()
            .map_err(|e| Failure::new(exit::USAGE, anyhow::anyhow!("{e}")))?;
        Ok(config)
    }
}
