//! Label selectors, from [`perfpilot_model::selector`].

pub use perfpilot_model::selector::*;
