//! The relay of one WebSocket connection: frames in from either side, reassembled into
//! messages, each through `websocket_message`, then forwarded (or dropped); pings and pongs
//! pass straight through; a close ends both sides and fires `websocket_end`.

use std::{borrow::Cow, future::pending};

use abi_stable::std_types::ROption;
use bytes::BytesMut;
use flate2::{Decompress, FlushDecompress, Status};
use interpose_plugin_abi::{
    flow::{WebSocketMessage, WebSocketMessageType},
    now, ErrorKind, Headers, HttpFlow,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{
    frame::{self, close_parts, close_payload, Frame, FrameError, Opcode},
    inject::{self, Injection},
};
use crate::{
    addons::HttpEvent,
    proxy::{failure::Failure, flow::run_event, Shared},
};

/// The largest message (and frame) relayed when `body_size_limit` is not set.
const DEFAULT_MESSAGE_LIMIT: u64 = 64 << 20;
/// A changed message is sent in frames of at most this many bytes (as mitmproxy does).
const FRAGMENT_SIZE: usize = 4000;

/// The extensions a WebSocket handshake negotiated, as far as the relay must know them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Extensions {
    /// permessage-deflate was negotiated.
    deflate: bool,
    /// The server starts each compressed message with an empty window.
    server_no_context_takeover: bool,
    /// The client starts each compressed message with an empty window.
    client_no_context_takeover: bool,
}

impl Extensions {
    /// The extensions of a `101` response; `Err` names one the relay cannot undo (its
    /// connection is then passed through byte for byte).
    pub fn negotiated(response: &Headers) -> Result<Extensions, String> {
        let mut found = Extensions::default();
        for value in response.get_all("sec-websocket-extensions") {
            for extension in value.split(',').filter(|e| !e.trim().is_empty()) {
                let mut params = extension.split(';').map(str::trim);
                let name = params.next().unwrap_or_default();
                if !name.eq_ignore_ascii_case("permessage-deflate") {
                    return Err(name.to_string());
                }
                found.deflate = true;
                for param in params {
                    let key = param.split('=').next().unwrap_or_default().trim();
                    if key.eq_ignore_ascii_case("server_no_context_takeover") {
                        found.server_no_context_takeover = true;
                    } else if key.eq_ignore_ascii_case("client_no_context_takeover") {
                        found.client_no_context_takeover = true;
                    }
                }
            }
        }
        Ok(found)
    }
}

/// Whether a `101` answer to `request` starts a WebSocket conversation the relay can follow
/// (mitmproxy's test: `Upgrade: websocket` and version 13); `Err` names an extension it
/// cannot follow.
pub fn is_websocket(request: &Headers, response: &Headers) -> Result<bool, String> {
    let upgrade = response
        .get("upgrade")
        .is_some_and(|u| u.trim().eq_ignore_ascii_case("websocket"));
    let version = request.get("sec-websocket-version").map(str::trim) == Some("13");
    if !(upgrade && version) {
        return Ok(false);
    }
    Extensions::negotiated(response).map(|_| true)
}

/// One direction's state: bytes read, the message being reassembled, the inflater.
struct Side {
    from_client: bool,
    partial: Option<Partial>,
    inflater: Option<Decompress>,
    /// Reset the inflater after each message (no context takeover).
    reset_inflater: bool,
}

/// A message whose last frame has not arrived yet.
struct Partial {
    text: bool,
    compressed: bool,
    data: Vec<u8>,
    /// The payload length of each frame so far (a message forwarded unchanged keeps them).
    fragments: Vec<usize>,
}

/// How a relay ends.
enum End {
    /// A side sent a close frame (or broke the protocol, or went away).
    Closed {
        by_client: bool,
        code: u16,
        reason: String,
    },
    /// An addon killed the flow.
    Killed,
}

/// Relays the WebSocket conversation of `flow` between `client` (with `client_buf` read
/// ahead) and `server` (with `server_buf`), firing `websocket_start`, `websocket_message` and
/// `websocket_end`. Returns when the conversation ends; a relay dropped before (the proxy
/// shutting down) still gives addons `websocket_end`.
pub async fn relay<C, S>(
    shared: &Shared,
    flow: Box<HttpFlow>,
    extensions: Extensions,
    client: &mut C,
    client_buf: &mut BytesMut,
    server: &mut S,
    server_buf: &mut BytesMut,
) where
    C: AsyncRead + AsyncWrite + Unpin,
    S: AsyncRead + AsyncWrite + Unpin,
{
    let limit = shared
        .options()
        .body_size_limit
        .unwrap_or(DEFAULT_MESSAGE_LIMIT);
    let mut conversation = Conversation {
        shared,
        flow,
        ended: false,
    };
    let (_registration, mut injected) = inject::register(conversation.flow.id);
    let mut peers = Peers {
        client,
        server,
        mask: MaskKeys::new(),
    };
    let mut sides = [Side::new(true, &extensions), Side::new(false, &extensions)];
    if conversation.event(HttpEvent::WebsocketStart).await.is_err() {
        conversation.end(End::Killed);
        return;
    }
    let end = 'relay: loop {
        // Frames already read (the handshake's read-ahead included) go first.
        for (index, from_client) in [(0, true), (1, false)] {
            let buf = if from_client {
                &mut *client_buf
            } else {
                &mut *server_buf
            };
            loop {
                let frame = match frame::parse(buf, limit) {
                    Ok(Some(frame)) => frame,
                    Ok(None) => break,
                    Err(error) => break 'relay protocol_error(from_client, error),
                };
                let step = handle_frame(
                    &mut conversation,
                    &mut sides[index],
                    frame,
                    limit,
                    &mut peers,
                )
                .await;
                if let Some(end) = step {
                    break 'relay end;
                }
            }
        }
        tokio::select! {
            read = peers.client.read_buf(client_buf) => {
                if !matches!(read, Ok(n) if n > 0) {
                    break 'relay gone(true);
                }
            }
            read = peers.server.read_buf(server_buf) => {
                if !matches!(read, Ok(n) if n > 0) {
                    break 'relay gone(false);
                }
            }
            Some(injection) = injected.recv() => {
                let Injection { to_client, content, is_text } = injection;
                let mut message = WebSocketMessage::new(
                    if is_text { WebSocketMessageType::Text } else { WebSocketMessageType::Binary },
                    !to_client,
                    content,
                );
                message.injected = true;
                if let Some(end) =
                    deliver(&mut conversation, message, &[], &mut peers).await
                {
                    break 'relay end;
                }
            }
        }
    };
    if let End::Closed {
        by_client,
        code,
        reason,
    } = &end
    {
        // Both sides hear the close (mitmproxy answers the closing side and tells the other);
        // a side that went away gets nothing.
        if *code != 1006 {
            let payload = close_payload(*code, reason);
            let _ = peers.send(false, Opcode::Close, &payload).await;
            let _ = peers.send(true, Opcode::Close, &payload).await;
        }
        tracing::debug!(
            "WebSocket {} closed by the {}: {code} {reason}",
            conversation.flow.request.url(),
            if *by_client { "client" } else { "server" }
        );
    }
    let _ = peers.client.shutdown().await;
    let _ = peers.server.shutdown().await;
    conversation.end(end);
}

/// A side sent bytes that are not WebSocket frames (or a frame too big): both sides are
/// closed with 1002 (protocol error) or 1009 (message too big).
fn protocol_error(from_client: bool, error: FrameError) -> End {
    let (code, reason) = match error {
        FrameError::Protocol(why) => (1002, why.to_string()),
        FrameError::TooBig(len) => (1009, format!("message of {len} bytes over the limit")),
    };
    End::Closed {
        by_client: from_client,
        code,
        reason,
    }
}

/// A side closed its connection (or it broke) without a close frame: 1006.
fn gone(by_client: bool) -> End {
    End::Closed {
        by_client,
        code: 1006,
        reason: String::new(),
    }
}

impl Side {
    fn new(from_client: bool, extensions: &Extensions) -> Side {
        Side {
            from_client,
            partial: None,
            inflater: None,
            reset_inflater: if from_client {
                extensions.client_no_context_takeover
            } else {
                extensions.server_no_context_takeover
            } || !extensions.deflate,
        }
    }

    /// Undoes permessage-deflate on a whole message (RFC 7692 section 7.2.2).
    fn inflate(&mut self, data: &[u8], limit: u64) -> Result<Vec<u8>, FrameError> {
        let inflater = self.inflater.get_or_insert_with(|| Decompress::new(false));
        let mut input = Vec::with_capacity(data.len() + 4);
        input.extend_from_slice(data);
        input.extend_from_slice(&[0, 0, 0xff, 0xff]);
        let mut out = Vec::with_capacity(data.len().saturating_mul(3).max(256));
        let mut consumed = 0;
        loop {
            if out.capacity() - out.len() < 1024 {
                out.reserve(out.len().max(4096));
            }
            let before = inflater.total_in();
            let status = inflater
                .decompress_vec(&input[consumed..], &mut out, FlushDecompress::Sync)
                .map_err(|_| FrameError::Protocol("invalid compressed message"))?;
            consumed += (inflater.total_in() - before) as usize;
            if out.len() as u64 > limit {
                return Err(FrameError::TooBig(out.len() as u64));
            }
            let room_left = out.len() < out.capacity();
            if status == Status::StreamEnd || (consumed == input.len() && room_left) {
                break;
            }
        }
        if self.reset_inflater {
            self.inflater = None;
        }
        Ok(out)
    }
}

/// Handles one frame from a side; `Some` ends the relay.
async fn handle_frame<C, S>(
    conversation: &mut Conversation<'_>,
    side: &mut Side,
    frame: Frame,
    limit: u64,
    peers: &mut Peers<'_, C, S>,
) -> Option<End>
where
    C: AsyncWrite + Unpin,
    S: AsyncWrite + Unpin,
{
    let from_client = side.from_client;
    match frame.opcode {
        Opcode::Close => {
            let (code, reason) = close_parts(&frame.payload);
            Some(End::Closed {
                by_client: from_client,
                code,
                reason,
            })
        }
        Opcode::Ping | Opcode::Pong => {
            tracing::debug!(
                "WebSocket {:?} from the {} ({} bytes)",
                frame.opcode,
                if from_client { "client" } else { "server" },
                frame.payload.len()
            );
            let sent = peers.send(from_client, frame.opcode, &frame.payload).await;
            sent.err().map(|_| gone(!from_client))
        }
        Opcode::Text | Opcode::Binary | Opcode::Continuation => {
            let partial = match (frame.opcode, side.partial.take()) {
                (Opcode::Continuation, Some(partial)) => partial,
                (Opcode::Continuation, None) => {
                    return Some(protocol_error(
                        from_client,
                        FrameError::Protocol("continuation without a message"),
                    ))
                }
                (_, Some(_)) => {
                    return Some(protocol_error(
                        from_client,
                        FrameError::Protocol("new message before the last one ended"),
                    ))
                }
                (opcode, None) => Partial {
                    text: opcode == Opcode::Text,
                    compressed: frame.compressed,
                    data: Vec::new(),
                    fragments: Vec::new(),
                },
            };
            let mut partial = partial;
            if (partial.data.len() + frame.payload.len()) as u64 > limit {
                let total = (partial.data.len() + frame.payload.len()) as u64;
                return Some(protocol_error(from_client, FrameError::TooBig(total)));
            }
            partial.data.extend_from_slice(&frame.payload);
            partial.fragments.push(frame.payload.len());
            if !frame.fin {
                side.partial = Some(partial);
                return None;
            }
            let content = if partial.compressed {
                match side.inflate(&partial.data, limit) {
                    Ok(content) => content,
                    Err(error) => return Some(protocol_error(from_client, error)),
                }
            } else {
                partial.data
            };
            let fragments = if partial.compressed {
                Vec::new()
            } else {
                partial.fragments
            };
            let message = WebSocketMessage::new(
                if partial.text {
                    WebSocketMessageType::Text
                } else {
                    WebSocketMessageType::Binary
                },
                from_client,
                content,
            );
            deliver(conversation, message, &fragments, peers).await
        }
    }
}

/// Adds `message` to the flow, runs `websocket_message`, and forwards what the addons left of
/// it unless they dropped it; `Some` ends the relay.
async fn deliver<C, S>(
    conversation: &mut Conversation<'_>,
    message: WebSocketMessage,
    fragments: &[usize],
    peers: &mut Peers<'_, C, S>,
) -> Option<End>
where
    C: AsyncWrite + Unpin,
    S: AsyncWrite + Unpin,
{
    let from_client = message.from_client;
    if let ROption::RSome(ws) = &mut conversation.flow.websocket {
        ws.push_message(message);
    }
    if conversation
        .event(HttpEvent::WebsocketMessage)
        .await
        .is_err()
    {
        return Some(End::Killed);
    }
    let message = conversation
        .flow
        .websocket()
        .and_then(|ws| ws.messages().last())?;
    if message.dropped() {
        return None;
    }
    let content = message.content.as_slice();
    let (opcode, payload, fragments) = if !message.is_text() {
        (Opcode::Binary, Cow::Borrowed(content), fragments)
    } else {
        match String::from_utf8_lossy(content) {
            Cow::Borrowed(_) => (Opcode::Text, Cow::Borrowed(content), fragments),
            // An addon wrote bytes that are not UTF-8 into a text message: sent with
            // replacement characters, as mitmproxy does (new length, so new fragments).
            Cow::Owned(fixed) => (Opcode::Text, Cow::Owned(fixed.into_bytes()), &[][..]),
        }
    };
    peers
        .forward(from_client, opcode, &payload, fragments)
        .await
        .err()
        .map(|_| gone(!from_client))
}

/// Both ends of the conversation, and the masking keys for frames to the server.
struct Peers<'p, C, S> {
    client: &'p mut C,
    server: &'p mut S,
    mask: MaskKeys,
}

impl<C: AsyncWrite + Unpin, S: AsyncWrite + Unpin> Peers<'_, C, S> {
    /// Sends a message to the other side of `from_client`, split as it arrived when its
    /// length did not change, else in frames of `FRAGMENT_SIZE`.
    async fn forward(
        &mut self,
        from_client: bool,
        opcode: Opcode,
        payload: &[u8],
        fragments: &[usize],
    ) -> std::io::Result<()> {
        let mut out = BytesMut::with_capacity(payload.len() + 16);
        let to_server = from_client;
        let mask = &mut self.mask;
        let mut push = |out: &mut BytesMut, first: bool, last: bool, piece: &[u8]| {
            let op = if first { opcode } else { Opcode::Continuation };
            frame::write(out, last, op, piece, to_server.then(|| mask.next()));
        };
        if !fragments.is_empty() && fragments.iter().sum::<usize>() == payload.len() {
            let mut at = 0;
            for (i, len) in fragments.iter().enumerate() {
                push(
                    &mut out,
                    i == 0,
                    i + 1 == fragments.len(),
                    &payload[at..at + len],
                );
                at += len;
            }
        } else {
            let mut pieces = payload.chunks(FRAGMENT_SIZE).peekable();
            if pieces.peek().is_none() {
                push(&mut out, true, true, &[]);
            }
            let mut first = true;
            while let Some(piece) = pieces.next() {
                push(&mut out, first, pieces.peek().is_none(), piece);
                first = false;
            }
        }
        self.write(to_server, &out).await
    }

    /// Sends one frame to the server (`to_server`, masked) or to the client.
    async fn send(
        &mut self,
        to_server: bool,
        opcode: Opcode,
        payload: &[u8],
    ) -> std::io::Result<()> {
        let mut out = BytesMut::with_capacity(payload.len() + 14);
        frame::write(
            &mut out,
            true,
            opcode,
            payload,
            to_server.then(|| self.mask.next()),
        );
        self.write(to_server, &out).await
    }

    async fn write(&mut self, to_server: bool, bytes: &[u8]) -> std::io::Result<()> {
        if to_server {
            write_flush(self.server, bytes).await
        } else {
            write_flush(self.client, bytes).await
        }
    }
}

async fn write_flush<W: AsyncWrite + Unpin>(to: &mut W, bytes: &[u8]) -> std::io::Result<()> {
    to.write_all(bytes).await?;
    to.flush().await
}

/// The flow of a conversation, with its events.
struct Conversation<'a> {
    shared: &'a Shared,
    flow: Box<HttpFlow>,
    ended: bool,
}

impl Conversation<'_> {
    /// Runs a WebSocket event (waiting out a pause); `Err` when an addon killed the flow or
    /// failed it (`addon_errors=fail`, recorded as the flow's error).
    async fn event(&mut self, event: HttpEvent) -> Result<(), Failure> {
        let ran = run_event(&self.shared.addons, event, &mut self.flow, pending()).await;
        if let Err(failure) = &ran {
            if failure.kind == ErrorKind::Addon {
                self.flow.error = ROption::RSome(failure.to_flow_error());
            }
        }
        ran
    }

    /// Records how the conversation ended and fires `websocket_end` (once).
    fn end(&mut self, end: End) {
        if std::mem::replace(&mut self.ended, true) {
            return;
        }
        let (by_client, code, reason) = match end {
            End::Closed {
                by_client,
                code,
                reason,
            } => (by_client, code, reason),
            End::Killed => (false, 1006, String::new()),
        };
        if let ROption::RSome(ws) = &mut self.flow.websocket {
            ws.set_closed(by_client, code, &reason, now());
        }
        self.flow.live = false;
        let _ = self
            .shared
            .addons
            .http_now(HttpEvent::WebsocketEnd, &mut self.flow);
    }
}

impl Drop for Conversation<'_> {
    fn drop(&mut self) {
        // Cut short (the proxy shuts down): the server side "went away".
        self.end(End::Closed {
            by_client: false,
            code: 1001,
            reason: "proxy shutting down".to_string(),
        });
    }
}

/// Masking keys for frames to the server: a xorshift generator seeded from the operating
/// system once per connection (RFC 6455 asks that they be unpredictable to the page, which
/// never sees them here).
struct MaskKeys(u64);

impl MaskKeys {
    fn new() -> MaskKeys {
        let mut seed = [0u8; 8];
        let _ = getrandom::getrandom(&mut seed);
        MaskKeys(u64::from_le_bytes(seed) | 1)
    }

    fn next(&mut self) -> [u8; 4] {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        (x as u32).to_le_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Compress, Compression, FlushCompress};

    fn headers(pairs: &[(&str, &str)]) -> Headers {
        let mut headers = Headers::default();
        for (name, value) in pairs {
            headers.append(name, *value);
        }
        headers
    }

    #[test]
    fn knows_a_websocket_answer_and_its_extensions() {
        let request = headers(&[("sec-websocket-version", "13")]);
        let plain = headers(&[("upgrade", "websocket")]);
        assert_eq!(is_websocket(&request, &plain), Ok(true));
        assert_eq!(is_websocket(&headers(&[]), &plain), Ok(false));
        assert_eq!(
            is_websocket(&request, &headers(&[("upgrade", "h2c")])),
            Ok(false)
        );
        let deflate = headers(&[
            ("upgrade", "WebSocket"),
            (
                "sec-websocket-extensions",
                "permessage-deflate; server_no_context_takeover; client_max_window_bits=10",
            ),
        ]);
        assert_eq!(is_websocket(&request, &deflate), Ok(true));
        let negotiated = Extensions::negotiated(&deflate).unwrap();
        assert!(negotiated.deflate && negotiated.server_no_context_takeover);
        assert!(!negotiated.client_no_context_takeover);
        let unknown = headers(&[
            ("upgrade", "websocket"),
            ("sec-websocket-extensions", "x-webkit-deflate-frame"),
        ]);
        assert_eq!(
            is_websocket(&request, &unknown),
            Err("x-webkit-deflate-frame".to_string())
        );
    }

    /// What a peer with permessage-deflate sends for `text`: deflate, sync flush, the
    /// trailing 00 00 ff ff taken off.
    fn compress(compressor: &mut Compress, text: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(text.len() + 64);
        compressor
            .compress_vec(text, &mut out, FlushCompress::Sync)
            .unwrap();
        assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
        out.truncate(out.len() - 4);
        out
    }

    #[test]
    fn inflates_messages_with_and_without_context_takeover() {
        for no_takeover in [false, true] {
            let extensions = Extensions {
                deflate: true,
                server_no_context_takeover: no_takeover,
                client_no_context_takeover: false,
            };
            let mut side = Side::new(false, &extensions);
            let mut compressor = Compress::new(Compression::default(), false);
            let text = b"hello hello hello, WebSocket world".repeat(20);
            for _ in 0..3 {
                if no_takeover {
                    compressor.reset();
                }
                let wire = compress(&mut compressor, &text);
                assert!(wire.len() < text.len());
                assert_eq!(side.inflate(&wire, 1 << 20).unwrap(), text);
            }
        }
    }

    #[test]
    fn refuses_a_message_that_inflates_past_the_limit() {
        let mut side = Side::new(true, &Extensions::default());
        let mut compressor = Compress::new(Compression::default(), false);
        let wire = compress(&mut compressor, &vec![b'a'; 1 << 20]);
        assert!(wire.len() < 10_000);
        assert!(matches!(
            side.inflate(&wire, 64 * 1024),
            Err(FrameError::TooBig(_))
        ));
    }

    #[test]
    fn mask_keys_vary() {
        let mut keys = MaskKeys::new();
        let (a, b) = (keys.next(), keys.next());
        assert_ne!(a, b);
    }
}
