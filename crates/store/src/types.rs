//! What goes into the store and what comes out: the types live in
//! [`perfpilot_model::series`], where the query computations and wire
//! formats use them without depending on the store.

pub use perfpilot_model::series::*;
