//! Bodies between the wire's `Bytes` and the plugin ABI's `Body`, handed over without copying
//! in either direction.

use std::ffi::c_void;

use bytes::Bytes;
use interpose_plugin_abi::{body::ReleaseFn, Body};

unsafe extern "C" fn release_bytes(owner: *mut c_void, _ptr: *const u8, _len: usize) {
    // SAFETY: `body_from_bytes` stored a leaked `Box<Bytes>` in `owner`; the body calls this
    // once, when dropped.
    unsafe { drop(Box::from_raw(owner as *mut Bytes)) }
}

/// Wraps bytes read off the wire as a body, without copying.
pub fn body_from_bytes(bytes: Bytes) -> Body {
    if bytes.is_empty() {
        return Body::empty();
    }
    let (ptr, len) = (bytes.as_ptr(), bytes.len());
    let owner = Box::into_raw(Box::new(bytes)) as *mut c_void;
    // SAFETY: the boxed `Bytes` keeps `ptr..ptr+len` alive and unchanged until
    // `release_bytes` frees it; `Bytes` is `Send + Sync`, so any thread may release it.
    unsafe { Body::from_raw_parts(ptr, len, owner, Some(release_bytes)) }
}

/// The host's `Bytes` inside `body`, if the host made it.
fn host_bytes(body: &Body) -> Option<&Bytes> {
    let release = body.release_fn()?;
    if !std::ptr::fn_addr_eq(release, release_bytes as ReleaseFn) {
        return None;
    }
    let owner = body.owner();
    // SAFETY: the release function is ours, so the owner is the `Box<Bytes>` leaked by
    // `body_from_bytes`, alive as long as `body`.
    Some(unsafe { &*(owner as *const Bytes) })
}

/// The bytes of a body for sending while the flow keeps the body: a reference-counted share
/// for bodies the proxy read, a copy for bodies an addon built.
pub fn share_bytes(body: &Body) -> Bytes {
    match host_bytes(body) {
        Some(bytes) => bytes.clone(),
        None => Bytes::copy_from_slice(body),
    }
}

/// A body addons built, kept alive as the owner of the `Bytes` that point into it.
struct ForeignBody(Body);

impl AsRef<[u8]> for ForeignBody {
    fn as_ref(&self) -> &[u8] {
        self.0.as_slice()
    }
}

/// Turns a body back into `Bytes` for sending, without copying: the host's own bodies are
/// unwrapped, any other body becomes the owner of the returned `Bytes`.
pub fn bytes_from_body(body: Body) -> Bytes {
    if body.is_empty() {
        return Bytes::new();
    }
    if host_bytes(&body).is_some() {
        let (_, _, owner, _) = body.into_raw_parts();
        // SAFETY: `host_bytes` recognised our release function, so `owner` is the `Box<Bytes>`
        // leaked by `body_from_bytes`; taking the parts apart means the body will not release
        // it again.
        return *unsafe { Box::from_raw(owner as *mut Bytes) };
    }
    Bytes::from_owner(ForeignBody(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_round_trip_without_copies() {
        let original = Bytes::from(vec![7u8; 1000]);
        let ptr = original.as_ptr();
        let body = body_from_bytes(original);
        assert_eq!(body.as_ptr(), ptr);
        let back = bytes_from_body(body);
        assert_eq!(back.as_ptr(), ptr);
        assert_eq!(back.len(), 1000);

        let built = Body::from(b"from an addon".to_vec());
        let built_ptr = built.as_ptr();
        let bytes = bytes_from_body(built);
        assert_eq!(bytes.as_ptr(), built_ptr);
        assert_eq!(&bytes[..], b"from an addon");
        assert!(body_from_bytes(Bytes::new()).is_empty());
    }
}
