//! Flows on the host side: ids, and the one conversion per message between hyper's types
//! and the plugin ABI's.

mod convert;
mod ids;

pub use convert::{
    body_from_bytes, bytes_from_body, headers_from_hyper, headers_to_hyper, share_bytes,
    InvalidHeader,
};
pub use ids::IdGenerator;
