//! Cost of writing one flow to a mitmproxy flow file ([`write_flow`]): a typical flow with
//! 10 headers on each side and 100-byte bodies, plus client and server connections. For
//! comparison, the same flow through the state dict ([`flow_state`] then [`encode`]), and
//! reading it back.
//!
//! Run: `cargo bench -p interpose --bench capture -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use interpose::capture::{encode, flow_state, testing::typical_flow, write_flow, FlowReader};

fn bench(c: &mut Criterion) {
    let flow = typical_flow();
    let mut out = Vec::with_capacity(8192);
    write_flow(&flow, &mut out);
    let record = out.clone();

    let mut group = c.benchmark_group("capture");
    group.throughput(Throughput::Elements(1));
    group.bench_function("write_flow", |b| {
        b.iter(|| {
            out.clear();
            write_flow(black_box(&flow), &mut out);
            black_box(out.len())
        })
    });
    group.bench_function("flow_state_encode", |b| {
        b.iter(|| {
            out.clear();
            encode(&flow_state(black_box(&flow)), &mut out);
            black_box(out.len())
        })
    });
    group.bench_function("read_flow", |b| {
        b.iter(|| black_box(FlowReader::new(black_box(&record[..])).next()))
    });
    group.finish();
    println!("typical flow record: {} bytes", record.len());
}

criterion_group!(benches, bench);
criterion_main!(benches);
