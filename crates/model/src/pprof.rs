//! pprof. (Stub: implemented by the codec work.)
use crate::{ModelError, Profile};
pub fn encode(_p: &Profile) -> Result<Vec<u8>, ModelError> {
    todo!()
}
pub fn decode(_bytes: &[u8]) -> Result<Profile, ModelError> {
    todo!()
}
