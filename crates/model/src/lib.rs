//! The profile model shared by every part of perfpilot, and its codecs.
//!
//! A [`Profile`] holds interned functions, locations, mappings, stacks and
//! label sets, and samples that point at them. Codecs turn it into bytes and
//! back; nothing in this crate touches files, sockets or the clock.

pub mod error;
pub mod folded;
pub mod format;
pub mod labels;
pub mod pprof;
pub mod profile;
pub mod selector;
pub mod series;
pub mod speedscope;
pub mod svg;
pub mod top;

pub use error::ModelError;
pub use format::Format;
pub use profile::{
    Frame, Function, FunctionId, LabelSetId, Line, Location, LocationId, Mapping, MappingId,
    Profile, Sample, StackId, ValueType,
};
