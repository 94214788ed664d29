//! Flows on the host side: ids, bodies handed between the wire and the plugin ABI without
//! copies, and bodies with their content encoding undone.

pub mod content;
mod convert;
mod ids;

pub use convert::{body_from_bytes, bytes_from_body, share_bytes};
pub use ids::IdGenerator;
