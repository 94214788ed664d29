//! HTTP/1.x over any byte stream: one read buffer per connection, heads and body frames read
//! out of it without copying, heads and bodies written with vectored writes.

pub(crate) mod codec;

use std::{fmt, io, time::Duration};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub use codec::{
    BodyDecoder, BodyError, Frame, Framing, HeadError, HeadOptions, RequestHead, ResponseHead,
};

/// How much room a read asks for at least.
const READ_CHUNK: usize = 8 * 1024;

/// Why reading a message failed.
#[derive(Debug)]
pub enum ReadError {
    /// The socket failed.
    Io(io::Error),
    /// The peer closed the connection in the middle of a message.
    Closed,
    /// The head was malformed.
    Head(HeadError),
    /// The body was malformed or cut short.
    Body(BodyError),
    /// The peer took too long.
    Timeout,
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "{e}"),
            ReadError::Closed => f.write_str("connection closed before the message was complete"),
            ReadError::Head(e) => write!(f, "{e}"),
            ReadError::Body(e) => write!(f, "{e}"),
            ReadError::Timeout => f.write_str("timed out"),
        }
    }
}

impl std::error::Error for ReadError {}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

/// One HTTP/1 connection's byte stream and read buffer.
pub struct Http1Io<S> {
    /// The byte stream.
    pub io: S,
    /// Bytes read but not consumed yet.
    pub buf: BytesMut,
    /// Whether the peer closed its side.
    pub eof: bool,
    /// How long a body may go without a byte arriving.
    pub body_timeout: Option<Duration>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Http1Io<S> {
    /// Wraps `io`, with `buf` holding bytes already read from it.
    pub fn new(io: S, buf: BytesMut) -> Self {
        Http1Io {
            io,
            buf,
            eof: false,
            body_timeout: None,
        }
    }

    /// Reads more bytes into the buffer; `Ok(0)` once the peer closed.
    pub async fn fill(&mut self) -> io::Result<usize> {
        if self.eof {
            return Ok(0);
        }
        if self.buf.capacity() - self.buf.len() < READ_CHUNK / 2 {
            self.buf.reserve(READ_CHUNK);
        }
        let n = self.io.read_buf(&mut self.buf).await?;
        if n == 0 {
            self.eof = true;
        }
        Ok(n)
    }

    /// Reads more bytes within the body timeout.
    async fn fill_body(&mut self) -> Result<usize, ReadError> {
        within(self.body_timeout, self.fill()).await
    }

    /// Reads the next request head. `Ok(None)`: the client closed, or sent nothing for
    /// `idle`, between requests. Once a head has started it must be complete within `limit`
    /// (else `ReadError::Timeout`).
    pub async fn read_request_head(
        &mut self,
        idle: Duration,
        limit: Duration,
    ) -> Result<Option<RequestHead>, ReadError> {
        if self.buf.is_empty() {
            match tokio::time::timeout(idle, self.fill()).await {
                Err(_) | Ok(Ok(0)) => return Ok(None),
                Ok(Err(e)) => return Err(e.into()),
                Ok(Ok(_)) => {}
            }
        }
        // Most heads arrive whole in one read: no timer for them.
        if let Some(head) = codec::parse_request_head(&mut self.buf).map_err(ReadError::Head)? {
            return Ok(Some(head));
        }
        let read = async {
            loop {
                if self.fill().await? == 0 {
                    return if self.buf.iter().all(|b| matches!(b, b'\r' | b'\n')) {
                        Ok(None)
                    } else {
                        Err(ReadError::Closed)
                    };
                }
                if let Some(head) =
                    codec::parse_request_head(&mut self.buf).map_err(ReadError::Head)?
                {
                    return Ok(Some(head));
                }
            }
        };
        tokio::time::timeout(limit, read)
            .await
            .unwrap_or(Err(ReadError::Timeout))
    }

    /// Reads the next response head.
    pub async fn read_response_head(&mut self) -> Result<ResponseHead, ReadError> {
        loop {
            if !self.buf.is_empty() {
                if let Some(head) =
                    codec::parse_response_head(&mut self.buf).map_err(ReadError::Head)?
                {
                    return Ok(head);
                }
            }
            if self.fill().await? == 0 {
                return Err(ReadError::Closed);
            }
        }
    }

    /// Reads the next body frame.
    pub async fn read_frame(&mut self, decoder: &mut BodyDecoder) -> Result<Frame, ReadError> {
        loop {
            if let Some(frame) = decoder
                .decode(&mut self.buf, self.eof)
                .map_err(ReadError::Body)?
            {
                return Ok(frame);
            }
            self.fill_body().await?;
        }
    }

    /// Reads exactly `len` body bytes into one contiguous buffer (no copies for bodies that
    /// fit in memory; the caller knows the body's framing).
    pub async fn read_exact(&mut self, len: usize) -> Result<Bytes, ReadError> {
        if self.buf.len() >= len {
            return Ok(self.buf.split_to(len).freeze());
        }
        if len <= READ_CHUNK {
            while self.buf.len() < len {
                if self.fill_body().await? == 0 {
                    return Err(ReadError::Closed);
                }
            }
            return Ok(self.buf.split_to(len).freeze());
        }
        // A large body gets an allocation of its own, read into directly: the connection's
        // buffer stays small, and the body's memory goes when the body goes (a buffer shared
        // with an idle pooled connection would keep it alive).
        let mut body = BytesMut::with_capacity(len);
        body.extend_from_slice(&self.buf.split());
        while body.len() < len {
            let want = (len - body.len()) as u64;
            let mut limited = (&mut self.io).take(want);
            let n = within(self.body_timeout, limited.read_buf(&mut body)).await?;
            if n == 0 {
                self.eof = true;
                return Err(ReadError::Closed);
            }
        }
        Ok(body.freeze())
    }

    /// Writes every buffer in `parts`, in order, with as few system calls as possible.
    pub async fn write_parts(&mut self, parts: &mut [Bytes]) -> io::Result<()> {
        write_parts(&mut self.io, parts).await
    }
}

/// Runs a read, failing with `ReadError::Timeout` after `limit` (if any).
async fn within(
    limit: Option<Duration>,
    read: impl std::future::Future<Output = io::Result<usize>>,
) -> Result<usize, ReadError> {
    match limit {
        Some(limit) => match tokio::time::timeout(limit, read).await {
            Ok(read) => Ok(read?),
            Err(_) => Err(ReadError::Timeout),
        },
        None => Ok(read.await?),
    }
}

/// A whole body with trailers in chunked framing: `[size line, body, end]` to write after the
/// head (one chunk, then the last chunk with the trailer fields).
pub fn chunked_with_trailers(
    body: Bytes,
    trailers: Option<&interpose_plugin_abi::Headers>,
) -> [Bytes; 3] {
    let mut size = BytesMut::new();
    let mut end = BytesMut::new();
    if !body.is_empty() {
        codec::write_chunk_size(&mut size, body.len());
        end.extend_from_slice(b"\r\n");
    }
    codec::write_last_chunk(&mut end, trailers);
    [size.freeze(), body, end.freeze()]
}

/// Writes every buffer in `parts` to `io`, in order, with vectored writes.
pub async fn write_parts<W: AsyncWrite + Unpin>(io: &mut W, parts: &mut [Bytes]) -> io::Result<()> {
    let mut first = 0;
    while first < parts.len() {
        if parts[first].is_empty() {
            first += 1;
            continue;
        }
        let written = if parts.len() - first == 1 {
            io.write(&parts[first]).await?
        } else {
            let slices: [io::IoSlice<'_>; 4] = std::array::from_fn(|i| {
                io::IoSlice::new(parts.get(first + i).map_or(&[][..], |b| &b[..]))
            });
            io.write_vectored(&slices).await?
        };
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        let mut left = written;
        while left > 0 && first < parts.len() {
            let part = &mut parts[first];
            let take = left.min(part.len());
            part.advance(take);
            left -= take;
            if part.is_empty() {
                first += 1;
            }
        }
    }
    Ok(())
}
