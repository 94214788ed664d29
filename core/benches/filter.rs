//! Cost of matching one flow against a compiled filter (parsing is done once, outside the
//! timing), on a flow with a `200 OK` response.
//!
//! `domain_and_code`: `~d example.com & ~c 200`, the common case, which must not allocate.
//! `header_regex`: `~h "^content-type: text/.*"`, which writes both header blocks into the
//! thread-local buffer. `url_regex`: `~u "example\.com/path/[0-9]+"`, which writes the URL.
//! `no_match`: the first expression against a flow for another domain.
//!
//! Before timing, each case is checked to allocate nothing once warm (a counting global
//! allocator): the thread-local buffer has grown by then, and the regexes' caches are pooled.
//!
//! Run: `cargo bench -p interpose --bench filter -- --warm-up-time 1 --measurement-time 3`

use std::{
    alloc::{GlobalAlloc, Layout, System},
    hint::black_box,
    sync::atomic::{AtomicUsize, Ordering},
};

use criterion::{criterion_group, criterion_main, Criterion};
use interpose::filter::Filter;
use interpose_plugin_abi::{testing, HttpFlow};

/// The system allocator, counting allocations.
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Asserts that matching `flow` allocates nothing once the first call has warmed up.
fn assert_no_allocation(filter: &Filter, flow: &HttpFlow) {
    filter.matches(flow);
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..100 {
        black_box(filter.matches(black_box(flow)));
    }
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
    assert_eq!(allocations, 0, "{:?} allocates", filter.expression());
}

/// A flow with a few realistic request headers and a `200 OK` response.
fn sample_flow() -> HttpFlow {
    let mut flow = testing::flow_with_response();
    flow.request.path = "/path/12345?query=1".into();
    for (name, value) in [
        (
            "User-Agent",
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101",
        ),
        ("Accept", "text/html,application/xhtml+xml"),
        ("Accept-Language", "en-US,en;q=0.5"),
        ("Cookie", "session=0123456789abcdef"),
    ] {
        flow.request.headers.append(name, value);
    }
    flow
}

fn bench_filter(c: &mut Criterion) {
    let mut group = c.benchmark_group("filter");
    let flow = sample_flow();
    let cases = [
        ("domain_and_code", "~d example.com & ~c 200"),
        ("header_regex", r#"~h "^content-type: text/.*""#),
        ("url_regex", r#"~u "example\\.com/path/[0-9]+""#),
    ];
    for (name, expr) in cases {
        let filter = Filter::parse(expr).expect("a valid benchmark filter");
        assert!(filter.matches(&flow), "{expr} should match the sample flow");
        assert_no_allocation(&filter, &flow);
        group.bench_function(name, |b| b.iter(|| filter.matches(black_box(&flow))));
    }

    let mut other = sample_flow();
    other.request.set_host("other.org");
    let filter = Filter::parse("~d example.com & ~c 200").expect("a valid benchmark filter");
    assert!(!filter.matches(&other));
    assert_no_allocation(&filter, &other);
    group.bench_function("no_match", |b| b.iter(|| filter.matches(black_box(&other))));
    group.finish();
}

criterion_group!(benches, bench_filter);
criterion_main!(benches);
