//! The crate-private parsers, re-exported for the fuzz targets in `fuzz/` (their own
//! workspace). Compiled only with `--cfg fuzzing`, which cargo-fuzz sets: not part of the API.

/// The HTTP/1 wire codec: heads, framing, body frames.
pub mod http1 {
    pub use crate::proxy::http1::codec::{
        connection_has, parse_request_head, parse_response_head, request_framing, response_framing,
        write_chunk_size, write_last_chunk, write_request_head, write_response_head, BodyDecoder,
        BodyError, Frame, Framing, HeadError, HeadOptions, RequestHead, ResponseHead,
        MAX_CHUNK_LINE_BYTES, MAX_HEADERS, MAX_HEAD_BYTES,
    };
}

/// Request heads to flow requests: where a request goes.
pub mod messages {
    pub use crate::proxy::messages::{request_from_head, Destination, FixedTarget};
}

/// config.yaml's reader, before its entries reach the options store.
pub mod yaml {
    pub use crate::options::yaml::{parse_config, ConfigEntry, ConfigSyntaxError};
}
