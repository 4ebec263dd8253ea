//! The conformance suite every Store engine must pass. (Being written.)
