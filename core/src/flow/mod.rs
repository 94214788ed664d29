//! Flows on the host side: ids, and bodies handed between the wire and the plugin ABI without
//! copies.

mod convert;
mod ids;

pub use convert::{body_from_bytes, bytes_from_body, share_bytes};
pub use ids::IdGenerator;
