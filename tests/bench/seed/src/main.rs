//! porter-seed CONNINFO THREADS MS
//!
//! `SELECT 1` the way the seed did it: every thread keeps a current-thread
//! Tokio runtime and a tokio-postgres client in thread-local storage and
//! blocks on each call. Each thread connects and warms up, then all run
//! for MS milliseconds. Prints one line:
//!   queries N p50_us X p99_us Y cpu_s Z failures F
//! where cpu_s is the process's CPU time (user + system) during the run.

use std::cell::RefCell;
use std::env;
use std::fs;
use std::process;
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use tokio::runtime::{Builder, Runtime};
use tokio_postgres::{Client, NoTls};

thread_local! {
    static RT: Runtime = Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    static CLIENT: RefCell<Option<Client>> = RefCell::new(None);
}

/// Connects this thread's client; the connection task runs on the
/// thread's runtime whenever a call blocks on it.
fn connect(conninfo: &str) -> Result<(), tokio_postgres::Error> {
    let client = RT.with(|rt| {
        rt.block_on(async {
            let (client, connection) = tokio_postgres::connect(conninfo, NoTls).await?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            Ok::<Client, tokio_postgres::Error>(client)
        })
    })?;
    CLIENT.with(|c| *c.borrow_mut() = Some(client));
    Ok(())
}

/// One blocking `SELECT 1`: true when it returned the row 1.
fn select1() -> bool {
    CLIENT.with(|c| {
        let c = c.borrow();
        let client = match c.as_ref() {
            Some(client) => client,
            None => return false,
        };
        RT.with(|rt| rt.block_on(client.query_one("SELECT 1", &[])))
            .map(|row| row.get::<_, i32>(0) == 1)
            .unwrap_or(false)
    })
}

/// This process's CPU seconds (user + system) from /proc/self/stat.
fn cpu_seconds() -> f64 {
    let stat = fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields 14 and 15 (utime, stime) in clock ticks of 1/100 s.
    (ticks(11) + ticks(12)) / 100.0
}

fn main() {
    let args: Vec<String> = env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: porter-seed CONNINFO THREADS MS");
        process::exit(2);
    }
    let conninfo = args[1].clone();
    let threads: usize = args[2].parse().expect("THREADS");
    let ms: u64 = args[3].parse().expect("MS");

    let ready = Arc::new(Barrier::new(threads + 1));
    let go = Arc::new(Barrier::new(threads + 1));
    let end: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
    let mut handles = Vec::with_capacity(threads);
    for _ in 0..threads {
        let (conninfo, ready, go, end) = (conninfo.clone(), ready.clone(), go.clone(), end.clone());
        handles.push(thread::spawn(move || {
            let mut lat: Vec<u64> = Vec::with_capacity(1 << 16);
            let mut failures = 0u64;
            if let Err(e) = connect(&conninfo) {
                eprintln!("porter-seed: connect: {}", e);
                failures += 1;
            }
            for _ in 0..20 {
                select1();
            }
            ready.wait();
            go.wait();
            let end = end.lock().unwrap().expect("the end of the run");
            loop {
                let t0 = Instant::now();
                if t0 >= end {
                    break;
                }
                if !select1() {
                    failures += 1;
                }
                lat.push(t0.elapsed().as_nanos() as u64);
            }
            CLIENT.with(|c| c.borrow_mut().take());
            (lat, failures)
        }));
    }
    ready.wait();
    let cpu0 = cpu_seconds();
    *end.lock().unwrap() = Some(Instant::now() + Duration::from_millis(ms));
    go.wait();
    let mut all: Vec<u64> = Vec::new();
    let mut failures = 0u64;
    for h in handles {
        let (lat, f) = h.join().expect("a benchmark thread");
        all.extend(lat);
        failures += f;
    }
    let cpu1 = cpu_seconds();
    all.sort_unstable();
    let pct = |p: f64| {
        if all.is_empty() {
            0.0
        } else {
            all[((all.len() as f64 * p) as usize).min(all.len() - 1)] as f64 / 1000.0
        }
    };
    println!(
        "queries {} p50_us {:.1} p99_us {:.1} cpu_s {:.3} failures {}",
        all.len(),
        pct(0.5),
        pct(0.99),
        cpu1 - cpu0,
        failures
    );
}
