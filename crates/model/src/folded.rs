//! Folded stacks. (Stub: implemented by the codec work.)
use crate::{ModelError, Profile};
pub fn encode(_p: &Profile, _value_index: usize) -> Result<String, ModelError> {
    todo!()
}
pub fn decode(_bytes: &[u8]) -> Result<Profile, ModelError> {
    todo!()
}
