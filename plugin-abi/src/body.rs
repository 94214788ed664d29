//! Message bodies: immutable bytes whose owner may live on either side of the plugin boundary.
//!
//! The host hands bodies it read off the wire to addons without copying them, and takes bodies
//! an addon built (from a `Vec`, a `String` or a static slice) back without copying either. The
//! memory is always released by the library that allocated it, through the function pointer
//! stored beside it.
//!
//! ```
//! use interpose_plugin_abi::{testing, Body};
//!
//! let mut flow = testing::flow_with_response();
//! let response = flow.response_mut().unwrap();
//! let upper = response.content.to_ascii_uppercase(); // reads without copying first
//! response.content = Body::from(upper);
//! assert_eq!(&response.content[..], b"MESSAGE");
//! ```

use std::{ffi::c_void, fmt, ops::Deref};

use abi_stable::StableAbi;

/// Releases a body's owner: `(owner, ptr, len)`. For the host's raw-part access only.
#[doc(hidden)]
pub type ReleaseFn = unsafe extern "C" fn(*mut c_void, *const u8, usize);

/// The bytes of a request or response body (mitmproxy's `raw_content`).
///
/// Reading is free (`&body[..]`, [`Body::as_slice`], [`Body::text`]); to change a body, build a
/// new one and assign it:
///
/// ```
/// use interpose_plugin_abi::Body;
///
/// let mut body = Body::from("hello");
/// assert_eq!(body.text(), Some("hello"));
/// body = Body::from(format!("{} world", body.text().unwrap()));
/// assert_eq!(&body[..], b"hello world");
/// ```
#[repr(C)]
#[derive(StableAbi)]
pub struct Body {
    ptr: *const u8,
    len: usize,
    /// What keeps `ptr` alive, interpreted only by `release`.
    owner: *mut c_void,
    /// `None` for static and empty bodies.
    release: Option<unsafe extern "C" fn(*mut c_void, *const u8, usize)>,
}

// SAFETY: a body is immutable, and every owner the constructors accept (`Vec<u8>`, static
// slices, and on the host side reference-counted `bytes::Bytes`) is `Send + Sync`.
unsafe impl Send for Body {}
// SAFETY: see `Send`; shared access only ever reads the bytes.
unsafe impl Sync for Body {}

unsafe extern "C" fn release_vec(owner: *mut c_void, ptr: *const u8, len: usize) {
    // SAFETY: `from_vec` stored the capacity in `owner` and leaked a `Vec` of exactly this
    // pointer and length; this function is only reached once, from `Drop`.
    unsafe { drop(Vec::from_raw_parts(ptr as *mut u8, len, owner as usize)) }
}

impl Body {
    /// An empty body; allocates nothing.
    ///
    /// ```
    /// use interpose_plugin_abi::Body;
    ///
    /// let body = Body::empty();
    /// assert!(body.is_empty());
    /// assert_eq!(body, Body::default());
    /// ```
    pub const fn empty() -> Self {
        Body {
            ptr: std::ptr::NonNull::<u8>::dangling().as_ptr(),
            len: 0,
            owner: std::ptr::null_mut(),
            release: None,
        }
    }

    /// A body borrowing static bytes.
    ///
    /// ```
    /// use interpose_plugin_abi::Body;
    ///
    /// static NOT_FOUND: Body = Body::from_static(b"<h1>Not found</h1>");
    /// assert_eq!(NOT_FOUND.len(), 18);
    /// ```
    pub const fn from_static(bytes: &'static [u8]) -> Self {
        Body {
            ptr: bytes.as_ptr(),
            len: bytes.len(),
            owner: std::ptr::null_mut(),
            release: None,
        }
    }

    /// A body owning `bytes` without copying them.
    ///
    /// ```
    /// use interpose_plugin_abi::{testing, Body};
    ///
    /// let mut flow = testing::flow_with_response();
    /// let response = flow.response_mut().unwrap();
    /// let mut bytes = response.content.to_vec();
    /// bytes.extend_from_slice(b" (edited)");
    /// response.content = Body::from_vec(bytes);
    /// assert_eq!(response.content.text(), Some("message (edited)"));
    /// ```
    pub fn from_vec(bytes: Vec<u8>) -> Self {
        if bytes.capacity() == 0 {
            return Body::empty();
        }
        let mut bytes = std::mem::ManuallyDrop::new(bytes);
        Body {
            ptr: bytes.as_mut_ptr(),
            len: bytes.len(),
            owner: bytes.capacity() as *mut c_void,
            release: Some(release_vec),
        }
    }

    /// A body holding a copy of `bytes`.
    ///
    /// ```
    /// use interpose_plugin_abi::Body;
    ///
    /// let line = String::from("GET / HTTP/1.1");
    /// let body = Body::copy_from_slice(&line.as_bytes()[..3]);
    /// assert_eq!(body.as_slice(), b"GET");
    /// ```
    pub fn copy_from_slice(bytes: &[u8]) -> Self {
        Body::from_vec(bytes.to_vec())
    }

    /// Builds a body from its raw parts (used by the host to wrap its own buffers; hidden from
    /// the docs because addons have no use for it).
    ///
    /// # Safety
    ///
    /// `ptr..ptr + len` must stay valid and unchanged until `release(owner, ptr, len)` is
    /// called (once, when the body is dropped), `release` must be safe to call from any thread,
    /// and with `release == None` the bytes must live forever.
    #[doc(hidden)]
    pub const unsafe fn from_raw_parts(
        ptr: *const u8,
        len: usize,
        owner: *mut c_void,
        release: Option<ReleaseFn>,
    ) -> Self {
        Body {
            ptr,
            len,
            owner,
            release,
        }
    }

    /// Takes the body apart without releasing it: `(ptr, len, owner, release)`.
    ///
    /// The caller becomes responsible for calling `release` (if any) exactly once.
    #[doc(hidden)]
    pub fn into_raw_parts(self) -> (*const u8, usize, *mut c_void, Option<ReleaseFn>) {
        let this = std::mem::ManuallyDrop::new(self);
        (this.ptr, this.len, this.owner, this.release)
    }

    /// What keeps the bytes alive, as given to [`Body::from_raw_parts`] (only meaningful to
    /// the library that made the body).
    #[doc(hidden)]
    pub fn owner(&self) -> *mut c_void {
        self.owner
    }

    /// The function that will release this body's memory (lets the host recognise its own).
    #[doc(hidden)]
    pub fn release_fn(&self) -> Option<ReleaseFn> {
        self.release
    }

    /// The bytes.
    ///
    /// ```
    /// use interpose_plugin_abi::testing;
    ///
    /// let flow = testing::flow_with_response();
    /// let body = &flow.response().unwrap().content;
    /// assert_eq!(body.as_slice(), b"message");
    /// assert!(body.as_slice().starts_with(b"mess"));
    /// ```
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: the constructors guarantee `ptr..ptr+len` is valid and immutable for as
        // long as `self` lives (a dangling but aligned pointer when `len == 0`).
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    /// The bytes as text, if they are valid UTF-8 (no charset or content-encoding handling).
    ///
    /// ```
    /// use interpose_plugin_abi::Body;
    ///
    /// assert_eq!(Body::from("héllo").text(), Some("héllo"));
    /// assert_eq!(Body::from(vec![0xff, 0xfe]).text(), None);
    /// ```
    pub fn text(&self) -> Option<&str> {
        std::str::from_utf8(self.as_slice()).ok()
    }

    /// The bytes as an owned `Vec`, reusing the allocation when this library made it.
    ///
    /// ```
    /// use interpose_plugin_abi::Body;
    ///
    /// let mut bytes = Body::from(vec![1, 2, 3]).into_vec();
    /// bytes.push(4);
    /// assert_eq!(Body::from(bytes).as_slice(), [1, 2, 3, 4]);
    /// ```
    pub fn into_vec(self) -> Vec<u8> {
        // Equal addresses mean this library's own `release_vec` (functions merged for having
        // identical code would release identically); unequal ones only cost a copy.
        let reusable = self
            .release
            .is_some_and(|release| std::ptr::fn_addr_eq(release, release_vec as ReleaseFn));
        if reusable {
            let (ptr, len, owner, _) = self.into_raw_parts();
            // SAFETY: the body was made by `from_vec` in this same library (same release
            // function), so these are the parts of a `Vec` we are allowed to take back.
            unsafe { Vec::from_raw_parts(ptr as *mut u8, len, owner as usize) }
        } else {
            self.as_slice().to_vec()
        }
    }
}

impl Drop for Body {
    fn drop(&mut self) {
        if let Some(release) = self.release {
            // SAFETY: the constructor's contract; `Drop` runs once.
            unsafe { release(self.owner, self.ptr, self.len) }
        }
    }
}

impl Default for Body {
    fn default() -> Self {
        Body::empty()
    }
}

impl Clone for Body {
    /// Copies the bytes (bodies are rarely cloned; sharing would need the owner's cooperation).
    fn clone(&self) -> Self {
        if self.release.is_none() {
            // Static or empty: sharing is free.
            // SAFETY: without a release function the bytes live forever.
            return unsafe { Body::from_raw_parts(self.ptr, self.len, self.owner, None) };
        }
        Body::copy_from_slice(self.as_slice())
    }
}

impl Deref for Body {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for Body {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl PartialEq for Body {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 64;
        let bytes = self.as_slice();
        let shown = String::from_utf8_lossy(&bytes[..bytes.len().min(SHOWN)]);
        if bytes.len() > SHOWN {
            write!(f, "Body({} bytes: {shown:?}...)", bytes.len())
        } else {
            write!(f, "Body({shown:?})")
        }
    }
}

impl From<Vec<u8>> for Body {
    fn from(bytes: Vec<u8>) -> Self {
        Body::from_vec(bytes)
    }
}

impl From<String> for Body {
    fn from(text: String) -> Self {
        Body::from_vec(text.into_bytes())
    }
}

impl From<&'static str> for Body {
    fn from(text: &'static str) -> Self {
        Body::from_static(text.as_bytes())
    }
}

impl<const N: usize> From<&'static [u8; N]> for Body {
    /// A body borrowing a byte-string literal: `Body::from(b"hello")`.
    fn from(bytes: &'static [u8; N]) -> Self {
        Body::from_static(bytes)
    }
}

impl From<&'static [u8]> for Body {
    fn from(bytes: &'static [u8]) -> Self {
        Body::from_static(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vec_round_trip_reuses_the_allocation() {
        let v = b"payload".to_vec();
        let ptr = v.as_ptr();
        let body = Body::from(v);
        assert_eq!(&body[..], b"payload");
        let back = body.into_vec();
        assert_eq!(back.as_ptr(), ptr);
    }

    #[test]
    fn clone_and_compare() {
        let a = Body::from(String::from("abc"));
        let b = a.clone();
        assert_eq!(a, b);
        assert_ne!(a.as_ptr(), b.as_ptr());
        let s = Body::from("static");
        assert_eq!(s.clone().as_ptr(), s.as_ptr());
        assert!(Body::empty().is_empty());
        assert!(Body::from(Vec::new()).is_empty());
    }
}
