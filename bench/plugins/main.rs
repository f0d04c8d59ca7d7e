//! Plugin benchmark: instantiations per second, the cost of a trivial call,
//! and the memory of an idle instance, through `wrun-plugin` and through
//! the Wasmtime API directly (the baseline), side by side.
//!
//! Both sides use the same component (`samples/plugins/wat/echo.wat`) and
//! the same engine settings: the pooling allocator sized for 1,000
//! instances, epoch interruption on, no fuel. The baseline is what a host
//! would write by hand: `bindgen!` over the same world, a `Linker` with
//! WASI 0.2, an `InstancePre`, a `Store` with an empty `WasiCtx`.
//!
//! Run with `bench/plugins/run.sh` (release mode).

use std::time::{Duration, Instant};

use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wrun_plugin::{Grants, HostConfig, PluginHost, Request};
use wrun_plugin_samples::ECHO;

mod raw {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "plugin-core",
    });
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const INSTANCES: u32 = 1000;
const INSTANTIATIONS: u32 = 5_000;
const CALLS: u32 = 100_000;
const ROUNDS: usize = 7;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let scale: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let instantiations = INSTANTIATIONS * scale;
    let calls = CALLS * scale;

    // Each side runs alone (one engine at a time), the two alternating for
    // ROUNDS rounds after one that warms caches and the pool's slots; each
    // figure is the median of its rounds, so one round disturbed by the
    // rest of the machine does not decide a ratio.
    bench_wrun(instantiations, calls)?;
    bench_raw(instantiations, calls)?;
    let mut wruns = Vec::new();
    let mut bases = Vec::new();
    for _ in 0..ROUNDS {
        wruns.push(bench_wrun(instantiations, calls)?);
        bases.push(bench_raw(instantiations, calls)?);
    }
    let wrun = Figures::median(&wruns);
    let base = Figures::median(&bases);

    println!(
        "plugin benchmark: echo component, pooling allocator, {INSTANCES} slots, \
         median of {ROUNDS} alternating rounds"
    );
    println!(
        "{:<32} {:>14} {:>14} {:>8}",
        "", "wrun-plugin", "raw wasmtime", "ratio"
    );
    row(
        "instantiate (µs/instance)",
        micros(wrun.instantiate),
        micros(base.instantiate),
    );
    println!(
        "{:<32} {:>14.0} {:>14.0} {:>8.2}",
        "  = instantiations/s",
        1.0 / wrun.instantiate.as_secs_f64(),
        1.0 / base.instantiate.as_secs_f64(),
        base.instantiate.as_secs_f64() / wrun.instantiate.as_secs_f64(),
    );
    row(
        "trivial call (µs/call)",
        micros(wrun.call),
        micros(base.call),
    );
    println!(
        "{:<32} {:>14.1} {:>14.1} {:>8.2}",
        "idle instance (KiB RSS each)",
        wrun.idle_bytes / 1024.0,
        base.idle_bytes / 1024.0,
        wrun.idle_bytes / base.idle_bytes,
    );
    println!("(ratio = wrun-plugin / raw for times and memory; raw / wrun-plugin for rates)");
    Ok(())
}

fn row(label: &str, wrun: f64, base: f64) {
    println!("{label:<32} {wrun:>14.2} {base:>14.2} {:>8.2}", wrun / base);
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

impl Figures {
    /// The median of each figure over `rounds` (not empty).
    fn median(rounds: &[Figures]) -> Figures {
        fn mid<T: Copy + PartialOrd>(mut v: Vec<T>) -> T {
            v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
            v[v.len() / 2]
        }
        Figures {
            instantiate: mid(rounds.iter().map(|f| f.instantiate).collect()),
            call: mid(rounds.iter().map(|f| f.call).collect()),
            idle_bytes: mid(rounds.iter().map(|f| f.idle_bytes).collect()),
        }
    }
}

struct Figures {
    /// Time per instantiation (instantiate, then drop).
    instantiate: Duration,
    /// Time per call on one warm instance.
    call: Duration,
    /// RSS growth per live, called-once instance, over `INSTANCES`.
    idle_bytes: f64,
}

fn bench_wrun(instantiations: u32, calls: u32) -> Result<Figures> {
    let mut config = HostConfig::new();
    config.max_instances(INSTANCES).on_log(|_| {});
    let host = PluginHost::new(&config)?;
    let plugin = host.load_bytes(ECHO.name, ECHO.bytes)?;
    let grants = Grants::new();

    let started = Instant::now();
    for _ in 0..instantiations {
        drop(plugin.instantiate(&grants)?);
    }
    let instantiate = started.elapsed() / instantiations;

    let mut instance = plugin.instantiate(&grants)?;
    let started = Instant::now();
    for _ in 0..calls {
        let response = instance.call(Request::new("echo", &b"ping"[..]))?;
        std::hint::black_box(response);
    }
    let call = started.elapsed() / calls;
    drop(instance);

    let before = rss()?;
    let mut live = Vec::with_capacity(INSTANCES as usize);
    for _ in 0..INSTANCES {
        let mut instance = plugin.instantiate(&grants)?;
        instance.call(Request::new("echo", &b"ping"[..]))?;
        live.push(instance);
    }
    let idle_bytes = (rss()?.saturating_sub(before)) as f64 / f64::from(INSTANCES);
    drop(live);
    Ok(Figures {
        instantiate,
        call,
        idle_bytes,
    })
}

struct RawState {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for RawState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl raw::wrun::plugin::types::Host for RawState {}

impl raw::wrun::plugin::log::Host for RawState {
    fn log(&mut self, _level: raw::wrun::plugin::log::Level, _message: String) {}
}

impl raw::wrun::plugin::config::Host for RawState {
    fn get(&mut self, _key: String) -> Option<String> {
        None
    }
}

fn raw_store(engine: &Engine) -> Store<RawState> {
    let mut store = Store::new(
        engine,
        RawState {
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
        },
    );
    // Epoch interruption is on in the engine (as in wrun-plugin) but nothing
    // ticks it here: any deadline ahead is never reached.
    store.set_epoch_deadline(1);
    store
}

fn bench_raw(instantiations: u32, calls: u32) -> Result<Figures> {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(INSTANCES)
        .total_core_instances(INSTANCES * 4)
        .total_memories(INSTANCES * 2)
        .total_tables(INSTANCES * 2)
        .max_memory_size(64 << 20);
    let mut settings = wasmtime::Config::new();
    settings
        .epoch_interruption(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    let engine = Engine::new(&settings).map_err(|e| e.to_string())?;
    let component = Component::new(&engine, ECHO.bytes).map_err(|e| e.to_string())?;
    let mut linker: Linker<RawState> = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(|e| e.to_string())?;
    raw::PluginCore::add_to_linker::<RawState, HasSelf<RawState>>(&mut linker, |s| s)
        .map_err(|e| e.to_string())?;
    let pre = raw::PluginCorePre::new(
        linker
            .instantiate_pre(&component)
            .map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;

    let started = Instant::now();
    for _ in 0..instantiations {
        let mut store = raw_store(&engine);
        let bindings = pre.instantiate(&mut store).map_err(|e| e.to_string())?;
        drop((bindings, store));
    }
    let instantiate = started.elapsed() / instantiations;

    let mut store = raw_store(&engine);
    let bindings = pre.instantiate(&mut store).map_err(|e| e.to_string())?;
    let started = Instant::now();
    for _ in 0..calls {
        let request = raw::wrun::plugin::types::Request {
            name: "echo".into(),
            payload: b"ping".to_vec(),
        };
        let response = bindings
            .wrun_plugin_handler()
            .call_call(&mut store, &request)
            .map_err(|e| e.to_string())?;
        std::hint::black_box(response.ok());
    }
    let call = started.elapsed() / calls;
    drop((bindings, store));

    let before = rss()?;
    let mut live = Vec::with_capacity(INSTANCES as usize);
    for _ in 0..INSTANCES {
        let mut store = raw_store(&engine);
        let bindings = pre.instantiate(&mut store).map_err(|e| e.to_string())?;
        let request = raw::wrun::plugin::types::Request {
            name: "echo".into(),
            payload: b"ping".to_vec(),
        };
        bindings
            .wrun_plugin_handler()
            .call_call(&mut store, &request)
            .map_err(|e| e.to_string())?
            .ok();
        live.push((bindings, store));
    }
    let idle_bytes = (rss()?.saturating_sub(before)) as f64 / f64::from(INSTANCES);
    drop(live);
    Ok(Figures {
        instantiate,
        call,
        idle_bytes,
    })
}

/// The process's resident set size in bytes (Linux: `/proc/self/statm`).
fn rss() -> Result<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm")?;
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .ok_or("statm has no resident field")?
        .parse()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Ok(pages * u64::try_from(page).unwrap_or(4096))
}
