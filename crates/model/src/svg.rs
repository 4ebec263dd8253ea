//! SVG flame graphs. (Stub: implemented by the codec work.)
use crate::{ModelError, Profile};
pub fn encode(_p: &Profile, _title: &str) -> Result<Vec<u8>, ModelError> {
    todo!()
}
