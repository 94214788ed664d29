//! Cost of dispatching one flow's HTTP events (`requestheaders`, `request`, `responseheaders`,
//! `response`) through the [`AddonManager`] to 1, 10 and 50 no-op addons. Throughput counts
//! handler calls, so time per call is 1 / the reported elem/s.
//!
//! `all_events/N`: every addon implements all five HTTP events (4 × N calls per flow).
//! `request_only/N`: every addon implements only `request` (N calls per flow); the other
//! three events find no handlers, so the time per call matches `all_events` if they are free.
//!
//! Addons are built with `RawAddon::new`, which gives them the same `extern "C"` shims and
//! event table as addons from a loaded plugin library, so this is the production call path.
//!
//! `reads_option/N`: N addons each reading a bool option (`ctx.get_option`) in `request`:
//! the cost of an option read on the hot path, against `request_only/N`.
//!
//! `pause_resume/1`: one addon that pauses the flow in `request` and resumes it at once
//! (through its `Paused` handle, as a resumer on another thread would): the host's extra
//! cost of a paused flow, measured against `request_only/1`.
//!
//! Run: `cargo bench -p interpose --bench dispatch -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{
    criterion_group, criterion_main, measurement::WallTime, BenchmarkGroup, BenchmarkId, Criterion,
    Throughput,
};
use interpose::{
    addons::{AddonManager, HttpEvent},
    options::{OptionSpec, OptionStore, OptionType, Value},
};
use interpose_plugin_abi::{addon, ffi::RawAddon, testing, Addon, Context, HttpFlow};

/// The events of a flow that gets a response, in the order the proxy sends them.
const FLOW_EVENTS: [HttpEvent; 4] = [
    HttpEvent::RequestHeaders,
    HttpEvent::Request,
    HttpEvent::ResponseHeaders,
    HttpEvent::Response,
];

const ADDON_COUNTS: [usize; 3] = [1, 10, 50];

/// Implements every HTTP event, doing nothing.
struct AllEvents;

#[addon]
impl Addon for AllEvents {
    fn requestheaders(&self, _ctx: &Context, _flow: &mut HttpFlow) {}
    fn request(&self, _ctx: &Context, _flow: &mut HttpFlow) {}
    fn responseheaders(&self, _ctx: &Context, _flow: &mut HttpFlow) {}
    fn response(&self, _ctx: &Context, _flow: &mut HttpFlow) {}
    fn error(&self, _ctx: &Context, _flow: &mut HttpFlow) {}
}

/// Implements only `request`, doing nothing.
struct RequestOnly;

#[addon]
impl Addon for RequestOnly {
    fn request(&self, _ctx: &Context, _flow: &mut HttpFlow) {}
}

/// Reads a bool option in `request` (what an option-driven addon does on every flow).
struct ReadsOption;

#[addon]
impl Addon for ReadsOption {
    fn request(&self, ctx: &Context, flow: &mut HttpFlow) {
        if ctx.get_option::<bool>("bench_flag") {
            flow.metadata.insert("flag", "on");
        }
    }
}

/// Pauses every flow in `request` and resumes it straight away.
struct PauseResume;

#[addon]
impl Addon for PauseResume {
    fn request(&self, ctx: &Context, flow: &mut HttpFlow) {
        ctx.intercept(flow).resume();
    }
}

fn run_flow(manager: &AddonManager, flow: &mut HttpFlow) {
    for event in FLOW_EVENTS {
        // Under the default `addon_errors=continue` no addon here panics, so every result
        // is `Ok`; the proxy's check of it is one branch, not part of the dispatch cost.
        let _ = manager.http(black_box(event), black_box(&mut *flow));
    }
}

/// Benchmarks `name/N` for each addon count N, with `calls_per_addon` handler calls per flow.
fn bench_addons(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    calls_per_addon: usize,
    make: impl Fn() -> RawAddon,
) {
    for count in ADDON_COUNTS {
        let manager = AddonManager::new((0..count).map(|_| ("bench".to_string(), make())));
        let mut flow = testing::flow();
        group.throughput(Throughput::Elements((count * calls_per_addon) as u64));
        group.bench_function(BenchmarkId::new(name, count), |b| {
            b.iter(|| run_flow(black_box(&manager), &mut flow))
        });
    }
}

fn bench_dispatch(c: &mut Criterion) {
    let mut group = c.benchmark_group("dispatch");
    bench_addons(&mut group, "all_events", FLOW_EVENTS.len(), || {
        RawAddon::new(AllEvents)
    });
    bench_addons(&mut group, "request_only", 1, || RawAddon::new(RequestOnly));
    let mut store = OptionStore::with_core_options();
    store
        .declare(OptionSpec::new(
            "bench_flag",
            OptionType::Bool,
            Value::Bool(false),
            "",
        ))
        .expect("a new option");
    interpose::options::live::publish(&store);
    bench_addons(&mut group, "reads_option", 1, || RawAddon::new(ReadsOption));
    let manager = AddonManager::new([("bench".to_string(), RawAddon::new(PauseResume))]);
    let mut flow = testing::flow();
    group.throughput(Throughput::Elements(1));
    group.bench_function(BenchmarkId::new("pause_resume", 1), |b| {
        b.iter(|| run_flow(black_box(&manager), &mut flow))
    });
    group.finish();
}

criterion_group!(benches, bench_dispatch);
criterion_main!(benches);
