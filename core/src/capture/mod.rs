//! Capture formats: mitmproxy flow files (tnetstrings of flow states, format version 21,
//! with upgrades from older versions) and HAR 1.2 export.

pub mod compat;
pub mod flowfile;
pub mod har;
pub mod pem;
#[doc(hidden)]
pub mod testing;
pub mod tnetstring;

#[cfg(test)]
mod tests;

pub use flowfile::{
    flow_from_state, flow_state, write_flow, FlowReader, ReadError, FLOW_FORMAT_VERSION,
};
pub use har::{har_document, har_entry, har_entry_with};
pub use tnetstring::{decode, encode, TnetError, Value};
